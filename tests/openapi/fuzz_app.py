"""An app that uses every documented parameter, body and response feature.

Fuzzed by schemathesis in test_schemathesis.py and checked in test_document.py.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import itertools
import uuid
from typing import Annotated, Literal

import msgspec
import pydantic

from ember import Blueprint, Ember, HTTPException, Request
from ember.responses import HTMLResponse, PlainTextResponse
from ember.sse import SSEResponse, sse_stream


class Color(enum.Enum):
    red = "red"
    blue = "blue"


@dataclasses.dataclass
class NoteIn:
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
    body: str = ""
    tags: list[str] = dataclasses.field(default_factory=list)
    due: datetime.datetime | None = None
    counts: dict[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Note:
    id: int
    title: str
    body: str
    tags: list[str]
    due: datetime.datetime | None
    counts: dict[str, int]


class Place(msgspec.Struct):
    name: str
    where: tuple[float, float]
    rating: Annotated[int, msgspec.Meta(ge=1, le=5)] = 3


class PlaceOut(msgspec.Struct):
    name: str
    where: tuple[float, float]
    rating: int


class Account(pydantic.BaseModel):
    name: str = pydantic.Field(min_length=1, max_length=40)
    age: int = pydantic.Field(ge=0, le=150)
    email: str | None = None


class PublicAccount(pydantic.BaseModel):
    name: str


@dataclasses.dataclass
class Paging:
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 10
    offset: Annotated[int, msgspec.Meta(ge=0)] = 0


class Filters(msgspec.Struct):
    color: Color | None = None
    min_rating: Annotated[int, msgspec.Meta(ge=1, le=5)] = 1


class Search(pydantic.BaseModel):
    q: str = pydantic.Field("", max_length=50)
    exact: bool = False


class Missing(msgspec.Struct):
    detail: str


app = Ember(title="Ember fuzz target", version="1.0.0")
NOTES: dict[int, Note] = {}
_ids = itertools.count(1)


@app.post("/notes", status_code=201, tags=["notes"])
async def create_note(note: NoteIn) -> Note:
    """Create a note."""
    created = Note(next(_ids), note.title, note.body, note.tags, note.due, note.counts)
    NOTES[created.id] = created
    return created


@app.get("/notes", tags=["notes"])
async def list_notes(paging: Paging) -> list[Note]:
    """List notes, paged."""
    return list(NOTES.values())[paging.offset:paging.offset + paging.limit]


@app.get("/notes/{note_id:int}", tags=["notes"], responses={404: Missing})
async def get_note(note_id: int) -> Note:
    """One note."""
    note = NOTES.get(note_id)
    if note is None:
        raise HTTPException(404, "no such note")
    return note


@app.delete("/notes/{note_id:int}", tags=["notes"], responses={404: Missing})
async def delete_note(note_id: int) -> None:
    """Delete a note (204)."""
    if NOTES.pop(note_id, None) is None:
        raise HTTPException(404, "no such note")


@app.post("/places")
async def create_place(place: Place):
    # NOTE: no tuple in a POST's response: schemathesis 4.32 rewrites prefixItems of a
    # producer's response schema in place for its stateful phase, then rejects the
    # rewritten form as an invalid schema (cf. schemathesis #3842 / #4099). The
    # tuple is fuzzed in this request body and in GET /places' response.
    return {"name": place.name, "rating": place.rating}, 201


@app.get("/places")
async def find_places(filters: Filters, near: str | None = None) -> list[PlaceOut]:
    return [PlaceOut("home", (1.5, 2.5), 3)]


@app.post("/accounts", response_model=PublicAccount, status_code=201)
async def create_account(account: Account) -> Account:
    return account


@app.get("/search")
async def search(query: Search) -> dict[str, str | bool]:
    return {"q": query.q, "exact": query.exact}


@app.get("/stats")
async def stats(window: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 60,
                metric: Literal[1, 2, "all"] = "all", ratio: float = 1.0,
                verbose: bool = False, ids: list[int] | None = None,
                color: Color = Color.red) -> dict[str, int | float | bool | str | list[int]]:
    return {"window": window, "metric": metric, "ratio": ratio, "verbose": verbose,
            "ids": ids or [], "color": color.value}


@app.get("/big")
async def big(n: int = 18446744073709551616) -> dict[str, int]:
    """Integers past 64 bits, exactly."""
    return {"n": n, "double": n * 2}


@app.post("/echo")
async def echo(request: Request):
    """Any JSON value back (a str comes back as text/plain)."""
    return await request.json()


@app.post("/counts")
async def counts(data: dict[str, int]) -> int:
    return sum(data.values())


@app.get("/users/{user_id:uuid}")
async def user(user_id: uuid.UUID) -> dict[str, str]:
    return {"id": str(user_id)}


@app.get("/scale/{factor:float}")
async def scale(factor: float) -> float:
    return factor / 2


@app.get("/files/{name:path}")
async def file(name: str) -> PlainTextResponse:
    return PlainTextResponse(name)


@app.get("/hello/{name}")
async def hello(name: str):
    return f"Hello, {name}!"


@app.get("/page")
async def page() -> HTMLResponse:
    return HTMLResponse("<h1>Ember</h1>")


@app.get("/events")
async def events() -> SSEResponse:
    async def gen():
        yield {"n": 1}
    return sse_stream(gen())


@app.get("/now")
async def now() -> dict[str, datetime.datetime]:
    return {"now": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)}


@app.put("/flags/{flag}", responses={400: {"description": "bad flag"}})
async def set_flag(flag: Annotated[str, msgspec.Meta(pattern="^[a-z][a-z0-9_]{0,30}$")],
                   value: bool = True) -> dict[str, bool]:
    return {flag: value}


admin = Blueprint(url_prefix="/admin")


@admin.get("/notes")  # NOTE: same handler name as the app's: operationIds must differ
async def list_notes(limit: int = 10) -> list[Note]:  # noqa: F811
    return list(NOTES.values())[:limit]


app.add_blueprint(admin)

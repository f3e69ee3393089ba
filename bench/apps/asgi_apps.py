"""Peer apps: FastAPI, Starlette and a raw ASGI app (each run by uvicorn, uvloop + httptools).

The raw ASGI app is the floor of uvicorn: no framework, JSON serialized per
request with orjson (as Ember does).  FastAPI's POST /items validates the same
model as Ember's msgspec.Struct, with pydantic.
"""

import orjson
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.responses import PlainTextResponse as SPlain
from starlette.routing import Route


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


fastapi_app = FastAPI(openapi_url=None)


@fastapi_app.get("/hello", response_class=PlainTextResponse)
async def f_hello():
    return "Hello, World!"


@fastapi_app.get("/json")
async def f_json():
    return {"message": "Hello, World!"}


@fastapi_app.get("/users/{user_id}")
async def f_user(user_id: int):
    return {"id": user_id}


@fastapi_app.post("/items")
async def f_items(item: Item):
    return {"name": item.name, "price": item.price, "tags": item.tags}


async def s_hello(request):
    return SPlain("Hello, World!")


async def s_json(request):
    return JSONResponse({"message": "Hello, World!"})


async def s_user(request):
    return JSONResponse({"id": request.path_params["user_id"]})


starlette_app = Starlette(routes=[Route("/hello", s_hello), Route("/json", s_json),
                                  Route("/users/{user_id:int}", s_user)])

_HELLO = b"Hello, World!"


async def raw_app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/json":
        body, ctype = orjson.dumps({"message": "Hello, World!"}), b"application/json"
    elif path.startswith("/users/"):
        body, ctype = orjson.dumps({"id": int(path[7:])}), b"application/json"
    else:
        body, ctype = _HELLO, b"text/plain"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

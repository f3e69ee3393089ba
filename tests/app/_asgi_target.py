"""An Ember app served through ``app.asgi`` by other ASGI servers (tests/app/test_asgi_app.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from ember import Depends, Ember, Header, HTTPException, Request, StreamingResponse, WebSocket
from ember.limits import ServerLimits

app = Ember(server_limits=ServerLimits(max_body_size=64 * 1024))
started: list[str] = []


@app.on_startup
async def startup() -> None:
    started.append("startup")


async def user(x_user: str = Header("anon")) -> Any:
    yield x_user


@app.get("/hello")
async def hello() -> str:
    return "hello"


@app.get("/items/{n:int}")
def items(n: int, who: str = Depends(user), page: int = 1) -> dict:
    return {"n": n, "who": who, "page": page}


@app.post("/echo")
async def echo(request: Request) -> dict:
    body = await request.body()
    return {"size": len(body)}


cut: list[str] = []


@app.post("/cut")
async def cut_body(request: Request) -> dict:
    """Reads the body as it arrives; records how the read ended (the client leaves)."""
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
    except BaseException as exc:
        cut.append(type(exc).__name__)
        raise
    cut.append(f"complete {size}")
    return {"size": size}


@app.get("/cut-seen")
async def cut_seen() -> list:
    return cut


@app.get("/stream")
async def stream() -> StreamingResponse:
    async def gen() -> Any:
        for i in range(3):
            yield f"{i}\n"
            await asyncio.sleep(0)
    return StreamingResponse(gen(), media_type="text/plain")


@app.get("/teapot")
async def teapot() -> None:
    raise HTTPException(418, "short and stout")


@app.get("/started")
async def was_started() -> list:
    return started


@app.websocket("/ws")
async def ws(ws: WebSocket) -> None:
    await ws.accept()


asgi = app.asgi

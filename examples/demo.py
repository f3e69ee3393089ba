"""Ember's demo server: no API key, no network.

    python examples/demo.py            # then open http://127.0.0.1:8000/

Routes: ``/`` (a tour), ``/hello``, ``/users/{id:int}``, ``POST /echo``,
``/stream`` (server-sent events, token by token) and ``POST /v1/chat``
(an AI route answered by the built-in offline model, streamed as SSE).
"""

from __future__ import annotations

import asyncio
import os

from ember import Ember, Request, sse_stream

app = Ember()


@app.get("/")
async def index():
    return {
        "ember": "demo",
        "try": [
            "curl http://127.0.0.1:8000/hello",
            "curl http://127.0.0.1:8000/users/42",
            "curl -X POST http://127.0.0.1:8000/echo -d '{\"a\": 1}'",
            "curl -N http://127.0.0.1:8000/stream",
            "curl -N -X POST http://127.0.0.1:8000/v1/chat -d '{\"message\": \"hi\"}'",
        ],
    }


@app.get("/hello")
async def hello():
    return "Hello, World!"


@app.get("/users/{user_id:int}")
async def user(user_id: int):
    return {"id": user_id, "name": f"user-{user_id}"}


@app.post("/echo")
async def echo(request: Request):
    return await request.json()


async def _tokens(text: str):
    for word in text.split():
        await asyncio.sleep(0.05)
        yield word + " "


@app.get("/stream")
async def stream():
    return sse_stream(_tokens("Ember streams tokens as server-sent events, one at a time."))


@app.ai_route("/v1/chat", methods=["POST"], streaming=True)
async def chat(request: Request, context):
    body = await request.json()
    prompt = str(body.get("message", ""))
    context.add_message("user", prompt)
    try:
        from ember.api import models
    except ImportError:  # the model system is optional
        return sse_stream(_tokens(f"You asked: {prompt}"))

    async def answer():
        async for chunk in models.astream("offline/echo", prompt):
            yield chunk.text
    return sse_stream(answer())


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8000"))
    print(f"Ember demo on http://127.0.0.1:{port}/  (Ctrl-C to stop)")
    app.run(host="127.0.0.1", port=port, access_log=True)

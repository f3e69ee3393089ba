"""Ember's demo server: no API key, no network.

    python examples/demo.py            # then open http://127.0.0.1:8000/ (PORT=8150 to move)

Routes: ``/`` (a chat playground in a browser, a JSON tour for curl), ``/hello``,
``/users/{id:int}``, ``POST /echo``, ``/stream`` (server-sent events, token by token),
``POST /v1/chat`` (an AI route answered by the built-in offline model, streamed as SSE),
the OpenAI-compatible ``/v1/chat/completions`` and ``/v1/models`` (the offline model),
``/docs`` and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import html
import os
import re
import socket
import sys
from dataclasses import dataclass

from ember import Ember, HTTPException, Request, sse_stream
from ember.observability import Metrics
from ember.responses import HTMLResponse

HOST = "127.0.0.1"
MODEL = "offline/echo"
# NOTE: paces the offline model's tokens, so that streaming is visible in the playground
os.environ.setdefault("EMBER_OFFLINE_TOKEN_DELAY", "0.04")

app = Ember(title="Ember demo")
metrics = Metrics()
app.add_middleware(metrics)
metrics.mount(app)
app.mount_openai([MODEL], prefix="/v1")  # loopback only: no API keys needed


def _port() -> int:
    """The port from ``PORT`` (default 8000); a bad value exits with one line."""
    raw = os.environ.get("PORT", "8000")
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        sys.exit(f"error: PORT must be a number from 1 to 65535, got {raw!r}")
    return port


_HOST_HEADER = re.compile(r"(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]):\d{1,5}")


def _base(request: Request) -> str:
    """This server's URL as the client reached it (so the real port), else HOST:PORT."""
    host = request.headers.get("host", "")
    if _HOST_HEADER.fullmatch(host):
        return f"http://{host}"
    return f"http://{HOST}:{os.environ.get('PORT', '8000')}"


def _tour(request: Request) -> list[str]:
    base = _base(request)
    return [
        f"curl {base}/hello",
        f"curl {base}/users/42",
        f"curl -X POST {base}/echo -d '{{\"a\": 1}}'",
        f"curl -N {base}/stream",
        f"curl -N -X POST {base}/v1/chat -d '{{\"message\": \"hi\"}}'",
        f"curl -N {base}/v1/chat/completions -d '{{\"model\": \"{MODEL}\", \"stream\": true, "
        f"\"messages\": [{{\"role\": \"user\", \"content\": \"hi\"}}]}}'",
        f"open {base}/docs",
        f"curl {base}/metrics",
    ]


@app.get("/")
async def index(request: Request):
    """A chat playground for browsers; the JSON tour for everything else."""
    accept = request.headers.get("accept", "")
    if "text/html" in accept:
        return HTMLResponse(_playground())
    return {"ember": "demo", "try": _tour(request),
            "routes": [f"{' '.join(sorted(r.methods))} {r.path}" for r in app.routes]}


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


@dataclass
class ChatIn:
    """``POST /v1/chat``'s body: ``{"message": "hi"}`` (anything else: 422 naming the field)."""

    message: str


@app.ai_route("/v1/chat", methods=["POST"], streaming=True)
async def chat(body: ChatIn, context):
    prompt = body.message
    context.add_message("user", prompt)
    from ember.api import models

    async def answer():
        async for chunk in models.astream(MODEL, prompt):
            yield chunk.text
    return sse_stream(answer())


def _playground() -> str:
    rows = "".join(
        f"<li><code>{html.escape(' '.join(sorted(r.methods)))} {html.escape(r.path)}</code></li>"
        for r in app.routes)
    return _PAGE.replace("{{ROUTES}}", rows).replace("{{MODEL}}", MODEL)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Ember demo</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font:15px/1.5 system-ui,sans-serif;max-width:760px;margin:2em auto;padding:0 1em;color:#222}
 h1{font-size:1.4em} #log{border:1px solid #ccc;border-radius:6px;padding:.8em;min-height:6em}
 .user{color:#555} .bot{white-space:pre-wrap} form{display:flex;gap:.5em;margin:.8em 0}
 input{flex:1;padding:.5em;font:inherit} button{padding:.5em 1.2em;font:inherit}
 code{background:#f4f4f4;padding:0 .2em} ul{columns:2;font-size:.9em}
</style></head><body>
<h1>&#128293; Ember demo</h1>
<p>Chat with the offline model <code>{{MODEL}}</code> through this server's own
OpenAI-compatible <code>POST /v1/chat/completions</code>, streamed as server-sent events.
No API key, no network. See also <a href="/docs">/docs</a> and <a href="/metrics">/metrics</a>.</p>
<div id="log" aria-live="polite"></div>
<form id="chat"><input id="prompt" autocomplete="off" placeholder="Say something" required>
<button id="send" type="submit">Send</button></form>
<p id="status"></p>
<h2>Routes</h2><ul id="routes">{{ROUTES}}</ul>
<script>
"use strict";
const log = document.getElementById("log"), form = document.getElementById("chat");
const input = document.getElementById("prompt"), send = document.getElementById("send");
const status = document.getElementById("status"), history = [];
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text) return;
  input.value = ""; send.disabled = true; status.textContent = "streaming…";
  history.push({role: "user", content: text});
  const you = document.createElement("div"); you.className = "user";
  you.textContent = "you: " + text; log.appendChild(you);
  const bot = document.createElement("div"); bot.className = "bot"; bot.dataset.chunks = "0";
  log.appendChild(bot);
  try {
    const response = await fetch("/v1/chat/completions", {method: "POST",
      headers: {"content-type": "application/json"},
      body: JSON.stringify({model: "{{MODEL}}", stream: true, messages: history})});
    if (!response.ok) throw new Error("HTTP " + response.status + ": " + await response.text());
    const reader = response.body.getReader(), decoder = new TextDecoder();
    let buffer = "", answer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true});
      let cut;
      while ((cut = buffer.indexOf("\\n\\n")) >= 0) {
        const frame = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
        for (const line of frame.split("\\n")) {
          if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
          const data = JSON.parse(line.slice(6));
          if (data.error) throw new Error(data.error.message);
          const delta = (data.choices[0] || {}).delta || {};
          if (delta.content) {
            answer += delta.content; bot.textContent = answer;
            bot.dataset.chunks = String(Number(bot.dataset.chunks) + 1);
          }
        }
      }
    }
    history.push({role: "assistant", content: answer});
    status.textContent = "done";
  } catch (err) {
    status.textContent = "error: " + err.message;
  } finally {
    send.disabled = false; input.focus();
  }
});
</script></body></html>"""


def _check_port(port: int) -> None:
    """Exit with one line if something already listens on ``port``."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            sys.exit(f"error: cannot listen on {HOST}:{port}: {exc.strerror or exc} "
                     f"(another server is running there? try PORT={port + 1})")


if __name__ == "__main__":
    port = _port()
    _check_port(port)
    print(f"Ember demo on http://{HOST}:{port}/  (Ctrl-C to stop)", flush=True)
    try:
        app.run(host=HOST, port=port, access_log=True)
    except OSError as exc:  # NOTE: the port was taken between the check and the bind
        sys.exit(f"error: cannot listen on {HOST}:{port}: {exc}")

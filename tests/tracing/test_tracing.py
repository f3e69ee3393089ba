"""``ember.tracing``: spans for requests, model/tool/cache calls; OTLP export; off = free."""

from __future__ import annotations

import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ember import Ember, StaticCache, StreamingResponse, ToolRegistry
from ember.tracing import instrument, uninstrument

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
INCOMING = f"00-{TRACE_ID}-{PARENT_ID}-01"


def _app() -> Ember:
    from ember.models import ModelRegistry

    app = Ember()
    registry = ModelRegistry()
    app.on_shutdown(registry.aclose)  # NOTE: its upstream connections live on the server loop
    tools = ToolRegistry()

    @tools.register
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @app.get("/chat")
    async def chat() -> dict:
        reply = await registry.invoke_model_async("gpt-4", "hello")
        return {"text": reply.text}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def tokens() -> Any:
            async for chunk in registry.stream_model_async("gpt-4", "streamed"):
                yield chunk.text
        return StreamingResponse(tokens(), media_type="text/plain")

    @app.get("/sync-chat")
    def sync_chat() -> dict:  # NOTE: a def handler (thread pool): the sync model path
        reply = registry.invoke_model("gpt-4", "hello")
        return {"text": reply.text}

    @app.get("/sync-stream")
    def sync_stream() -> dict:
        return {"text": "".join(c.text for c in registry.stream_model("gpt-4", "streamed"))}

    @app.get("/tool")
    async def tool() -> dict:
        return {"sum": await tools.call("add", {"a": 2, "b": 3})}

    @app.get("/cached", cache=StaticCache())
    async def cached() -> str:
        return "cached"

    @app.get("/boom")
    async def boom() -> str:
        raise RuntimeError("bug")
    return app


@pytest.fixture
def traced(fake: Any, serve: Any) -> Any:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = _app()
    instrument(app, tracer_provider=provider)
    yield serve(app), exporter, fake
    uninstrument(app)


def _by_name(exporter: InMemorySpanExporter, *needed: str) -> dict[str, Any]:
    """Finished spans by name, once those ``needed`` have ended (a streamed response's
    span ends after its last byte left: the client may be reading it already)."""
    from tests._waits import wait_for

    wait_for(lambda: set(needed) <= {s.name for s in exporter.get_finished_spans()},
             f"spans {needed}")
    return {span.name: span for span in exporter.get_finished_spans()}


def test_request_and_model_spans_continue_the_incoming_trace(traced: Any) -> None:
    url, exporter, fake = traced
    r = httpx.get(url + "/chat?key=secret", headers={"traceparent": INCOMING})
    assert r.json() == {"text": "Echo: hello"}
    spans = _by_name(exporter, "GET /chat", "chat gpt-4")
    server, model = spans["GET /chat"], spans["chat gpt-4"]
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert format(server.parent.span_id, "016x") == PARENT_ID
    assert server.attributes["http.request.method"] == "GET"
    assert server.attributes["http.route"] == "/chat"
    assert server.attributes["http.response.status_code"] == 200
    assert "secret" not in str(dict(server.attributes))  # query strings are not exported
    assert model.parent.span_id == server.context.span_id
    assert model.attributes["gen_ai.request.model"] == "gpt-4"
    assert model.attributes["gen_ai.provider.name"] == "openai"
    assert model.attributes["gen_ai.usage.input_tokens"] > 0
    assert model.attributes["gen_ai.usage.output_tokens"] > 0
    assert model.attributes["ember.cost_usd"] > 0
    # the upstream request carried the model span's context
    sent = fake.last("openai").headers["traceparent"]
    assert sent == f"00-{TRACE_ID}-{format(model.context.span_id, '016x')}-01"


def test_streamed_model_call_and_streamed_response(traced: Any) -> None:
    url, exporter, fake = traced
    assert httpx.get(url + "/stream").text == "Echo: streamed"
    spans = _by_name(exporter, "chat gpt-4", "GET /stream")
    model, server = spans["chat gpt-4"], spans["GET /stream"]
    assert model.attributes["ember.stream"] is True
    assert model.attributes["ember.time_to_first_token_s"] >= 0
    assert model.attributes["gen_ai.usage.output_tokens"] > 0
    assert model.parent.span_id == server.context.span_id
    assert server.end_time >= model.end_time  # the request span ends with its stream
    assert fake.last("openai").headers["traceparent"].split("-")[1] == format(
        server.context.trace_id, "032x")


def test_tool_cache_and_error_spans(traced: Any) -> None:
    url, exporter, _ = traced
    assert httpx.get(url + "/tool").json() == {"sum": 5}
    tool = _by_name(exporter, "execute_tool add")["execute_tool add"]
    assert tool.attributes["gen_ai.tool.name"] == "add"
    for _ in range(2):
        assert httpx.get(url + "/cached").text == "cached"
    lookups = [s for s in exporter.get_finished_spans() if s.name == "cache lookup"]
    assert [s.attributes["ember.cache.hit"] for s in lookups] == [False, True]
    assert httpx.get(url + "/boom").status_code == 500
    boom = _by_name(exporter, "GET /boom")["GET /boom"]
    assert boom.attributes["error.type"] == "500"
    assert boom.status.status_code.name == "ERROR"


@pytest.mark.parametrize("garbage", ["nope", "00-" + "0" * 32 + "-" + "0" * 16 + "-01",
                                     "ff-xyz", "00-" + TRACE_ID + "-" + PARENT_ID + "-zz" * 50])
def test_garbage_traceparent_starts_a_new_trace(traced: Any, garbage: str) -> None:
    url, exporter, _ = traced
    assert httpx.get(url + "/tool", headers={"traceparent": garbage}).status_code == 200
    server = _by_name(exporter, "GET /tool")["GET /tool"]
    assert server.parent is None or not server.parent.is_valid


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[tuple[str, bytes]] = []
    got = threading.Event()

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        type(self).bodies.append((self.path, body))
        type(self).got.set()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()


def test_otlp_http_export_configured_by_env(fake: Any, serve: Any,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT",
                       f"http://127.0.0.1:{receiver.server_address[1]}")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "ember-under-test")
    app = _app()
    tracing = instrument(app)
    try:
        url = serve(app)
        assert httpx.get(url + "/chat").status_code == 200
    finally:
        uninstrument(app)
        tracing.shutdown()  # flushes the batch
        receiver.shutdown()
        receiver.server_close()
    assert _Receiver.got.wait(10)
    path, body = _Receiver.bodies[-1]
    assert path == "/v1/traces"
    request = ExportTraceServiceRequest.FromString(body)
    resource = request.resource_spans[0].resource
    service = {a.key: a.value.string_value for a in resource.attributes}["service.name"]
    names = {s.name for rs in request.resource_spans for ss in rs.scope_spans
             for s in ss.spans}
    assert service == "ember-under-test"
    assert {"GET /chat", "chat gpt-4"} <= names


def test_unreachable_collector_never_breaks_requests(fake: Any, serve: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")  # nothing there
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    app = _app()
    tracing = instrument(app)
    try:
        url = serve(app)
        assert httpx.get(url + "/tool").json() == {"sum": 5}
    finally:
        uninstrument(app)
    tracing.provider.force_flush(1000)  # the export fails; logged by the SDK, not raised


def test_disabled_by_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    app = Ember()
    assert instrument(app) is None and app.middleware == []


def test_off_costs_nothing_and_missing_package_names_the_extra() -> None:
    code = ("import sys, ember\napp = ember.Ember()\n"
            "@app.get('/x')\nasync def x(): return 1\n"
            "app.test_client().get('/x')\n"
            "assert not [m for m in sys.modules if m.startswith(('opentelemetry', "
            "'ember.tracing'))], 'loaded'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    code = ("import sys\nsys.modules['opentelemetry.trace'] = None\n"
            "import ember\nfrom ember.tracing import instrument\n"
            "try:\n    instrument(ember.Ember())\nexcept ImportError as exc:\n"
            "    assert 'ember-api[otel]' in str(exc), exc\nelse:\n    raise SystemExit(1)\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_database_query_spans(postgres_server: Any, serve: Any) -> None:
    from ember.db import Connection, Database

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = Ember(database=Database(postgres_server.url, min_size=1, max_size=2))

    @app.get("/n/{n:int}")
    async def number(n: int, conn: Connection) -> dict:
        return {"n": await conn.fetchval("SELECT $1::int + 1", n)}

    instrument(app, tracer_provider=provider)
    try:
        url = serve(app)
        assert httpx.get(url + "/n/41").json() == {"n": 42}
    finally:
        uninstrument(app)
    spans = _by_name(exporter, "SELECT", "GET /n/{n:int}")
    query, server = spans["SELECT"], spans["GET /n/{n:int}"]
    assert query.attributes["db.system.name"] == "postgresql"
    assert query.attributes["db.query.text"] == "SELECT $1::int + 1"  # never the values
    assert query.parent.span_id == server.context.span_id


def test_offline_provider_calls_are_traced(serve: Any) -> None:
    from ember.models import ModelRegistry

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = Ember()
    registry = ModelRegistry()

    @app.get("/offline")
    async def offline() -> dict:
        reply = await registry.invoke_model_async("offline/echo", "hi")
        return {"text": reply.text}

    instrument(app, tracer_provider=provider)
    try:
        url = serve(app)
        assert httpx.get(url + "/offline").status_code == 200
    finally:
        uninstrument(app)
    spans = _by_name(exporter, "chat echo", "GET /offline")
    assert spans["chat echo"].attributes["gen_ai.provider.name"] == "offline"
    assert spans["chat echo"].parent.span_id == spans["GET /offline"].context.span_id


@pytest.mark.parametrize("path", ["/sync-chat", "/sync-stream"])
def test_sync_model_calls_in_def_handlers_are_traced(traced: Any, path: str) -> None:
    url, exporter, _fake = traced
    r = httpx.get(url + path, headers={"traceparent": INCOMING})
    assert r.status_code == 200, r.text
    spans = _by_name(exporter, "chat gpt-4", f"GET {path}")
    model, request = spans["chat gpt-4"], spans[f"GET {path}"]
    assert model.context.trace_id == int(TRACE_ID, 16)
    assert model.parent is not None and model.parent.span_id == request.context.span_id
    assert model.attributes["gen_ai.request.model"] == "gpt-4"
    assert model.attributes["gen_ai.usage.input_tokens"] > 0

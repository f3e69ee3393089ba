"""Redis hung (SIGSTOP) and killed under sessions and conversation stores: 503 + Retry-After
(or anonymous / empty when the app opts in), probes unaffected, never a 500 or a hang."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ember import Ember, Request
from ember.ai.context import ConversationContext, RedisConversationStore
from ember.exceptions import ConfigError
from ember.sessions import RedisSessionStore, SessionMiddleware
from tests._services import _die_with_parent, _free_port, _missing, _wait_port

GUARD = 10.0  # seconds: the client's hang guard (the policies answer within ~1 s)


class PrivateRedis:
    """A redis-server of this test alone, so it can be stopped, killed and restarted."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            _missing("redis-server")
        self.binary = binary
        self.port = _free_port()
        self.dir = tempfile.mkdtemp(prefix="ember-redis-outage-")
        self.url = f"redis://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        _wait_port(self.port, self.proc, "redis-server")

    def hang(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)  # type: ignore[union-attr]

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)  # type: ignore[union-attr]

    def kill(self) -> None:
        assert self.proc is not None
        self.resume()
        self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    try:
        yield server
    finally:
        server.close()


def session_app(url: str, **options: Any) -> Ember:
    app = Ember()
    app.add_middleware(SessionMiddleware("k" * 32, store=RedisSessionStore(url), **options))

    @app.get("/login")
    async def login(request: Request) -> str:
        request.session["user"] = "alice"
        return "ok"

    @app.get("/me")
    async def me(request: Request) -> dict[str, Any]:
        return {"user": request.session.get("user"),
                "unavailable": request.session.unavailable}

    @app.get("/plain")
    async def plain() -> str:
        return "plain"

    @app.get("/loaded")
    async def loaded(request: Request) -> dict[str, Any]:
        session = await request.session.load()
        return {"user": session.get("user")}

    app.add_health()
    return app


def _expect_503(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "1"
    assert "session store" in r.json()["detail"] or "conversation" in r.json()["detail"]


@pytest.mark.parametrize("outage", ["hung", "killed"])
def test_sessions_when_redis_is_down(serve: Any, redis: PrivateRedis, outage: str) -> None:
    closed = serve(session_app(redis.url))
    opened = serve(session_app(redis.url, fail_open=True))
    with httpx.Client(base_url=closed, timeout=GUARD) as c, \
            httpx.Client(base_url=opened, timeout=GUARD) as o:
        assert c.get("/login").status_code == 200 and o.get("/login").status_code == 200
        assert c.get("/me").json()["user"] == "alice"
        redis.hang() if outage == "hung" else redis.kill()
        # a request without the cookie never talks to the store
        assert httpx.get(closed + "/plain", timeout=GUARD).text == "plain"
        assert httpx.get(closed + "/login", timeout=GUARD).status_code == 503  # save fails
        # with the cookie: 503 + Retry-After (fail closed) or anonymous (fail open)
        _expect_503(c.get("/me"))
        _expect_503(c.get("/loaded"))
        # a handler that never uses the session is served as usual, cookie or not
        assert c.get("/plain").text == "plain"
        anonymous = o.get("/me")
        assert anonymous.json() == {"user": None, "unavailable": True}
        assert "set-cookie" not in o.get("/login").headers  # nothing saved, nothing set
        # probes never touch the session store; readiness reports it
        assert c.get("/livez").status_code == 200
        ready = c.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["sessions"]["status"] == "fail"
        if outage == "hung":
            redis.resume()
            assert c.get("/me").json()["user"] == "alice"  # the data survived
        else:
            redis.start()
            assert c.get("/me").json()["user"] is None  # a new, empty Redis
            assert c.get("/login").status_code == 200
        assert c.get("/readyz").status_code == 200


def conversation_app(store: RedisConversationStore) -> Ember:
    app = Ember()
    app.conversation_store = store

    @app.ai_route("/chat")
    async def chat(request: Request, context: ConversationContext) -> dict[str, Any]:
        body = await request.json()
        context.add_message("user", body["message"])
        return {"id": context.id, "seen": len(context.messages)}

    app.add_health()
    return app


@pytest.mark.parametrize("outage", ["hung", "killed"])
def test_conversations_when_redis_is_down(serve: Any, redis: PrivateRedis, outage: str) -> None:
    closed = serve(conversation_app(RedisConversationStore(redis.url)))
    opened = serve(conversation_app(RedisConversationStore(redis.url, fail_open=True)))
    with httpx.Client(timeout=GUARD) as c:
        first = c.post(closed + "/chat", json={"message": "hi"}).json()
        cid = {"x-conversation-id": first["id"]}
        assert c.post(closed + "/chat", json={"message": "again"}, headers=cid).json()[
            "seen"] == 2
        redis.hang() if outage == "hung" else redis.kill()
        _expect_503(c.post(closed + "/chat", json={"message": "x"}, headers=cid))
        _expect_503(c.post(closed + "/chat", json={"message": "new"}))  # save fails
        r = c.post(opened + "/chat", json={"message": "x"}, headers=cid)
        assert r.status_code == 200 and r.json()["seen"] == 1  # started empty, not saved
        ready = c.get(closed + "/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["conversations"]["status"] == "fail"
        if outage == "hung":
            redis.resume()
            assert c.post(closed + "/chat", json={"message": "back"}, headers=cid).json()[
                "seen"] == 3


@pytest.mark.parametrize("options", [{"timeout": 0}, {"timeout": "1"}, {"fail_open": 1},
                                     {"timeout": 61}])
def test_bad_outage_options(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        SessionMiddleware("k" * 32, **options)
    with pytest.raises(ConfigError):
        RedisConversationStore(**options)
    with pytest.raises(ConfigError):
        RedisConversationStore("http://nope")


def test_lazy_sessions_never_touch_a_hung_store_unless_loaded(serve: Any,
                                                              redis: PrivateRedis) -> None:
    app = Ember()
    app.add_middleware(SessionMiddleware("k" * 32, store=RedisSessionStore(redis.url),
                                         lazy=True))

    @app.get("/login")
    async def login(request: Request) -> str:
        session = await request.session.load()
        session["user"] = "bob"
        return "ok"

    @app.get("/me")
    async def me(request: Request) -> Any:
        return {"user": (await request.session.load()).get("user")}

    @app.get("/plain")
    async def plain(request: Request) -> str:
        return "plain"

    @app.get("/early")
    async def early(request: Request) -> str:
        try:
            request.session.get("user")
        except RuntimeError as exc:
            return str(exc)
        return "no error"

    base = serve(app)
    with httpx.Client(base_url=base, timeout=GUARD) as c:
        assert c.get("/login").status_code == 200
        assert c.get("/me").json() == {"user": "bob"}
        assert "await request.session.load()" in c.get("/early").text
        redis.hang()
        for _ in range(3):  # never asks the (stopped) store: no 503, no wait
            assert c.get("/plain").text == "plain"
        _expect_503(c.get("/me"))
        redis.resume()
        assert c.get("/me").json() == {"user": "bob"}


def test_a_stream_whose_conversation_cannot_be_saved_still_ends_cleanly(
        serve: Any, redis: PrivateRedis, caplog: pytest.LogCaptureFixture) -> None:
    import asyncio
    import threading

    release = threading.Event()
    app = Ember()
    app.conversation_store = RedisConversationStore(redis.url)

    @app.ai_route("/stream", streaming=True)
    async def stream(request: Request, context: ConversationContext) -> Any:
        async def tokens() -> Any:
            yield "one "
            while not release.is_set():
                await asyncio.sleep(0.01)
            yield "two"
        context.add_message("user", "hi")
        return tokens()

    base = serve(app)
    with httpx.Client(timeout=GUARD) as c, c.stream("POST", base + "/stream", json={}) as r:
        assert r.status_code == 200
        chunks = r.iter_text()
        first = next(chunks)
        redis.kill()  # the save at the end of the stream fails
        release.set()
        text = first + "".join(chunks)
    assert "one" in text and "two" in text
    # the outage is a warning (once), not a failed stream with a traceback
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
    assert any("conversation store save failed" in r.getMessage() for r in caplog.records)


def test_a_burst_beyond_the_pool_waits_for_a_connection(serve: Any, redis: PrivateRedis) -> None:
    """150 requests at once need more Redis connections than redis-py's default pool (100,
    which raises for the 101st): they wait for a connection, never a spurious outage."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    app = Ember()
    app.add_middleware(SessionMiddleware("k" * 32, store=RedisSessionStore(redis.url,
                                                                          timeout=GUARD),
                                         timeout=GUARD))

    @app.get("/login")
    async def login(request: Request) -> str:
        request.session["user"] = "alice"
        return "ok"

    @app.get("/me")
    async def me(request: Request) -> Any:
        return request.session.get("user")

    base = serve(app)
    cookie = httpx.get(base + "/login", timeout=GUARD).cookies
    started = threading.Barrier(151)

    def one(_: int) -> int:
        with httpx.Client(base_url=base, cookies=cookie, timeout=3 * GUARD) as client:
            started.wait(GUARD)
            return client.get("/me").status_code

    redis.hang()  # NOTE: every load waits, so all 150 need a connection at once
    try:
        with ThreadPoolExecutor(150) as pool:
            futures = [pool.submit(one, i) for i in range(150)]
            started.wait(GUARD)
            threading.Event().wait(1.0)  # let the server take them all in
            redis.resume()
            statuses = [f.result() for f in futures]
    finally:
        redis.resume()
    assert statuses == [200] * 150

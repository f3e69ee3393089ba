"""Virtual keys as data and the admin API (#20): memory, Redis and PostgreSQL stores."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest

from ember import Ember
from ember.gateway import Budget
from tests.gateway._procs import GatewayProcess
from tests.gateway.conftest import gateway_app

openai = pytest.importorskip("openai")
MASTER = "master-key-0123456789abcdef"
ADMIN = {"authorization": f"Bearer {MASTER}"}
USER = [{"role": "user", "content": "hi"}]
GUARD = 30.0


def _wait(predicate, what: str) -> None:
    deadline = time.monotonic() + GUARD
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def _chat(url: str, secret: str, model: str = "fast", **extra) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", headers={"authorization": f"Bearer {secret}"},
                      content=orjson.dumps({"model": model, "messages": USER, "max_tokens": 5,
                                            **extra}), timeout=GUARD)


def _create(url: str, **fields) -> dict:
    r = httpx.post(url + "/v1/admin/keys", headers=ADMIN, json=fields, timeout=GUARD)
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
def url(serve):
    app = gateway_app()
    app.mount_openai({"fast": "offline/echo", "other": "offline/upper"},
                     api_keys={"static": "sk-static-key-0001"}, master_key=MASTER,
                     team_budgets={"search": Budget(tokens=400, period="day")})
    return serve(app)


def test_admin_api_is_not_served_without_a_master_key(serve, monkeypatch):
    monkeypatch.delenv("EMBER_GATEWAY_MASTER_KEY", raising=False)
    app = gateway_app()
    app.mount_openai("offline/echo", api_keys=["sk-gateway-key"])
    url = serve(app)
    for method in ("GET", "POST"):
        r = httpx.request(method, url + "/v1/admin/keys", headers=ADMIN)
        assert r.status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {MASTER}", "Bearer",
                                    "Bearer sk-static-key-0001", f"Bearer {MASTER}x"])
def test_admin_api_needs_the_master_key(url, header):
    headers = {"authorization": header} if header else {}
    for method, path in (("GET", "/v1/admin/keys"), ("POST", "/v1/admin/keys"),
                         ("GET", "/v1/admin/keys/key_x"), ("DELETE", "/v1/admin/keys/key_x"),
                         ("PATCH", "/v1/admin/keys/key_x"),
                         ("POST", "/v1/admin/keys/key_x/rotate")):
        r = httpx.request(method, url + path, headers=headers, content=b"{}")
        assert r.status_code == 401, (method, path, r.text)


def test_key_lifecycle_with_the_openai_sdk(url):
    created = _create(url, name="ci", models=["fast"], owner="ana@example.com",
                      metadata={"ticket": 42})
    secret = created["key"]
    assert secret.startswith("sk-ember-") and "hash" not in created
    client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
    assert client.chat.completions.create(model="fast", messages=USER).choices
    assert [m.id for m in client.models.list()] == ["fast"]  # only what it may use
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="other", messages=USER)
    listed = httpx.get(url + "/v1/admin/keys", headers=ADMIN).json()["data"]
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0] and "hash" not in listed[0] and secret not in str(listed)
    # PATCH: now it may use both models
    r = httpx.patch(url + f"/v1/admin/keys/{created['id']}", headers=ADMIN,
                    json={"models": None})
    assert r.status_code == 200 and r.json()["models"] is None
    assert client.chat.completions.create(model="other", messages=USER).choices
    # rotate: the old secret stops working, the new one works
    rotated = httpx.post(url + f"/v1/admin/keys/{created['id']}/rotate", headers=ADMIN).json()
    assert rotated["id"] == created["id"] and rotated["key"] != secret
    assert _chat(url, secret).status_code == 401
    assert _chat(url, rotated["key"]).status_code == 200
    # revoke
    r = httpx.delete(url + f"/v1/admin/keys/{created['id']}", headers=ADMIN)
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert _chat(url, rotated["key"]).status_code == 401
    assert httpx.get(url + f"/v1/admin/keys/{created['id']}", headers=ADMIN).json()["revoked"]
    # static keys keep working beside the store
    assert _chat(url, "sk-static-key-0001").status_code == 200
    client.close()


def test_virtual_key_budget_limits_and_expiry(url):
    small = _create(url, name="small", budget={"tokens": 200, "period": "day"},
                    limits={"rpm": 100})
    statuses = []
    while len(statuses) < 40 and 429 not in statuses:
        statuses.append(_chat(url, small["key"]).status_code)
    assert statuses[0] == 200 and statuses[-1] == 429
    expired = _create(url, name="old", expires_at=time.time() - 1)
    r = _chat(url, expired["key"])
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    for bad in ("sk-ember-" + "x" * 43, "sk-ember-", small["key"] + "x", small["key"][:-1]):
        assert _chat(url, bad).status_code == 401


def test_team_budget_spans_its_keys(url):
    a = _create(url, name="a", team="search")
    b = _create(url, name="b", team="search")
    c = _create(url, name="c", team="other")
    spent = 0
    statuses = []
    for i in range(60):
        r = _chat(url, (a, b)[i % 2]["key"])
        statuses.append(r.status_code)
        if r.status_code == 200:
            spent += r.json()["usage"]["total_tokens"]
        elif statuses.count(429) >= 2:  # both keys refused by the team's budget
            break
    assert 429 in statuses and 0 < spent <= 400
    assert _chat(url, c["key"]).status_code == 200  # another team is not charged


@pytest.mark.parametrize("field,value", [
    ("name", ""), ("name", 5), ("name", "x" * 201), ("name", "a\nb"), ("models", "fast"),
    ("models", [1]), ("models", [""]), ("budget", 5), ("budget", {"tokens": -1}),
    ("budget", {"cost": "1"}), ("budget", {"tokens": 1, "period": "fortnight"}),
    ("budget", {"tokens": 1, "bogus": 2}), ("budget", {}), ("limits", []),
    ("limits", {"rpm": 0}), ("limits", {"tpm": "10"}), ("limits", {"burst": 1}),
    ("team", ["x"]), ("owner", {}), ("metadata", "x"), ("metadata", {"x": "y" * 20000}),
    ("expires_at", "tomorrow"), ("expires_at", -5), ("expires_at", True), ("bogus", 1),
])
def test_garbage_in_admin_fields_is_a_400_naming_it(url, field, value):
    body = orjson.dumps({field: value}) if field != "expires_at" or value is not True else \
        b'{"expires_at": true}'
    r = httpx.post(url + "/v1/admin/keys", headers=ADMIN, content=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"].startswith(field)
    created = _create(url, name="ok")
    r = httpx.patch(url + f"/v1/admin/keys/{created['id']}", headers=ADMIN, content=body)
    assert r.status_code == 400 and r.json()["error"]["param"].startswith(field)


@pytest.mark.parametrize("raw", [b"{", b"[]", b'"x"', b"\xff"])
def test_garbage_admin_bodies(url, raw):
    r = httpx.post(url + "/v1/admin/keys", headers=ADMIN, content=raw)
    assert r.status_code == 400


def test_unknown_key_ids_are_404(url):
    for method in ("GET", "PATCH", "DELETE"):
        r = httpx.request(method, url + "/v1/admin/keys/key_nope", headers=ADMIN, content=b"{}")
        assert r.status_code == 404
    assert httpx.post(url + "/v1/admin/keys/%00/rotate", headers=ADMIN).status_code == 404


@pytest.mark.parametrize("options", [{"master_key": "short"}, {"master_key": 5},
                                     {"master_key": " padded-master-key-0123 "},
                                     {"master_key": "sk-static-key-0001-dup",
                                      "api_keys": ["sk-static-key-0001-dup"]},
                                     {"key_store": "mysql://x"}, {"key_store": object()},
                                     {"team_budgets": {"t": 5}}, {"team_budgets": ["t"]}])
def test_bad_key_options_are_refused(options):
    with pytest.raises(ValueError) as info:
        Ember().mount_openai("offline/echo", **options)
    assert str(info.value)


def test_master_key_from_the_environment(serve, monkeypatch):
    monkeypatch.setenv("EMBER_GATEWAY_MASTER_KEY", MASTER)
    app = gateway_app()
    app.mount_openai("offline/echo")
    url = serve(app)
    created = _create(url, name="env")
    assert _chat(url, created["key"], model="offline/echo").status_code == 200
    assert _chat(url, "anything", model="offline/echo").status_code == 401  # keys required now


def test_key_store_down_fails_closed(serve, closed_port):
    app = gateway_app()
    app.mount_openai("offline/echo", master_key=MASTER,
                     key_store=f"redis://127.0.0.1:{closed_port}/0")
    url = serve(app)
    r = _chat(url, "sk-ember-" + "a" * 43, model="offline/echo")
    assert r.status_code == 503 and r.headers["retry-after"]
    r = httpx.post(url + "/v1/admin/keys", headers=ADMIN, json={"name": "x"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "key_store_unavailable"


# -- shared stores across processes -----------------------------------------------------------
def _store_config(store: str) -> dict:
    return {"models": {"fast": "offline/echo"}, "master_key": MASTER, "key_store": store,
            "budget_store": store if store.startswith("redis") else None}


@pytest.mark.slow  # two server processes (run by default)
@pytest.mark.parametrize("kind", ["redis", "postgres"])
def test_keys_apply_on_every_process(request, tmp_path, kind):
    if kind == "redis":
        import redis

        server = request.getfixturevalue("redis_server")
        redis.Redis.from_url(server.url + "/10").flushdb()
        store = server.url + "/10"
    else:
        store = request.getfixturevalue("db").url
    config = {k: v for k, v in _store_config(store).items() if v is not None}
    one = GatewayProcess(tmp_path, 2, config)
    two = GatewayProcess(tmp_path, 1, config)
    try:
        created = _create(one.url, name="shared", budget={"tokens": 300})
        _wait(lambda: _chat(two.url, created["key"]).status_code == 200,
              "the key to work on the other process")
        httpx.delete(two.url + f"/v1/admin/keys/{created['id']}", headers=ADMIN,
                     timeout=GUARD)
        _wait(lambda: _chat(one.url, created["key"]).status_code == 401,
              "the revocation to apply on the first process")
        listed = httpx.get(one.url + "/v1/admin/keys", headers=ADMIN,
                           timeout=GUARD).json()["data"]
        assert [k["revoked"] for k in listed] == [True]
    finally:
        one.stop()
        two.stop()

"""``ember keys create|list|rotate|revoke`` against a running gateway (#20)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import orjson
import pytest

from tests.gateway.conftest import gateway_app

MASTER = "master-key-0123456789abcdef"


def _ember(*args: str, master: str | None = MASTER) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "EMBER_GATEWAY_MASTER_KEY"}
    if master is not None:
        env["EMBER_GATEWAY_MASTER_KEY"] = master
    return subprocess.run([sys.executable, "-m", "ember.cli", "keys", *args], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def url(serve):
    app = gateway_app()
    app.mount_openai({"fast": "offline/echo"}, master_key=MASTER)
    return serve(app) + "/v1"


def _chat(url: str, secret: str) -> int:
    return httpx.post(url + "/chat/completions", headers={"authorization": f"Bearer {secret}"},
                      content=orjson.dumps({"model": "fast", "max_tokens": 5, "messages": [
                          {"role": "user", "content": "hi"}]})).status_code


def test_keys_cli_round_trip(url):
    out = _ember("create", "--url", url, "--name", "ci", "--models", "fast", "--team", "t1",
                 "--budget-tokens", "1000", "--rpm", "60", "--metadata", '{"a": 1}')
    assert out.returncode == 0, out.stderr
    created = json.loads(out.stdout)
    assert created["models"] == ["fast"] and created["limits"]["rpm"] == 60
    assert _chat(url, created["key"]) == 200
    listed = json.loads(_ember("list", "--url", url).stdout)["data"]
    assert [k["id"] for k in listed] == [created["id"]] and created["key"] not in str(listed)
    rotated = json.loads(_ember("rotate", "--url", url, created["id"]).stdout)
    assert _chat(url, created["key"]) == 401 and _chat(url, rotated["key"]) == 200
    assert _ember("revoke", "--url", url, created["id"]).returncode == 0
    assert _chat(url, rotated["key"]) == 401


@pytest.mark.parametrize("args,reason", [
    (("create", "--rpm", "0"), "limits.rpm"), (("create", "--budget-tokens", "-5"), "tokens"),
    (("create", "--metadata", "{nope"), "--metadata"), (("rotate", "key_nope"), "404"),
    (("revoke", "key_nope"), "404"),
])
def test_keys_cli_bad_input_says_why(url, args, reason):
    out = _ember(*args[:1], "--url", url, *args[1:])
    assert out.returncode == 1 and reason in out.stderr, out.stderr


def test_keys_cli_master_key_and_url_errors(url, closed_port):
    out = _ember("list", "--url", url, master=None)
    assert out.returncode == 1 and "EMBER_GATEWAY_MASTER_KEY" in out.stderr
    out = _ember("list", "--url", url, master="wrong-master-key-0000000")
    assert out.returncode == 1 and "401" in out.stderr and "wrong-master" not in out.stderr
    out = _ember("list", "--url", f"http://127.0.0.1:{closed_port}/v1")
    assert out.returncode == 1 and "cannot reach" in out.stderr
    out = _ember("list", "--url", "ftp://x")
    assert out.returncode == 1 and "http" in out.stderr

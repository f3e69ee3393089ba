"""``TokenLimits(store="redis://...")``: one tokens-per-minute budget for every worker (#20)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from ember import ConversationContext, Ember, Request, TokenLimits
from ember.exceptions import ConfigError


def _app(limits: TokenLimits) -> Ember:
    app = Ember()

    @app.ai_route("/chat", token_limits=limits)
    async def chat(request: Request, context: ConversationContext):
        return {"ok": True}

    return app


async def _burst(urls: list[str], n: int) -> list[int]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=30, limits=limits,
                                 headers={"x-api-key": "shared-key"}) as c:
        rs = await asyncio.gather(*[c.post(urls[i % len(urls)] + "/chat",
                                           json={"message": "a few words here"})
                                    for i in range(n)])
    return [r.status_code for r in rs]


def test_two_workers_share_one_token_budget(serve, redis_server):
    import redis

    redis.Redis.from_url(redis_server.url + "/9").flushdb()
    limits = TokenLimits(tokens_per_minute=100, store=redis_server.url + "/9")
    urls = [serve(_app(limits)), serve(_app(limits))]  # two workers, one Redis
    from ember.ai.routes import prompt_text
    from ember.models.tokens import count_tokens

    per = count_tokens(prompt_text({"message": "a few words here"}))
    shared = asyncio.run(_burst(urls, 60))
    assert set(shared) == {200, 429}
    # the prompts both workers admitted fit one budget of 100 tokens, not two (completions
    # charged after early answers may leave room for fewer)
    assert 0 < shared.count(200) * per <= 100


def test_shared_token_store_down_fails_open(serve, closed_port, caplog):
    limits = TokenLimits(tokens_per_minute=5, store=f"redis://:hunter2pass@127.0.0.1:"
                                                      f"{closed_port}/0")
    url = serve(_app(limits))
    assert set(asyncio.run(_burst([url], 5))) == {200}
    assert "unavailable" in caplog.text and "hunter2pass" not in caplog.text


@pytest.mark.parametrize("store", ["http://x", 5, "", "redis"])
def test_bad_token_store_is_refused(store):
    with pytest.raises(ConfigError) as info:
        TokenLimits(tokens_per_minute=5, store=store)
    assert "store" in str(info.value)

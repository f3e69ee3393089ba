"""ConversationContext and its stores (memory, and a real Redis)."""

from __future__ import annotations

import asyncio
import time

import pytest

from ember import ConversationContext
from ember.ai import ConversationStore, MemoryConversationStore, RedisConversationStore


def test_messages_roles_and_formats():
    ctx = ConversationContext()
    assert len(ctx.id) == 32 and ctx.messages == []
    ctx.add_message("system", "Be terse.")
    ctx.add_message("user", "Hi")
    ctx.add_message("assistant", None, tool_calls=[{"id": "c1"}])
    ctx.add_message("tool", "42", tool_call_id="c1")
    assert ctx.to_openai()[2] == {"role": "assistant", "content": None,
                                  "tool_calls": [{"id": "c1"}]}
    ctx.to_openai()[0]["content"] = "changed"  # copies
    assert ctx.messages[0]["content"] == "Be terse."
    system, rest = ctx.to_anthropic()
    assert system == "Be terse." and [m["role"] for m in rest] == ["user", "assistant", "tool"]
    assert ctx.last_user_message == "Hi" and len(ctx) == 4
    with pytest.raises(ValueError, match="role must be one of system, user, assistant, tool"):
        ctx.add_message("wizard", "x")
    for bad in ("bad id with spaces", "", "x" * 129, "a/b"):
        with pytest.raises(ValueError):
            ConversationContext(bad)
    assert ConversationContext("conv-1.a:b_c").id == "conv-1.a:b_c"


def test_trim_keeps_system_messages_and_a_well_formed_tail():
    ctx = ConversationContext(max_tokens=60)
    ctx.add_message("system", "You are terse.")
    for i in range(20):
        ctx.add_message("user", f"message number {i} with some words")
        ctx.add_message("assistant", None, tool_calls=[{"id": str(i)}])
        ctx.add_message("tool", "result", tool_call_id=str(i))
    assert ctx.token_count() > 60
    dropped = ctx.trim()
    assert dropped > 0 and ctx.token_count() <= 60
    assert ctx.messages[0]["role"] == "system"
    assert ctx.messages[1]["role"] != "tool"
    assert ctx.trim() == 0
    before = len(ctx.messages)
    assert ctx.trim(max_tokens=1) == before - 1
    assert ctx.messages == [{"role": "system", "content": "You are terse."}]  # system stays
    assert ConversationContext().trim() == 0  # no budget, nothing to do


def test_memory_store_lru_and_ttl():
    async def main():
        store = MemoryConversationStore(max_conversations=2, ttl=0.2)
        assert isinstance(store, ConversationStore)
        await store.save("a", [{"role": "user", "content": "1"}])
        await store.save("b", [{"role": "user", "content": "2"}])
        assert await store.load("a")  # a is now the most recent
        await store.save("c", [{"role": "user", "content": "3"}])
        assert await store.load("b") == [] and len(store) == 2
        loaded = await store.load("a")
        loaded.append({"role": "user", "content": "not saved"})
        assert len(await store.load("a")) == 1  # loads are copies
        await store.delete("a")
        assert await store.load("a") == []
        await asyncio.sleep(0.25)
        assert await store.load("c") == []

    asyncio.run(main())
    with pytest.raises(ValueError):
        MemoryConversationStore(max_conversations=0)


def test_redis_store(redis_server):
    async def main():
        store = RedisConversationStore(redis_server.url, ttl=60, prefix=f"t{time.time()}:")
        try:
            assert await store.load("x") == []
            messages = [{"role": "user", "content": "héllo"}, {"role": "assistant",
                                                              "content": "hi"}]
            await store.save("x", messages)
            assert await store.load("x") == messages
            assert 0 < await store._redis().ttl(store.prefix + "x") <= 60
            await store.delete("x")
            assert await store.load("x") == []
        finally:
            await store.close()

    asyncio.run(main())

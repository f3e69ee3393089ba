"""The test client behaves as a real HTTP client would."""

from __future__ import annotations

import pytest

from ember import Ember, Request, RouteLimits


@pytest.mark.parametrize("size", [5_000_000, 20_000_000])
def test_early_answer_to_a_large_body_is_read_not_raised(size):
    """A 413 sent before the body was read reaches the caller (no BrokenPipeError)."""
    app = Ember()

    @app.post("/upload", limits=RouteLimits(max_body_size=1000))
    async def upload(request: Request):
        return {"n": len(await request.body())}

    with app.test_client() as client:
        r = client.post("/upload", content=b"x" * size)
        assert r.status_code == 413
        assert "1000" in r.text
        assert client.post("/upload", content=b"x" * 10).json() == {"n": 10}

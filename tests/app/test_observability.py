"""Request ids and the Prometheus endpoint."""

from __future__ import annotations

from ember import Ember, Metrics, Request, RequestIDMiddleware


def test_request_id_echoed_or_created():
    app = Ember()
    app.add_middleware(RequestIDMiddleware())

    @app.get("/")
    async def index(request: Request):
        return request.state.request_id

    with app.test_client() as c:
        r = c.get("/", headers={"x-request-id": "abc-123"})
        assert r.text == "abc-123" and r.headers["x-request-id"] == "abc-123"
        r = c.get("/", headers={"x-request-id": "bad id\twith junk"})
        assert r.text != "bad id\twith junk" and len(r.headers["x-request-id"]) == 32


def test_metrics_endpoint():
    app = Ember()
    metrics = Metrics()
    app.add_middleware(metrics)
    metrics.mount(app)

    @app.get("/items/{item_id:int}")
    async def item(item_id: int):
        return {"id": item_id}

    metrics.record_model_usage("offline/echo", 3, 5, 0.0)
    with app.test_client() as c:
        c.get("/items/1")
        c.get("/items/2")
        c.get("/missing")
        text = c.get("/metrics").text
    assert 'ember_requests_total{method="GET",route="/items/{item_id:int}",status="200"} 2' in text
    assert 'route="<unmatched>",status="404"} 1' in text
    assert "ember_request_duration_seconds_bucket" in text and "ember_requests_in_flight 0" in text
    assert 'ember_model_tokens_total{model="offline/echo",kind="completion"} 5' in text

"""The Ember app of the benchmark: ``python ember_app.py PORT [variant]``.

Variants (one server process each, started by ``bench/run.py``):

- ``minimal``: ``/hello``, ``/json`` and ``/users/{id:int}`` only (no msgspec, no middleware
  imported): the app of bench/leak.py and of the idle-RSS figure there.
- ``basic``: the same plus ``POST /items`` (a msgspec.Struct body).
- ``middleware``: the same routes behind CORS + API-key middleware.
- ``sync``: ``minimal`` with plain ``def`` handlers (run in Ember's thread pool).
- ``one-route``: a single route, ``/api/r249/users/{id:int}``.
- ``many-routes``: 1,000 routes with path parameters (250 groups of 4 shapes); the
  benchmarked one, ``/api/r249/users/{id:int}``, is in the last group registered.
"""

import sys

from ember import Ember


def build(variant: str = "basic") -> Ember:
    app = Ember(openapi_url=None)
    if variant in ("one-route", "many-routes"):
        add_groups(app, range(249, 250) if variant == "one-route" else range(250),
                   only_users=variant == "one-route")
        return app
    if variant == "middleware":
        from ember import APIKeyMiddleware, CORSMiddleware

        app.add_middleware(CORSMiddleware(allow_origins=["https://bench.example"]))
        app.add_middleware(APIKeyMiddleware(api_keys=["bench-key"], header="x-api-key"))

    if variant == "sync":
        @app.get("/hello")
        def hello_sync():
            return "Hello, World!"

        @app.get("/json")
        def json_sync():
            return {"message": "Hello, World!"}

        @app.get("/users/{id:int}")
        def user_sync(id: int):
            return {"id": id}

        return app

    @app.get("/hello")
    async def hello():
        return "Hello, World!"

    @app.get("/json")
    async def json_():
        return {"message": "Hello, World!"}

    @app.get("/users/{id:int}")
    async def user(id: int):
        return {"id": id}

    if variant == "minimal":
        return app

    import msgspec

    class Item(msgspec.Struct):
        name: str
        price: float
        tags: list[str] = []

    @app.post("/items")
    async def create(item: Item):
        return {"name": item.name, "price": item.price, "tags": item.tags}

    return app


def add_groups(app: Ember, groups: range, only_users: bool) -> None:
    """Four route shapes per group: 1,000 routes for 250 groups."""
    for i in groups:
        async def users(id: int):
            return {"id": id}

        async def posts(id: int, slug: str):
            return {"id": id, "slug": slug}

        async def items(name: str):
            return {"name": name}

        async def status():
            return "ok"

        app.add_route(f"/api/r{i}/users/{{id:int}}", users, ["GET"], name=f"users{i}")
        if only_users:
            continue
        app.add_route(f"/api/r{i}/users/{{id:int}}/posts/{{slug}}", posts, ["GET"],
                      name=f"posts{i}")
        app.add_route(f"/api/r{i}/items/{{name}}", items, ["GET"], name=f"items{i}")
        app.add_route(f"/api/r{i}/status", status, ["GET"], name=f"status{i}")


if __name__ == "__main__":
    port = int(sys.argv[1])
    variant = sys.argv[2] if len(sys.argv) > 2 else "basic"
    application = build(variant)
    n = len(application.routes)
    if (variant == "many-routes" and n != 1000) or (variant == "one-route" and n != 1):
        raise SystemExit(f"{variant}: expected 1000 or 1 routes, got {n}")
    application.run(host="127.0.0.1", port=port, workers=1)

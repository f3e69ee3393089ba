"""The Ember app of the benchmark: python ember_app.py PORT [variant]."""

import sys

import msgspec

from ember import APIKeyMiddleware, CORSMiddleware, Ember


class Item(msgspec.Struct):
    name: str
    price: float
    tags: list[str] = []


def build(variant: str = "basic") -> Ember:
    app = Ember(openapi_url=None)
    if variant == "middleware":
        app.add_middleware(CORSMiddleware(allow_origins=["https://bench.example"]))
        app.add_middleware(APIKeyMiddleware(api_keys=["bench-key"], header="x-api-key"))

    @app.get("/hello")
    async def hello():
        return "Hello, World!"

    @app.get("/json")
    async def json_():
        return {"message": "Hello, World!"}

    @app.get("/users/{user_id:int}")
    async def user(user_id: int):
        return {"id": user_id}

    @app.post("/items")
    async def create(item: Item):
        return {"name": item.name, "price": item.price, "tags": item.tags}

    if variant == "routes1000":
        for i in range(1000):
            async def handler(user_id: int, _i: int = i):
                return {"id": user_id, "route": _i}
            app.add_route(f"/r{i}/users/{{user_id:int}}", handler, ["GET"], name=f"r{i}")
    return app


if __name__ == "__main__":
    port = int(sys.argv[1])
    variant = sys.argv[2] if len(sys.argv) > 2 else "basic"
    build(variant).run(host="127.0.0.1", port=port, workers=1)

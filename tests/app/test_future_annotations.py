"""Injection works with ``from __future__ import annotations`` (string annotations)."""

from __future__ import annotations

import msgspec

from ember import Ember, Request


class Item(msgspec.Struct):
    name: str


app = Ember()


@app.post("/items/{item_id:int}")
async def create(item_id: int, item: Item, request: Request, verbose: bool = False):
    return {"id": item_id, "name": item.name, "verbose": verbose, "m": request.method}


def test_string_annotations_are_resolved():
    with app.test_client() as c:
        r = c.post("/items/3?verbose=1", json={"name": "x"})
        assert r.json() == {"id": 3, "name": "x", "verbose": True, "m": "POST"}
        assert c.post("/items/3", json={"name": 3}).status_code == 422

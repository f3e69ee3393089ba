"""The granian RSGI peer app (run by ``granian --interface rsgi granian_app:app``).

JSON is serialized per request with orjson, as Ember does.
"""

import orjson

_JSON = [("content-type", "application/json")]
_TEXT = [("content-type", "text/plain")]


async def app(scope, proto):
    path = scope.path
    if path == "/json":
        proto.response_bytes(200, _JSON, orjson.dumps({"message": "Hello, World!"}))
    elif path.startswith("/users/"):
        proto.response_bytes(200, _JSON, orjson.dumps({"id": int(path[7:])}))
    else:
        proto.response_str(200, _TEXT, "Hello, World!")

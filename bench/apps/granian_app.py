"""The granian RSGI peer app."""

import json


async def app(scope, proto):
    path = scope.path
    if path == "/json":
        proto.response_bytes(200, [("content-type", "application/json")],
                             json.dumps({"message": "Hello, World!"}).encode())
    elif path.startswith("/users/"):
        proto.response_bytes(200, [("content-type", "application/json")],
                             json.dumps({"id": int(path[7:])}).encode())
    else:
        proto.response_str(200, [("content-type", "text/plain")], "Hello, World!")

"""The socketify peer app: ``python socketify_app.py PORT`` (one process, one thread).

JSON is serialized per request with orjson, as Ember does.
"""

import sys

import orjson
from socketify import App

JSON = b"application/json"

app = App()
app.get("/hello", lambda res, req: res.end("Hello, World!"))
app.get("/json", lambda res, req: res.send(orjson.dumps({"message": "Hello, World!"}),
                                           content_type=JSON))
app.get("/users/:id", lambda res, req: res.send(orjson.dumps({"id": int(req.get_parameter(0))}),
                                                content_type=JSON))
app.listen(int(sys.argv[1]), lambda config: None)
app.run()

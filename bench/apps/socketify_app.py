"""The socketify peer app: python socketify_app.py PORT."""

import sys

from socketify import App

app = App()
app.get("/hello", lambda res, req: res.end("Hello, World!"))
app.get("/json", lambda res, req: res.send({"message": "Hello, World!"}))
app.get("/users/:id", lambda res, req: res.send({"id": int(req.get_parameter(0))}))
app.listen(int(sys.argv[1]), lambda config: None)
app.run()

from ember import Ember
app = Ember()
@app.get("/")
async def index():
    return {"hello": "world"}
app.run(host="0.0.0.0", port=8000, workers=4)

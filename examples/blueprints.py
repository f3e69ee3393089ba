from ember import Ember, Blueprint, JSONResponse
app = Ember()
admin = Blueprint()
@admin.get("/users")
async def list_users():
    return JSONResponse({"users": []})
@admin.post("/users")
async def create_user(request):
    data = await request.json()
    return JSONResponse(data, status_code=201)
app.add_blueprint(admin, prefixes={"*": "/admin"})
app.run(port=8000)

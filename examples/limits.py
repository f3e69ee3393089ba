from ember import Ember, RouteLimits, TokenLimits, ServerLimits
app = Ember(
    server_limits=ServerLimits(keep_alive_timeout=30),
)
@app.post(
    "/upload",
    limits=RouteLimits(max_body_size=50 * 1024 * 1024), # 50 MB
)
async def upload(request):
    body = await request.body()
    return {"size": len(body)}
@app.ai_route(
    "/v1/chat",
    methods=["POST"],
    token_limits=TokenLimits(tokens_per_minute=10_000, max_prompt_tokens=4_096),
)
async def chat(request, context):
    ...

from ember import Ember, RedisCache, MemcachedCache, StaticCache
app = Ember()
# Static in-memory cache (no TTL, perfect for health checks)
@app.get("/health", cache=StaticCache())
async def health():
    return {"status": "ok"}
# Redis cache — shared across all workers
task_cache = RedisCache(url="redis://localhost:6379", ttl=30)
@app.get("/tasks", cache=task_cache)
async def list_tasks(request):
    ...
# Memcached cache
@app.get("/posts", cache=MemcachedCache(host="localhost", port=11211, ttl=60))
async def list_posts(request):
    ...

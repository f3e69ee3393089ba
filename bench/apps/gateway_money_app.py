"""The anchor gateway app (anchors/ai/ours_gateway_app.py) with the money path on or off.

MONEY=off: as the anchor.  MONEY=memory: a budget, per-key limits (memory stores).
MONEY=redis: the same in Redis (REDIS_URL).  SPEND_DSN=postgresql://...: the spend log too.
Usage: KEY=... FAKE_BASE_URL=http://127.0.0.1:PORT/v1 MONEY=memory python gateway_money_app.py PORT
"""
import os
import sys

from ember import Ember
from ember.gateway import Budget, KeyLimits

app = Ember()
money = os.environ.get("MONEY", "off")
options: dict = {}
if money != "off":
    store = os.environ.get("REDIS_URL") if money == "redis" else None
    options = {"budget": Budget(cost=1e9, tokens=10**15, period="day"), "budget_store": store,
               "limits": KeyLimits(rpm=10**9, tpm=10**15, max_concurrent=10_000),
               "limit_store": store}
if os.environ.get("SPEND_DSN"):
    options["spend_log"] = os.environ["SPEND_DSN"]
app.mount_openai([os.environ.get("GW_MODEL", "fake/fake")], prefix="/v1",
                 api_keys=[os.environ["KEY"]], **options)

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), workers=1, log_level="warning")

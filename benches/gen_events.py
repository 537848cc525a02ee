#!/usr/bin/env python3
"""Write N scenario event lines (inbound and consent) for `wagate ingest`.

usage: python3 benches/gen_events.py N USERS > events.jsonl
About 70% inbound messages (some STOP/START), 30% consent events, spread
over USERS users, 5 senders and 30 days. Deterministic."""
import datetime
import json
import random
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
users = int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
rng = random.Random(42)
T0 = 1_772_323_200  # 2026-03-01T00:00:00Z
out = sys.stdout
for i in range(n):
    u = f"whatsapp:+1{3_000_000_000 + rng.randrange(users):010d}"
    t = T0 + rng.randrange(30 * 86400)
    at = datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if rng.random() < 0.7:
        body = rng.choice(["hi", "where is my order?", "thanks", "STOP", "start", "yes", "help"])
        line = {"op": "inbound", "at": at, "from": u,
                "to": f"whatsapp:+1415523{8000 + rng.randrange(5):04d}",
                "body": body, "id": f"SMgen{i:010d}"}
    else:
        line = {"op": "consent", "at": at, "user": u,
                "action": rng.choice(["opt_in", "opt_in", "opt_out"]),
                "scope": rng.choice(["all", "all", "marketing"]),
                "source": "import", "evidence": f"generated row {i}"}
    out.write(json.dumps(line, separators=(",", ":")) + "\n")

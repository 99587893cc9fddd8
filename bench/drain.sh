#!/usr/bin/env bash
# How fast a `guichet serve` node works through a backlog of emails (capture mode: no SMTP
# server, so the figure is the node's own cost): REQUESTS requests of the issue's workload
# through its API (five emails each), then the outbox counted each second until empty.
#   bench/drain.sh [REQUESTS=2000]
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-2000}
cargo build --release --locked --quiet
bin=$PWD/target/release/guichet
dir=$(mktemp -d)
port=$((20000 + RANDOM % 12000))
GUICHET_LOG=warn "$bin" --database "sqlite://$dir/d.db" serve --listen "127.0.0.1:$port" >"$dir/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
"$bin" --database "sqlite://$dir/d.db" bench --desk bench/workload.kdl --requests "$requests" \
  --concurrency 64 --json --api "http://127.0.0.1:$port" >/dev/null
ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
before=$(ticks)
python3 - "$dir/d.db" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
count = lambda: dict(db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall())
start, first = time.time(), count()
print(f"after the requests: {first.get('sent', 0)} of {sum(first.values())} emails sent")
while True:
    time.sleep(0.2)
    now = count()
    if not now.get("pending") and not now.get("sending"):
        break
took = time.time() - start
done = now.get("sent", 0) + now.get("dead", 0) - first.get("sent", 0) - first.get("dead", 0)
print(f"the remaining {done} in {took:.1f} s: {done / took:.0f} emails/s")
PY
echo "node CPU meanwhile: $(( ($(ticks) - before) * 1000 / $(getconf CLK_TCK) )) ms"

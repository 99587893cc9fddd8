#!/usr/bin/env bash
# How long a node takes to deliver the emails of a burst of requests: one `guichet serve`
# (delivering its emails, captured in the database: no SMTP server configured), the issue's
# workload driven through the HTTP API (5 emails a request), then the time until every email
# is out, and the node's CPU over the whole. On SQLite, or with `postgres` on the throwaway
# PostgreSQL of scripts/with-postgres (fsync off).
#   bench/emails.sh [REQUESTS=10000] [sqlite|postgres]
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-10000}
backend=${2:-sqlite}
if [ "$backend" = postgres ] && [ -z "${GUICHET_TEST_POSTGRES:-}" ]; then
  exec scripts/with-postgres "$0" "$requests" postgres
fi
cargo build --release --quiet
bin=$PWD/target/release/guichet
dir=$(mktemp -d)
trap 'kill $node 2>/dev/null || true; rm -rf "$dir"' EXIT
if [ "$backend" = postgres ]; then
  url=$GUICHET_TEST_POSTGRES
  count() { "$GUICHET_TEST_PG_BIN/psql" "$url" -Atc "SELECT COUNT(*) FROM outbox $1"; }
else
  url="sqlite://$dir/emails.db"
  count() { python3 -c "import sqlite3; print(sqlite3.connect('$dir/emails.db').execute(\"SELECT COUNT(*) FROM outbox $1\").fetchone()[0])"; }
fi
port=$((20000 + RANDOM % 12000))
GUICHET_DATABASE=$url GUICHET_LOG=warn "$bin" serve --listen "127.0.0.1:$port" >"$dir/node.log" 2>&1 &
node=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
cpu() { awk '{print $14 + $15}' "/proc/$node/stat"; }
t0=$(date +%s.%N); c0=$(cpu)
out=$(GUICHET_DATABASE=$url "$bin" bench --desk bench/workload.kdl --requests "$requests" --concurrency 64 \
  --json --api "http://127.0.0.1:$port" 2>/dev/null | tail -1)
t1=$(date +%s.%N); sent=$(count "WHERE state = 'sent'"); emails=$(count "")
while [ "$(count "WHERE state <> 'sent'")" != 0 ]; do sleep 0.1; done
t2=$(date +%s.%N); c2=$(cpu)
echo "$out" | python3 -c "
import json, sys
r = json.load(sys.stdin)
print(f\"$backend: {r['requests_per_second']:.0f} requests/s; $sent of $emails emails out when the last request ended \"
      f\"({$t1 - $t0:.1f} s), all out after {$t2 - $t0:.1f} s; node CPU {($c2 - $c0) / 100:.1f} s\")"

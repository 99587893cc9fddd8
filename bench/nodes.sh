#!/usr/bin/env bash
# Throughput through the HTTP API with 1, 2 and 3 `guichet serve` nodes on one PostgreSQL
# (the throwaway server of scripts/with-postgres: fsync off, so not durable figures), and one
# node on a SQLite file for comparison. The issue's workload (bench/workload.kdl) unless a
# desk is named, every task completed by the driver as soon as it appears (`guichet bench
# --api`), the driver spreading its calls over the nodes: each call to the next node, or with
# STICKY=true each request's calls to the node that took its submission (`bench --sticky`,
# as a load balancer routing by the request's id would).
#   bench/nodes.sh [REQUESTS=3000] [CONCURRENCY=64] [DESK=bench/workload.kdl]
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-3000}
concurrency=${2:-64}
desk=${3:-$PWD/bench/workload.kdl}
cargo build --release --quiet
bin=$PWD/target/release/guichet
dir=$(mktemp -d)
pids=()
stop_nodes() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }
trap 'stop_nodes; rm -rf "$dir"' EXIT
cpu() { local t=0; for p in "${pids[@]}"; do t=$((t + $(awk '{print $14 + $15}' /proc/$p/stat))); done; echo $t; }

# run LABEL DATABASE_URL NODES
run() {
  local label=$1 url=$2 n=$3 urls=()
  GUICHET_DATABASE=$url "$bin" serve --once >/dev/null
  for i in $(seq 1 "$n"); do
    GUICHET_DATABASE=$url GUICHET_LOG=warn "$bin" serve --listen "127.0.0.1:$((18300 + i))" >"$dir/node$i.log" 2>&1 &
    pids+=($!)
    urls+=("http://127.0.0.1:$((18300 + i))")
  done
  for u in "${urls[@]}"; do
    for _ in $(seq 100); do curl -sf "$u/healthz" >/dev/null && break; sleep 0.1; done
  done
  local before; before=$(cpu)
  local out; out=$(GUICHET_DATABASE=$url "$bin" bench --desk "$desk" --requests "$requests" --concurrency "$concurrency" --json \
    --api "$(IFS=,; echo "${urls[*]}")" $([ "${STICKY:-}" = true ] && echo --sticky))
  local used=$(( ($(cpu) - before) * 10 ))
  echo "$out" | python3 -c "
import json, sys
r = json.load(sys.stdin)
print(f\"$label: {r['requests_per_second']:.1f} requests/s, {r['commands_per_second']:.0f} API calls/s, \"
      f\"latency p50 {r['latency_ms_p50']:.0f} ms / p99 {r['latency_ms_p99']:.0f} ms, \"
      f\"nodes' CPU {$used / 1000:.2f} s ({$used / r['requests_finished']:.2f} s per 1,000 requests)\")"
  stop_nodes
}

run "SQLite, 1 node" "sqlite://$dir/bench.db" 1
for n in 1 2 3; do
  scripts/with-postgres bash -c "$(declare -f run stop_nodes cpu); bin=$bin dir=$dir requests=$requests concurrency=$concurrency desk=$desk pids=(); run 'PostgreSQL, $n node(s)' \"\$GUICHET_TEST_POSTGRES\" $n" 2>&1 | grep -v '^== PostgreSQL'
done

#!/usr/bin/env bash
# The inbox under load: 100,000 open tasks in a SQLite database, `guichet serve` in release,
# 100 concurrent clients reading a jurist's inbox page (the 50 most urgent of the tasks of
# their roles) for 20 seconds with wrk, from 127.0.0.1. Prints wrk's latency distribution.
#   bench/inbox.sh [TASKS] [CLIENTS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
tasks=${1:-100000}
clients=${2:-100}
seconds=${3:-20}
if ! command -v wrk >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk >/dev/null
fi
cargo build --release --quiet
bin=$PWD/target/release/guichet
dir=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$dir"' EXIT
export GUICHET_DATABASE="sqlite://$dir/bench.db" GUICHET_LISTEN=127.0.0.1:18089
"$bin" serve --once >/dev/null
"$bin" bench --desk interne-decentralise --seed-open-tasks "$tasks"
GUICHET_PASSWORD="un mot de passe assez long" "$bin" user add juriste@hopital.example >/dev/null
# Request logs (one line each) are left out of the measure: warnings and errors only.
GUICHET_LOG=warn "$bin" serve >"$dir/serve.log" 2>&1 &
server=$!
for _ in $(seq 50); do curl -sf http://127.0.0.1:18089/healthz >/dev/null && break; sleep 0.1; done
cookie=$(curl -s -o /dev/null -D - -X POST http://127.0.0.1:18089/login \
  --data-urlencode email=juriste@hopital.example --data-urlencode "password=un mot de passe assez long" \
  | sed -n 's/^[Ss]et-[Cc]ookie: \(guichet_session=[^;]*\).*/\1/p')
[ -n "$cookie" ] || { echo "login failed"; exit 1; }
shown=$(curl -s -H "Cookie: $cookie" http://127.0.0.1:18089/inbox | grep -o 'Les [0-9]* tâches les plus urgentes sur [^.<]*' || true)
echo "inbox: $shown"
cpu() { awk '{print $14 + $15}' /proc/$server/stat; }
load() { # load PATH HEADER: wrk's latency distribution, then the server's CPU per request
  local before; before=$(cpu)
  wrk -t2 -c"$clients" -d"${seconds}s" --latency -H "$2" "http://127.0.0.1:18089$1" | tee "$dir/wrk.out"
  local n; n=$(awk '/requests in/ {print $1}' "$dir/wrk.out")
  echo "server CPU per request: $(( ($(cpu) - before) * 10000 / n )) us"
}
echo "== the inbox page, /inbox"
load /inbox "Cookie: $cookie"
token=$("$bin" token create juriste@hopital.example --name bench | grep -o 'gch_[A-Za-z0-9_-]*' | head -1)
echo "== the same through the API, /api/v1/tasks?limit=50"
load "/api/v1/tasks?limit=50" "Authorization: Bearer $token"
echo "server peak memory: $(grep VmHWM /proc/$server/status 2>/dev/null | awk '{print $2, $3}')"; tail -5 "$dir/serve.log"

#!/usr/bin/env bash
# The indicators over a million finished requests: a SQLite database filled with simulated
# requests of the three shipped models (bench/kpi-scenario.kdl: the real core on a virtual
# clock, stored as the engine stores an ended request, then folded into the monthly
# rollups), then each comparison timed, median of 5 runs of the whole `guichet kpi` process.
#   bench/kpi.sh [REQUESTS_PER_MODEL] [DATABASE_DIR]
# Keeps the database in DATABASE_DIR (default: a temporary directory, removed) so that a
# second run with the same directory skips the filling.
set -euo pipefail
cd "$(dirname "$0")/.."
per_model=${1:-333334}
dir=${2:-}
cargo build --release --quiet
if [ -z "$dir" ]; then dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT; fi
mkdir -p "$dir"
# A copy: a build meanwhile does not change the binary being measured.
cp target/release/guichet "$dir/guichet"
bin=$dir/guichet
db="sqlite://$dir/kpi-$per_model.db"
if [ ! -f "$dir/kpi-$per_model.db" ]; then
  /usr/bin/time -f "filling: %e s wall, %U s user, %M KB peak" \
    "$bin" --database "$db" simulate --scenario bench/kpi-scenario.kdl --cases "$per_model" --store
fi
ls -l "$dir/kpi-$per_model.db" | awk '{printf "database: %.1f GB\n", $5 / 1e9}'
time_kpi() { # time_kpi LABEL ARGS...: median wall time of $RUNS runs (5), and the output's size
  local label=$1; shift
  local runs=()
  for _ in $(seq "${RUNS:-5}"); do
    local t0 t1
    t0=$(date +%s%N)
    "$bin" --database "$db" kpi "$@" >"$dir/out.txt"
    t1=$(date +%s%N)
    runs+=($(( (t1 - t0) / 1000000 )))
  done
  local sorted; sorted=$(printf '%s\n' "${runs[@]}" | sort -n | tr '\n' ' ')
  local median; median=$(printf '%s\n' "${runs[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  printf '%-48s median %6s ms  (runs: %s) %s rows\n' "$label" "$median" "$sorted" "$(wc -l <"$dir/out.txt")"
}
time_kpi "indicators by model" --compare model
time_kpi "indicators by version" --compare version
time_kpi "indicators by month" --compare month
time_kpi "indicators by quarter" --compare quarter
time_kpi "step timings by model" --view steps
time_kpi "maturity x performance matrix" --view matrix
time_kpi "indicators, 2027-03-15 to 2028-06-10" --from 2027-03-15 --to 2028-06-10
time_kpi "indicators where cadre=collaboratif" --where cadre=collaboratif
# Two intake answers are not in the parts: every fact of the matching requests is read.
RUNS=1 time_kpi "where cadre=collaboratif and type-porteur=academique" --where cadre=collaboratif --where type-porteur=academique

#!/usr/bin/env bash
# The benchmark harness. Builds release, generates the standard workload (the
# 1M-patient synthetic cohort) and measures each task several times, printing
# medians. Peer tools (pyfixest, statsmodels) are installed into bench/.venv from
# PyPI when a workload compares against them. Results go to BENCHMARKS.md by hand,
# with the command that produced them.
#
#   bench/run.sh            # all workloads
#   REPEATS=3 bench/run.sh  # fewer repetitions
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS=${REPEATS:-5}
N=${N:-1000000}
OUT=bench/out
mkdir -p "$OUT"
for tool in bc /usr/bin/time; do
  command -v "$tool" > /dev/null || { apt-get update -qq && apt-get install -y -qq bc time > /dev/null; }
done
echo "== machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB; $(rustc --version)"
cargo build --release --locked --quiet
cargo build --release --locked --quiet -p healthgap-synth --examples
BIN=target/release/healthgap

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# time_cmd NAME CMD...: runs CMD $REPEATS times; prints median wall seconds and
# the peak resident memory of the last run.
time_cmd() {
  local name=$1; shift
  local times=()
  for _ in $(seq "$REPEATS"); do
    local t0 t1
    t0=$(date +%s.%N)
    /usr/bin/time -f "%M" -o "$OUT/rss.txt" "$@" > /dev/null 2> "$OUT/stderr.txt" || { cat "$OUT/stderr.txt"; exit 1; }
    t1=$(date +%s.%N)
    times+=("$(echo "$t1 - $t0" | bc -l)")
  done
  local med
  med=$(printf '%s\n' "${times[@]}" | median)
  printf '%-58s median %7.3f s   peak RSS %6.0f MB\n' "$name" "$med" "$(echo "$(cat "$OUT/rss.txt") / 1024" | bc -l)"
}

echo "== 1. synthetic generator ($N patients)"
for threads in 1 2; do
  RAYON_NUM_THREADS=$threads target/release/examples/throughput "$N" "$REPEATS"
done
time_cmd "synth $N patients -> cohort.parquet (no truth)" "$BIN" synth --patients "$N" --out "$OUT/cohort_nt" --no-truth
time_cmd "synth $N patients -> cohort.parquet + truth.json" "$BIN" synth --patients "$N" --out "$OUT/cohort"
time_cmd "synth $N patients -> + OMOP tables (parquet)" "$BIN" synth --patients "$N" --out "$OUT/cohort_omop" --omop --no-truth

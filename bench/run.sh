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

echo "== 2. estimation core ($N rows, 29 regressors, 300 hospitals) vs pyfixest"
if [ ! -x bench/.venv/bin/python ]; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install -q pyfixest pandas pyarrow statsmodels
fi
cargo build --release --locked --quiet --example bench_models
/usr/bin/time -f "%M" -o "$OUT/rss_models.txt" target/release/examples/bench_models "$N" 3 "$OUT/models.parquet" | tee "$OUT/models_rust.txt"
echo "   peak RSS (bench_models, incl. generating the cohort): $(( $(cat "$OUT/rss_models.txt") / 1024 )) MB"
bench/.venv/bin/python bench/peers_models.py "$OUT/models.parquet" 3 | tee "$OUT/models_py.txt"
for task in lpm_hospital_fe_cr1 logit_hospital_fe_cr1; do
  r=$(awk -v t="$task" '$1=="RESULT" && $2==t {print $3}' "$OUT/models_rust.txt")
  p=$(awk -v t="$task" '$1=="RESULT" && $2==t {print $3}' "$OUT/models_py.txt")
  printf '   %-26s healthgap %7.3f s   pyfixest %7.3f s   ratio %5.1fx\n' "$task" "$r" "$p" "$(echo "$p / $r" | bc -l)"
done

echo "== 3. Oaxaca-Blinder family ($N patients, White vs Black, canonical blocks) vs statsmodels / numpy"
cargo build --release --locked --quiet --example bench_decompose
/usr/bin/time -f "%M" -o "$OUT/rss_decompose.txt" target/release/examples/bench_decompose "$N" 3 "$OUT/decompose.parquet" | tee "$OUT/decompose_rust.txt"
echo "   peak RSS (bench_decompose, incl. generating the cohort): $(( $(cat "$OUT/rss_decompose.txt") / 1024 )) MB"
/usr/bin/time -f "%M" -o "$OUT/rss_decompose_py.txt" bench/.venv/bin/python -u bench/peers_decompose.py "$OUT/decompose.parquet" 3 | tee "$OUT/decompose_py.txt"
echo "   peak RSS (peers): $(( $(cat "$OUT/rss_decompose_py.txt") / 1024 )) MB"
ratio() { # ratio RUST_TASK PY_TASK LABEL
  local r p
  r=$(awk -v t="$1" '$1=="RESULT" && $2==t {print $3}' "$OUT/decompose_rust.txt")
  p=$(awk -v t="$2" '$1=="RESULT" && $2==t {print $3}' "$OUT/decompose_py.txt")
  printf '   %-44s healthgap %7.3f s   peer %8.2f s   ratio %6.1fx\n' "$3" "$r" "$p" "$(echo "$p / $r" | bc -l)"
}
ratio ob_linear_delta statsmodels_ob_pooled_twofold_threefold "OB twofold+threefold (statsmodels, no SEs)"
ratio ob_linear_fe_boot1000 numpy_cluster_bootstrap_1000_extrapolated "OB + 1000 cluster bootstrap (numpy)"
ratio yun_logit_boot200 statsmodels_logit_yun_200_extrapolated "logit Yun + 200 bootstrap (statsmodels)"
ratio hospital_all_boot500 pyfixest_hospital_boot500_extrapolated "hospital analysis + 500 bootstrap (pyfixest)"
bench/.venv/bin/python -u bench/peers_reduction.py "$OUT/decompose.parquet" 3 | tee -a "$OUT/decompose_py.txt"
ratio disparity_reduction_boot500 statsmodels_reduction_500_extrapolated "disparity reduction + 500 bootstrap (statsmodels)"

echo "== 5. the whole canonical study at $N patients (analyses/cabg_synthetic.toml, 500 replicates, every format)"
sed -e "s/synthetic = { patients = 200000, seed = 7 }/synthetic = { patients = $N, seed = 7 }/" \
    -e 's#^out_dir = .*#out_dir = "study_report"#' analyses/cabg_synthetic.toml > "$OUT/cabg_study.toml"
grep -q "patients = $N" "$OUT/cabg_study.toml" || { echo "could not set the cohort size"; exit 1; }
for _ in $(seq "$REPEATS"); do
  /usr/bin/time -f "%e %M" -o "$OUT/rss_study.txt" "$BIN" run "$OUT/cabg_study.toml" > "$OUT/study_stdout.txt" 2> "$OUT/study_stderr.txt"
  read -r secs kb < "$OUT/rss_study.txt"
  printf '   canonical study: %6.1f s   peak RSS %5.0f MB   (%s)\n' "$secs" "$(echo "$kb / 1024" | bc -l)" \
    "$(grep -E '^[a-z_]+: [0-9]+ result' "$OUT/study_stderr.txt" | tr '\n' ' ')"
done

echo "== 6. multiple imputation (#16)"
# mi_config DATA M ITERATIONS: a study that imputes the canonical analysis
# variables (the [factors] of the canonical study) within each group, with
# every outcome and the hospital means as predictors, and runs one crude
# analysis on the imputations (the imputation is what is timed).
mi_config() {
  cat <<TOML
[study]
name = "imputation benchmark"
seed = 1
[data]
path = "$1"
[cohort]
filters = ["age >= 18"]
missing = "multiple_imputation"
[imputation]
m = $2
iterations = $3
[groups]
column = "race"
reference = "White"
compare = ["Black", "Hispanic"]
[outcomes]
death_30d = { type = "binary" }
major_morbidity = { type = "binary" }
los_days = { type = "continuous" }
[factors]
biological = ["age", "female", "diabetes", "dialysis", "heart_failure", "lung_disease", "pad", "prior_mi", "ejection_fraction", "status"]
socioeconomic = ["adi", "insurance"]
[variables]
insurance = { type = "categorical", reference = "private" }
status = { type = "categorical", reference = "elective" }
[design]
cluster = "hospital_id"
[[analysis]]
method = "crude"
outcomes = ["death_30d"]
[report]
out_dir = "mi_report"
formats = ["json"]
TOML
}
HOLES=(--set missing.ejection_fraction=0.2 --set missing.diabetes=0.1 --set missing.insurance=0.1)
"$BIN" synth --patients "$N" --no-truth "${HOLES[@]}" --out "$OUT/mi_cohort" > /dev/null 2>&1
mi_config "cohort.parquet" 20 10 > "$OUT/mi_cohort/mi.toml"
for _ in $(seq "$REPEATS"); do
  /usr/bin/time -f "%e %M" -o "$OUT/rss_mi.txt" "$BIN" run "$OUT/mi_cohort/mi.toml" > /dev/null 2> "$OUT/mi_stderr.txt" || true
  read -r secs kb < "$OUT/rss_mi.txt"
  printf '   impute 3 variables (pmm, logistic, multinomial) at %s, m = 20, 10 iterations: %s; whole run %6.1f s, peak RSS %5.0f MB\n' \
    "$N" "$(grep -E '^imputed' "$OUT/mi_stderr.txt")" "$secs" "$(echo "$kb / 1024" | bc -l)"
done
sed -e "s/patients = 50000, seed = 7/patients = 200000, seed = 7/" \
    -e 's#^out_dir = .*#out_dir = "mi_study_report"#' analyses/cabg_missing_synthetic.toml > "$OUT/mi_study.toml"
grep -q "patients = 200000" "$OUT/mi_study.toml" || { echo "could not set the cohort size"; exit 1; }
/usr/bin/time -f "%e %M" -o "$OUT/rss_mi_study.txt" "$BIN" run "$OUT/mi_study.toml" > /dev/null 2> "$OUT/mi_study_stderr.txt" || true
read -r secs kb < "$OUT/rss_mi_study.txt"
printf '   canonical missing-data study at 200000, m = 20, delta: %6.1f s   peak RSS %5.0f MB   (%s)\n' \
  "$secs" "$(echo "$kb / 1024" | bc -l)" "$(grep -E '^imputed' "$OUT/mi_study_stderr.txt")"
# Against R mice (pmm, logreg, polyreg) on the same 200k cohort, the same
# predictors and the same m and iterations, in this run.
command -v Rscript > /dev/null && Rscript -e 'library(mice)' > /dev/null 2>&1 || \
  { apt-get update -qq && apt-get install -y -qq r-base-core r-cran-mice > /dev/null; }
"$BIN" synth --patients 200000 --no-truth --format csv "${HOLES[@]}" --out "$OUT/mi_peer" > /dev/null 2>&1
MICE_M=${MICE_M:-5}; MICE_IT=${MICE_IT:-5}
mi_config "cohort.csv" "$MICE_M" "$MICE_IT" > "$OUT/mi_peer/mi.toml"
"$BIN" run "$OUT/mi_peer/mi.toml" > /dev/null 2> "$OUT/mi_peer_stderr.txt" || true
ours=$(grep -E '^imputed' "$OUT/mi_peer_stderr.txt" | sed -E 's/.* in ([0-9.]+) s/\1/')
theirs=$(Rscript bench/peers_mice.R "$OUT/mi_peer/cohort.csv" "$MICE_M" "$MICE_IT" | awk '$1=="RESULT" {print $3}')
printf '   impute at 200000, m = %s, %s iterations: healthgap %7.2f s   mice %8.2f s   ratio %6.1fx\n' \
  "$MICE_M" "$MICE_IT" "$ours" "$theirs" "$(echo "$theirs / $ours" | bc -l)"

echo "== 7. hierarchical hospital model (#17): random-intercept and random-slope logit, 28 fixed effects, 300 hospitals"
cargo build --release --locked --quiet -p healthgap-models --example bench_glmm
/usr/bin/time -f "%M" -o "$OUT/rss_glmm.txt" target/release/examples/bench_glmm "$N" 1 | tee "$OUT/glmm_rust.txt"
echo "   peak RSS (bench_glmm at $N, incl. generating the cohort): $(( $(cat "$OUT/rss_glmm.txt") / 1024 )) MB"
# Against lme4::glmer (Debian's r-cran-lme4) on the same 200k rows, in this run.
command -v Rscript > /dev/null && Rscript -e 'library(lme4)' > /dev/null 2>&1 || \
  { apt-get update -qq && apt-get install -y -qq r-base-core r-cran-lme4 > /dev/null; }
target/release/examples/bench_glmm 200000 1 "$OUT/glmm_200k.csv" | tee "$OUT/glmm_rust_200k.txt"
LME4_LIMIT=${LME4_LIMIT:-3600}
for task in glmm_random_intercept glmm_random_slope; do
  which=ri; [ "$task" = glmm_random_slope ] && which=slope
  theirs=$(timeout "$LME4_LIMIT" Rscript bench/peers_lme4.R "$OUT/glmm_200k.csv" "$which" | awk '$1=="RESULT" {print $3}')
  r=$(awk -v t="$task" '$1=="RESULT" && $2==t {print $3}' "$OUT/glmm_rust_200k.txt")
  if [ -n "$theirs" ]; then
    printf '   %-24s at 200000: healthgap %7.2f s   lme4 %8.2f s   ratio %6.1fx\n' "$task" "$r" "$theirs" "$(echo "$theirs / $r" | bc -l)"
  else
    printf '   %-24s at 200000: healthgap %7.2f s   lme4 did not finish in %s s   ratio > %6.1fx\n' "$task" "$r" "$LME4_LIMIT" "$(echo "$LME4_LIMIT / $r" | bc -l)"
  fi
done
# The hospital analysis with the hierarchical model and 500 hospital-bootstrap replicates.
sed -e "s/patients = 1000000/patients = $N/" bench/glmm_study.toml > "$OUT/glmm_study.toml"
/usr/bin/time -f "%e %M" -o "$OUT/rss_glmm_study.txt" "$BIN" run "$OUT/glmm_study.toml" --out "$OUT/glmm_report" > /dev/null 2>&1 || true
read -r secs kb < "$OUT/rss_glmm_study.txt"
printf '   hospital analysis, hierarchical model, 500 hospital-bootstrap replicates at %s: %6.1f s   peak RSS %5.0f MB\n' \
  "$N" "$secs" "$(echo "$kb / 1024" | bc -l)"

echo "== 8. warehouse (#18): the study inside PostgreSQL against pulling its rows (bench/warehouse_study.toml)"
# Its own PostgreSQL server in a temporary folder on a Unix socket (as the
# postgres user when run as root: initdb refuses root); WH_N patients loaded
# with `healthgap synth --to`. The issue's target is WH_N = 10,000,000: ≤ 60 s
# and ≤ 200 MB client memory in the warehouse.
WH_N=${WH_N:-10000000}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2> /dev/null | sort -V | tail -1 || true)
if [ -z "$PGBIN" ]; then
  apt-get install -y -qq postgresql > /dev/null
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
PGDIR=$(mktemp -d /tmp/healthgap_bench_pg.XXXXXX)
RUNAS=()
if [ "$(id -u)" = 0 ]; then chown postgres "$PGDIR"; RUNAS=(runuser -u postgres --); fi
"${RUNAS[@]}" mkdir "$PGDIR/sock"
"${RUNAS[@]}" "$PGBIN/initdb" -D "$PGDIR/data" -U postgres --auth=trust > /dev/null
"${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w \
  -o "-k $PGDIR/sock -c listen_addresses='' -c max_wal_size=8GB" start > /dev/null
stop_pg() { "${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$PGDIR/data" -m fast stop > /dev/null || true; rm -rf "$PGDIR"; }
trap stop_pg EXIT
URL="postgresql://postgres@${PGDIR//\//%2F}%2Fsock/postgres"
/usr/bin/time -f "%e %M" -o "$OUT/rss_wh_load.txt" "$BIN" synth --patients "$WH_N" --seed 7 --no-truth \
  --to "$URL" --table cabg_cohort > /dev/null
read -r secs kb < "$OUT/rss_wh_load.txt"
printf '   synth --to: %s patients generated and loaded by COPY in %6.1f s   peak RSS %6.0f MB\n' \
  "$WH_N" "$secs" "$(echo "$kb / 1024" | bc -l)"
"${RUNAS[@]}" "$PGBIN/psql" -h "$PGDIR/sock" -U postgres -q -c "VACUUM ANALYZE cabg_cohort" postgres
sed -e "s#url = \"URL\"#url = \"$URL\"#" bench/warehouse_study.toml > "$OUT/warehouse_study.toml"
sed -e '/^warehouse = /a allow_row_export = true' "$OUT/warehouse_study.toml" > "$OUT/warehouse_export.toml"
for variant in study export; do
  rm -rf "$OUT/warehouse_$variant"
  /usr/bin/time -f "%e %M" -o "$OUT/rss_wh_$variant.txt" "$BIN" run "$OUT/warehouse_$variant.toml" \
    --out "$OUT/warehouse_$variant" > /dev/null 2>&1 || true
  read -r secs kb < "$OUT/rss_wh_$variant.txt"
  label="in the warehouse (moments only)"; [ "$variant" = export ] && label="rows pulled (allow_row_export)"
  printf '   %-34s %s patients, OB + Gelbach + hospital FE, 1,000 replicates each: %7.1f s   peak RSS %6.0f MB\n' \
    "$label" "$WH_N" "$secs" "$(echo "$kb / 1024" | bc -l)"
done
stop_pg
trap - EXIT

echo "== 4. statistical recovery (ignored tests, release)"
cargo test --release --locked --test integration -- --ignored --nocapture 2>&1 | grep -E "recovery:|coverage over seeds|MI coverage|inside its interval|covered: random|test result"

#!/usr/bin/env bash
# Regenerates the DuckDB fixture of crates/sql/tests/duckdb_engine.rs: the
# test file writes the table, its rows and the statements (its ignored
# `write_statements`), DuckDB runs them (run_duckdb.py, the `duckdb` package
# from PyPI in a virtual environment here), twice: the centred pass needs the
# means of the first. Needs the network once, for the package.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
venv=${DUCKDB_VENV:-/tmp/healthgap_duckdb_venv}
[ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q duckdb==2.0.1; }
write() {
  cargo test --quiet --locked -p healthgap-sql --test duckdb_engine -- --ignored --exact write_statements > /dev/null
}
rm -f pass1.json pass2.json statements.json
write
"$venv/bin/python" run_duckdb.py pass1.json
write
"$venv/bin/python" run_duckdb.py pass2.json
rm -f statements.json
echo "wrote $here/{cohort.csv,pass1.json,pass2.json}"

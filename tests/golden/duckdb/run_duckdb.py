"""Runs the statements healthgap-sql wrote for DuckDB (statements.json) on
cohort.csv with the duckdb package and stores each result as JSON: the
statement's text, its column names and its rows (floats written by repr, so
they read back exactly). Usage: run_duckdb.py OUT.json (from this folder)."""
import json
import sys

import duckdb

spec = json.load(open("statements.json"))
con = duckdb.connect()
con.execute(spec["create"])
# The fixture's path holds no quote; the table name is quoted as DuckDB quotes.
table = '"' + spec["table"].replace('"', '""') + '"'
con.execute(f"COPY {table} FROM 'cohort.csv' (HEADER)")
out = {"duckdb": duckdb.__version__}
for s in spec["statements"]:
    cur = con.execute(s["sql"])
    out[s["name"]] = {
        "sql": s["sql"],
        "columns": [d[0] for d in cur.description],
        "rows": [list(r) for r in cur.fetchall()],
    }
json.dump(out, open(sys.argv[1], "w"), indent=1)

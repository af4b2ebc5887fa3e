"""Writes analyses/data/chicago.csv from the R `oaxaca` package's chicago data
(tests/golden/oaxaca/chicago.csv, Hlavac 2022): the same 712 rows, column
names with underscores instead of dots, and real_wage = exp(ln_real_wage)
(the outcome of the package's vignette). Missing values stay missing.

Run once from the repository root: python3 analyses/data/make_chicago.py
"""
import csv
import math

src = "tests/golden/oaxaca/chicago.csv"
dst = "analyses/data/chicago.csv"
with open(src, newline="") as f:
    rows = list(csv.DictReader(f))
names = [c.replace(".", "_") for c in rows[0].keys()] + ["real_wage"]
with open(dst, "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(names)
    for r in rows:
        ln = r["ln.real.wage"]
        w.writerow(list(r.values()) + [repr(math.exp(float(ln))) if ln != "" else ""])

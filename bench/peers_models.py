"""Times pyfixest on the rows written by the bench_models example (the same
1M-row, 29-regressor design with 300 hospitals), for bench/run.sh.

    bench/.venv/bin/python bench/peers_models.py bench/out/models.parquet REPEATS

Prints `RESULT <task> <median seconds> s (...)` lines like the Rust side.
"""
import statistics
import sys
import time

import pandas as pd
import pyfixest as pf

path = sys.argv[1] if len(sys.argv) > 1 else "bench/out/models.parquet"
repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
df = pd.read_parquet(path)
xs = [c for c in df.columns if c not in ("death_30d", "hospital_id")]
rhs = " + ".join(xs)
print(f"pyfixest {pf.__version__}: {len(df)} rows, {len(xs)} regressors")


def timed(name, fn):
    times = []
    out = None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    print(f"RESULT {name} {statistics.median(times):.4f} s ({out})", flush=True)


def feols():
    fit = pf.feols(f"death_30d ~ {rhs} | hospital_id", data=df, vcov={"CRV1": "hospital_id"})
    return f"black: {fit.coef()['black']:.6f}, se {fit.se()['black']:.6f}"


def feglm():
    fit = pf.feglm(f"death_30d ~ {rhs} | hospital_id", data=df, family="logit", vcov={"CRV1": "hospital_id"})
    return f"black: {fit.coef()['black']:.6f}, se {fit.se()['black']:.6f}"


timed("lpm_hospital_fe_cr1", feols)
timed("logit_hospital_fe_cr1", feglm)

"""Peer timing for the disparity-reduction benchmark (bench/run.sh): the usual
pandas/statsmodels way, as described in issue #6 — a logit outcome model,
target blocks drawn from reference patients of the same age and sex, a
hospital (cluster) bootstrap — on the rows written by `bench_decompose`.

For speed the peer's outcome model has no hospital term (300 dummies at 1M
rows are out of reach for statsmodels' dense Logit), so its targets are the
socioeconomic and biological blocks only (4 subsets); healthgap's benchmark
also reassigns hospitals (8 subsets). REPS replicates are timed and the time
per replicate is extrapolated to 500.

Prints `RESULT task seconds` lines.
"""
import sys
import time

import numpy as np
import pandas as pd
import statsmodels.api as sm

path = sys.argv[1]
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
d = pd.read_parquet(path)
d = d[d["group"] <= 1].reset_index(drop=True)
ses = ["adi", "insurance=medicare", "insurance=medicaid", "insurance=uninsured"]
bio = ["diabetes", "dialysis", "heart_failure", "lung_disease", "pad", "prior_mi",
       "ejection_fraction", "status=urgent", "status=emergent"]
allow = ["age", "female"]
cols = allow + bio + ses
rng = np.random.default_rng(1)
hospitals = d["hospital_id"].unique()
rows_of = {h: np.flatnonzero(d["hospital_id"].to_numpy() == h) for h in hospitals}


def estimate(df):
    X = sm.add_constant(df[["group"] + cols].to_numpy(float))
    fit = sm.Logit(df["death_30d"].to_numpy(float), X).fit(disp=0)
    c = df[df["group"] == 1]
    r = df[df["group"] == 0]
    # One reference partner per comparison patient with the same age and sex.
    key_r = r.groupby(allow).indices
    partner = np.empty(len(c), dtype=int)
    for k, idx in c.groupby(allow).indices.items():
        pool = key_r.get(k)
        if pool is None:
            partner[idx] = -1
        else:
            partner[idx] = pool[rng.integers(0, len(pool), len(idx))]
    keep = partner >= 0
    c = c[keep]
    partner = partner[keep]
    out = {}
    for name, block in [("ses", ses), ("bio", bio), ("both", ses + bio)]:
        cc = c[["group"] + cols].copy()
        cc[block] = r.iloc[partner][block].to_numpy()
        p = fit.predict(sm.add_constant(cc.to_numpy(float), has_constant="add"))
        out[name] = c["death_30d"].mean() - p.mean()
    return out


t = time.perf_counter()
estimate(d)
print(f"RESULT statsmodels_reduction_point {time.perf_counter() - t:.4f}")
ts = []
for _ in range(reps):
    draw = rng.choice(hospitals, size=len(hospitals), replace=True)
    sub = d.iloc[np.concatenate([rows_of[h] for h in draw])]
    t = time.perf_counter()
    estimate(sub)
    ts.append(time.perf_counter() - t)
per = float(np.median(ts))
print(f"RESULT statsmodels_reduction_per_replicate {per:.4f}")
print(f"RESULT statsmodels_reduction_500_extrapolated {500 * per:.2f}")

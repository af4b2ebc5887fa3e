"""Peer timings for the Oaxaca-Blinder benchmark (bench/run.sh).

Reads the rows written by `bench_decompose` (White = group 0, Black = 1,
death_30d, the canonical covariates, hospital_id) and times, on the same rows:

1. statsmodels `OaxacaBlinder`: pooled twofold + threefold (no SEs; no
   hospital term: 300 dummies at 1M rows do not fit its dense design);
2. a numpy cluster bootstrap of the linear decomposition (hospitals
   resampled; group OLS + pooled OLS by lstsq; twofold + threefold per
   replicate): REPS replicates timed, reported per replicate and extrapolated
   to 1,000;
3. a statsmodels Logit loop for the Yun decomposition: two group Logit fits
   plus the Yun aggregate and weights, per replicate, extrapolated to 200.

Prints `RESULT task seconds` lines.
"""
import sys
import time

import numpy as np
import pandas as pd
import statsmodels.api as sm
from statsmodels.stats.oaxaca import OaxacaBlinder

path = sys.argv[1]
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
d = pd.read_parquet(path)
d = d[d["group"] <= 1].reset_index(drop=True)
cov = ["age", "female", "diabetes", "dialysis", "heart_failure", "lung_disease", "pad",
       "prior_mi", "ejection_fraction", "status=urgent", "status=emergent", "adi",
       "insurance=medicare", "insurance=medicaid", "insurance=uninsured"]
y = d["death_30d"].to_numpy()
g = d["group"].to_numpy()
X = np.column_stack([np.ones(len(d))] + [d[c].to_numpy() for c in cov])
h = d["hospital_id"].to_numpy()


def timed(f, n=1):
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


# 1. statsmodels OaxacaBlinder.
exog = np.column_stack([g, X])
def sm_ob():
    ob = OaxacaBlinder(y, exog, bifurcate=0, hasconst=True, swap=False)
    ob.two_fold(two_fold_type="pooled")  # pooled with the group indicator (Jann)
    ob.three_fold()
t = timed(sm_ob, 1)
print(f"RESULT statsmodels_ob_pooled_twofold_threefold {t:.4f}")

# 2. numpy cluster bootstrap of the linear decomposition.
rng = np.random.default_rng(1)
hospitals = np.unique(h)
rows_of = {k: np.flatnonzero(h == k) for k in hospitals}
def ob_once(idx):
    yy, gg, XX = y[idx], g[idx], X[idx]
    r, c = gg == 0, gg == 1
    br = np.linalg.lstsq(XX[r], yy[r], rcond=None)[0]
    bc = np.linalg.lstsq(XX[c], yy[c], rcond=None)[0]
    bp = np.linalg.lstsq(np.column_stack([gg, XX]), yy, rcond=None)[0][1:]
    xr, xc = XX[r].mean(0), XX[c].mean(0)
    return ((xc - xr) @ bp, xc @ (bc - bp) + xr @ (bp - br),
            (xc - xr) @ br, xr @ (bc - br), (xc - xr) @ (bc - br))
def one_replicate():
    draw = rng.choice(hospitals, size=len(hospitals), replace=True)
    return ob_once(np.concatenate([rows_of[k] for k in draw]))
t = timed(one_replicate, reps)
print(f"RESULT numpy_cluster_bootstrap_per_replicate {t:.4f}")
print(f"RESULT numpy_cluster_bootstrap_1000_extrapolated {1000 * t:.2f}")

# 3. statsmodels Logit loop for Yun.
def yun(idx):
    yy, gg, XX = y[idx], g[idx], X[idx]
    r, c = gg == 0, gg == 1
    br = sm.Logit(yy[r], XX[r]).fit(disp=0).params
    bc = sm.Logit(yy[c], XX[c]).fit(disp=0).params
    F = lambda e: 1 / (1 + np.exp(-e))
    e = F(XX[c] @ br).mean() - F(XX[r] @ br).mean()
    u = (yy[c].mean() - yy[r].mean()) - e
    xr, xc = XX[r].mean(0), XX[c].mean(0)
    de = (xc - xr) * br
    du = xc * (bc - br)
    return e * de / de.sum(), u * du / du.sum()
t = timed(lambda: yun(np.arange(len(y))), 1)
print(f"RESULT statsmodels_logit_yun_point {t:.4f}")
t = timed(lambda: yun(np.concatenate([rows_of[k] for k in rng.choice(hospitals, len(hospitals))])), reps)
print(f"RESULT statsmodels_logit_yun_per_replicate {t:.4f}")
print(f"RESULT statsmodels_logit_yun_200_extrapolated {200 * t:.2f}")

# 4. The hospital analysis with pyfixest: LPM without and with hospital FE,
#    logit and FE logit (CRV1 by hospital), and a cluster bootstrap of the LPM
#    contrast (two feols per replicate, warm data; extrapolated to 500).
import pyfixest as pf
dd = d.rename(columns=lambda c: c.replace("=", "_"))
covs = " + ".join(c.replace("=", "_") for c in cov)
def pf_point():
    pf.feols(f"death_30d ~ group + {covs}", data=dd, vcov={"CRV1": "hospital_id"})
    pf.feols(f"death_30d ~ group + {covs} | hospital_id", data=dd, vcov={"CRV1": "hospital_id"})
    pf.feglm(f"death_30d ~ group + {covs}", data=dd, family="logit", vcov={"CRV1": "hospital_id"})
    pf.feglm(f"death_30d ~ group + {covs} | hospital_id", data=dd, family="logit", vcov={"CRV1": "hospital_id"})
t_point = timed(pf_point, 1)
print(f"RESULT pyfixest_hospital_models {t_point:.4f}")
def pf_replicate():
    draw = rng.choice(hospitals, size=len(hospitals), replace=True)
    rows = np.concatenate([rows_of[k] for k in draw])
    sub = dd.iloc[rows]
    a = pf.feols(f"death_30d ~ group + {covs}", data=sub).coef()["group"]
    b = pf.feols(f"death_30d ~ group + {covs} | hospital_id", data=sub).coef()["group"]
    return a - b
t = timed(pf_replicate, reps)
print(f"RESULT pyfixest_lpm_contrast_per_replicate {t:.4f}")
print(f"RESULT pyfixest_hospital_boot500_extrapolated {500 * t + t_point:.2f}")

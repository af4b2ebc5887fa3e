"""Hand-computed Yun decomposition (METHODS.md §3) on a synthetic cohort.

cohort.csv: White and Black patients of `healthgap synth --patients 6000
--seed 3 --format csv` (columns used by the test). Groups: White = reference r,
Black = comparison c. Outcome major_morbidity; x = 1, age, female, diabetes,
dialysis, ejection_fraction, adi, insurance dummies (base private).

For logit and probit, statsmodels fits each group's model (and the pooled model
with a group indicator); this script then computes, by hand with numpy:
  E = F̄_c(β*) − F̄_r(β*), U = Δ − E with Δ = ȳ_c − ȳ_r (which moves with
  the group coefficients as F̄_c(b_c) − F̄_r(b_r) in the delta method),
  Yun weights for each column, and the delta-method SEs of E, U and every
  detailed term, with V(θ) = blockdiag of statsmodels' cov_params() (and, with
  clusters, the joint CR1 sandwich over hospitals: G/(G−1) Σ_g S_g S_gᵀ with
  S_g the stacked per-cluster scores times each model's inverse Hessian),
  gradients by central differences in θ.
Run: bench/.venv/bin/python tests/golden/yun/make_yun.py
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy.stats import norm

here = Path(__file__).parent
d = pd.read_csv(here / "cohort.csv")
for lvl in ["medicaid", "medicare", "uninsured"]:
    d[f"insurance={lvl}"] = (d["insurance"] == lvl).astype(float)
cols = ["age", "female", "diabetes", "dialysis", "ejection_fraction", "adi",
        "insurance=medicaid", "insurance=medicare", "insurance=uninsured"]
X = np.column_stack([np.ones(len(d))] + [d[c].to_numpy(float) for c in cols])
y = d["major_morbidity"].to_numpy(float)
g = (d["race"] == "Black").to_numpy()
cl = d["hospital_id"].to_numpy()
p = X.shape[1]

out = {"columns": ["(intercept)"] + cols}
for link in ["logit", "probit"]:
    Model = sm.Logit if link == "logit" else sm.Probit
    F = (lambda e: 1 / (1 + np.exp(-e))) if link == "logit" else norm.cdf
    fr = Model(y[~g], X[~g]).fit(disp=0, tol=1e-12, maxiter=100)
    fc = Model(y[g], X[g]).fit(disp=0, tol=1e-12, maxiter=100)
    Xp = np.column_stack([g.astype(float), X])
    fp = Model(y, Xp).fit(disp=0, tol=1e-12, maxiter=100)
    xr, xc = X[~g].mean(0), X[g].mean(0)
    gap = y[g].mean() - y[~g].mean()

    def decompose(theta, choice):
        br, bc, bp = theta[:p], theta[p:2 * p], theta[2 * p:]
        bs = br if choice == "reference" else (bc if choice == "comparison" else bp)
        e = F(X[g] @ bs).mean() - F(X[~g] @ bs).mean()
        # Δ = ȳ_c − ȳ_r at the estimates, moving with the group coefficients
        # (X fixed): F̄_c(b_c) − F̄_r(b_r) plus its constant offset from ȳ.
        delta = F(X[g] @ bc).mean() - F(X[~g] @ br).mean() + offset
        u = delta - e
        de = (xc - xr) * bs
        du = xc * (bc - bs) + xr * (bs - br)
        return np.concatenate([[e, u], e * de / de.sum(), u * du / du.sum()])

    theta = np.concatenate([fr.params, fc.params, fp.params[1:]])
    offset = gap - (F(X[g] @ fc.params).mean() - F(X[~g] @ fr.params).mean())
    # Cluster scores for the joint sandwich.
    def scores(fit, Xm, ym, clm):
        s = fit.model.score_obs(fit.params)
        inv = np.linalg.inv(-fit.model.hessian(fit.params))
        return s, inv, clm
    parts = [scores(fr, X[~g], y[~g], cl[~g]), scores(fc, X[g], y[g], cl[g]),
             scores(fp, Xp, y, cl)]
    G = np.unique(cl)
    k = [p, p, p + 1]
    S = np.zeros((len(G), sum(k)))
    idx = {h: i for i, h in enumerate(G)}
    off = 0
    for (s, inv, clm), kk in zip(parts, k):
        for row, h in zip(s, clm):
            S[idx[h], off:off + kk] += row
        off += kk
    B = np.zeros((sum(k), sum(k)))
    off = 0
    for (s, inv, clm), kk in zip(parts, k):
        B[off:off + kk, off:off + kk] = inv
        off += kk
    Vjoint = len(G) / (len(G) - 1) * B @ (S.T @ S) @ B.T
    keep = [i for i in range(sum(k)) if i != 2 * p]  # drop the indicator
    Vjoint = Vjoint[np.ix_(keep, keep)]
    Viid = np.zeros((3 * p, 3 * p))
    Viid[:p, :p] = fr.cov_params()
    Viid[p:2 * p, p:2 * p] = fc.cov_params()
    Viid[2 * p:, 2 * p:] = fp.cov_params()[1:, 1:]
    res = {"gap": gap,
           "coef_r": list(fr.params), "se_r": list(fr.bse),
           "coef_c": list(fc.params), "se_c": list(fc.bse)}
    for choice in ["reference", "comparison", "pooled"]:
        v0 = decompose(theta, choice)
        J = np.zeros((len(v0), len(theta)))
        for j in range(len(theta)):
            h = 1e-6 * max(abs(theta[j]), 1)
            t1, t2 = theta.copy(), theta.copy()
            t1[j] += h
            t2[j] -= h
            J[:, j] = (decompose(t1, choice) - decompose(t2, choice)) / (2 * h)
        res[choice] = {
            "explained": v0[0], "unexplained": v0[1],
            "explained_detail": list(v0[2:2 + p]), "unexplained_detail": list(v0[2 + p:]),
            "se_iid": list(np.sqrt(np.diag(J @ Viid @ J.T))),
            "se_cluster": list(np.sqrt(np.diag(J @ Vjoint @ J.T))),
        }
    out[link] = res
(here / "expected.json").write_text(json.dumps(out, indent=1))
print(json.dumps({k: out["logit"]["reference"][k] for k in ["explained", "unexplained"]}))

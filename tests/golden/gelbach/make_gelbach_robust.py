"""Golden delta-method standard errors for the Gelbach decomposition (plain case).

Reads gelbach.csv (written by make_gelbach.py) and writes expected_robust.json
with [estimate, se] for every row of the `plain` decomposition
(y ~ d + x1 + x21 + x22 + x23, base = d + x1, blocks g1 = {x21, x22},
g2 = {x23}), no fixed effects absorbed:
  - `plain_robust`: heteroskedasticity-robust, every row its own unit,
    V = n/(n-1) sum_i psi_i psi_i';
  - `plain_cluster_f`: clustered by f (25 clusters),
    V = G/(G-1) sum_c (sum_{i in c} psi_i)(sum_{i in c} psi_i)'.

Definitions. Base fit y = a + tau_base d + g x1; full fit
y = a' + tau_full d + g' x1 + sum_j beta_j x_j (j over x21, x22, x23);
auxiliary fits x_j = c_j + Gamma_j d + h_j x1. Rows: base_coefficient =
tau_base, full_coefficient = tau_full, explained_change = sum_j Gamma_j beta_j
(= tau_base - tau_full exactly), g1 = Gamma_21 beta_21 + Gamma_22 beta_22,
g2 = x23 = Gamma_23 beta_23, x21, x22 the single terms.

The variance is computed two independent ways and they must agree to 1e-6
(relative):
  (a) stacked influence functions: for each OLS fit (base, full, three
      auxiliary) psi_i = (X'X)^-1 x_i e_i, stacked into theta; each row is a
      smooth function of theta with an analytic gradient; se = sqrt(grad' V grad);
  (b) brute force: every row as a function of observation (or cluster)
      weights, all five fits re-solved by weighted least squares
      (numpy.linalg.lstsq on sqrt(w)-scaled data); d row / d w_i at w = 1 by
      central differences (step 1e-4); V = n/(n-1) sum_i (d row/d w_i)^2
      (clusters: G/(G-1) sum_c (d row / d w_c)^2, w_c scaling all rows of c).
Cross-checks (asserted): the tau_full variance from (a) equals statsmodels'
HC0 * n/(n-1) (robust) and its unadjusted cluster sandwich * G/(G-1)
(clustered); statsmodels' HC1 / CRV1 SEs are recorded for information.

Run: /tmp/venv_gel/bin/python tests/golden/gelbach/make_gelbach_robust.py
(numpy, pandas, statsmodels).
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels
import statsmodels.api as sm

here = Path(__file__).parent
data = pd.read_csv(here / "gelbach.csv")
n = len(data)
y = data["y"].to_numpy(float)
d = data["d"].to_numpy(float)
x1 = data["x1"].to_numpy(float)
added = ["x21", "x22", "x23"]
X_add = {j: data[j].to_numpy(float) for j in added}
f = data["f"].to_numpy(int)
blocks = {"g1": ["x21", "x22"], "g2": ["x23"]}

ones = np.ones(n)
Xb = np.column_stack([ones, d, x1])                              # base / auxiliary design
Xf = np.column_stack([ones, d, x1] + [X_add[j] for j in added])  # full design
D_B = 1  # position of d in both designs
ROWS = ["base_coefficient", "full_coefficient", "explained_change",
        "g1", "x21", "x22", "g2", "x23"]


# ---------------------------------------------------------------- (a) influence
def ols_if(X, t):
    """OLS coefficients and per-row influence psi_i = (X'X)^-1 x_i e_i (n x k)."""
    b, *_ = np.linalg.lstsq(X, t, rcond=None)
    e = t - X @ b
    bread = np.linalg.inv(X.T @ X)
    return b, (X * e[:, None]) @ bread  # row i: (bread x_i e_i)'


b_base, psi_base = ols_if(Xb, y)
b_full, psi_full = ols_if(Xf, y)
aux = {j: ols_if(Xb, X_add[j]) for j in added}
kb, kf = Xb.shape[1], Xf.shape[1]
# theta = (b_base, b_full, pi_x21, pi_x22, pi_x23)
off_base, off_full = 0, kb
off_aux = {j: kb + kf + m * kb for m, j in enumerate(added)}
dim = kb + kf + len(added) * kb
theta = np.concatenate([b_base, b_full] + [aux[j][0] for j in added])
Psi = np.hstack([psi_base, psi_full] + [aux[j][1] for j in added])  # n x dim
beta_pos = {j: off_full + 3 + m for m, j in enumerate(added)}


def rows_and_grads(th):
    """Every row as a function of theta, with its analytic gradient."""
    out = {}

    def term(cols):
        est, g = 0.0, np.zeros(dim)
        for j in cols:
            gam, beta = th[off_aux[j] + D_B], th[beta_pos[j]]
            est += gam * beta
            g[off_aux[j] + D_B] += beta
            g[beta_pos[j]] += gam
        return est, g

    g = np.zeros(dim); g[off_base + D_B] = 1.0
    out["base_coefficient"] = (th[off_base + D_B], g)
    g = np.zeros(dim); g[off_full + D_B] = 1.0
    out["full_coefficient"] = (th[off_full + D_B], g)
    out["explained_change"] = term(added)
    for blk, cols in blocks.items():
        out[blk] = term(cols)
        for j in cols:
            out[j] = term([j])
    # tau_base - tau_full: another function of theta with the same value and IF.
    g = np.zeros(dim); g[off_base + D_B] = 1.0; g[off_full + D_B] = -1.0
    out["_delta"] = (th[off_base + D_B] - th[off_full + D_B], g)
    return out


point = rows_and_grads(theta)


def var_a(unit_sums):
    """unit_sums: (units x dim) summed influence; V with units/(units-1)."""
    m = unit_sums.shape[0]
    return m / (m - 1.0) * unit_sums.T @ unit_sums


cluster_ids, f_idx = np.unique(f, return_inverse=True)
G = len(cluster_ids)
Psi_c = np.zeros((G, dim))
np.add.at(Psi_c, f_idx, Psi)
V_a = {"plain_robust": var_a(Psi), "plain_cluster_f": var_a(Psi_c)}
se_a = {case: {r: float(np.sqrt(g @ V @ g)) for r, (_, g) in point.items()}
        for case, V in V_a.items()}


# ---------------------------------------------------------------- (b) brute force
def wls(X, t, w):
    s = np.sqrt(w)
    b, *_ = np.linalg.lstsq(X * s[:, None], t * s, rcond=None)
    return b


def rows_w(w):
    """All rows, every fit re-solved by WLS with weights w."""
    bb = wls(Xb, y, w)
    bf = wls(Xf, y, w)
    gam = {j: wls(Xb, X_add[j], w)[D_B] for j in added}
    beta = {j: bf[3 + m] for m, j in enumerate(added)}
    r = {"base_coefficient": bb[D_B], "full_coefficient": bf[D_B],
         "explained_change": sum(gam[j] * beta[j] for j in added)}
    for blk, cols in blocks.items():
        r[blk] = sum(gam[j] * beta[j] for j in cols)
        for j in cols:
            r[j] = gam[j] * beta[j]
    return np.array([r[k] for k in ROWS])


H = 1e-4
est_b = rows_w(np.ones(n))


def derivs(units):
    """units: list of index arrays; central-difference d rows / d w_unit."""
    out = np.empty((len(units), len(ROWS)))
    for u, idx in enumerate(units):
        wp = np.ones(n); wp[idx] += H
        wm = np.ones(n); wm[idx] -= H
        out[u] = (rows_w(wp) - rows_w(wm)) / (2 * H)
    return out


Dr = derivs([np.array([i]) for i in range(n)])
Dc = derivs([np.flatnonzero(f_idx == c) for c in range(G)])
se_b = {}
for case, Dm in [("plain_robust", Dr), ("plain_cluster_f", Dc)]:
    m = Dm.shape[0]
    v = m / (m - 1.0) * (Dm ** 2).sum(axis=0)
    se_b[case] = dict(zip(ROWS, map(float, np.sqrt(v))))

# ---------------------------------------------------------------- checks
agreement = {}
for i, r in enumerate(ROWS):
    assert abs(est_b[i] - point[r][0]) <= 1e-10 * max(abs(point[r][0]), 1e-3), r
assert abs(point["explained_change"][0] - point["_delta"][0]) < 1e-12
# Point estimates match pyfixest's (expected.json, read only).
pf_ = json.loads((here / "expected.json").read_text())
for r, (case, key) in {"base_coefficient": ("plain", "direct_effect"),
                       "full_coefficient": ("plain", "full_effect"),
                       "explained_change": ("plain", "explained_effect"),
                       "g1": ("plain", "g1"), "g2": ("plain", "g2"),
                       "x21": ("plain_terms", "x21"), "x22": ("plain_terms", "x22"),
                       "x23": ("plain_terms", "x23")}.items():
    assert abs(point[r][0] - pf_[case][key]) <= 1e-10 * abs(pf_[case][key]), r
for case in se_a:
    # The total's SE is the same through sum Gamma beta and through tau_base - tau_full.
    a, b = se_a[case]["explained_change"], se_a[case]["_delta"]
    assert abs(a - b) <= 1e-9 * a, (case, a, b)
    rel = {r: abs(se_a[case][r] - se_b[case][r]) / se_a[case][r] for r in ROWS}
    worst = max(rel.values())
    print(case, "max relative |se_a - se_b|:", worst)
    assert worst < 1e-6, (case, rel)
    agreement[case] = {"max_relative_difference_a_vs_b": worst,
                       "per_row": rel}

ols = sm.OLS(y, Xf).fit()
hc0 = ols.get_robustcov_results("HC0").bse[D_B]
hc1 = ols.get_robustcov_results("HC1").bse[D_B]
tf = se_a["plain_robust"]["full_coefficient"]
assert abs(tf - hc0 * np.sqrt(n / (n - 1.0))) <= 1e-10 * tf, (tf, hc0)
clu_raw = ols.get_robustcov_results("cluster", groups=f_idx, use_correction=False).bse[D_B]
crv1 = ols.get_robustcov_results("cluster", groups=f_idx, use_correction=True).bse[D_B]
tc = se_a["plain_cluster_f"]["full_coefficient"]
assert abs(tc - clu_raw * np.sqrt(G / (G - 1.0))) <= 1e-10 * tc, (tc, clu_raw)
agreement["statsmodels"] = {
    "version": statsmodels.__version__,
    "tau_full_se_HC0": float(hc0),
    "tau_full_se_HC1": float(hc1),
    "tau_full_se_HC0_times_sqrt_n_over_n_minus_1": float(hc0 * np.sqrt(n / (n - 1.0))),
    "tau_full_se_cluster_f_unadjusted": float(clu_raw),
    "tau_full_se_cluster_f_CRV1": float(crv1),
    "tau_full_se_cluster_f_unadjusted_times_sqrt_G_over_G_minus_1":
        float(clu_raw * np.sqrt(G / (G - 1.0))),
    "note": "HC1 uses n/(n-k) and CRV1 G/(G-1)(n-1)/(n-k); the goldens use "
            "n/(n-1) and G/(G-1). Asserted: our tau_full SE == HC0*sqrt(n/(n-1)) "
            "and == unadjusted cluster*sqrt(G/(G-1)) to 1e-10.",
}
agreement["finite_difference_step"] = H

out = {}
for case in ["plain_robust", "plain_cluster_f"]:
    out[case] = {r: [float(point[r][0]), se_a[case][r]] for r in ROWS}
out["n"] = n
out["clusters"] = G
out["definition"] = (
    "Each row: [estimate, se]. Plain Gelbach decomposition of d, base = (1, d, x1), "
    "added x21, x22 (g1), x23 (g2), no fixed effects. Gamma_j = coefficient on d of "
    "x_j ~ 1 + d + x1; row x_j = Gamma_j beta_j; blocks sum their columns; "
    "explained_change = sum_j Gamma_j beta_j = tau_base - tau_full. se = delta method "
    "over the stacked influence functions psi_i = (X'X)^-1 x_i e_i of the base, full "
    "and three auxiliary OLS fits: plain_robust V = n/(n-1) sum_i psi_i psi_i'; "
    "plain_cluster_f V = G/(G-1) sum_c (sum_{i in c} psi_i)(...)' with clusters f "
    "(G = 25). se values are from the influence-function computation (a); the "
    "weight-derivative brute force (b) agrees (see agreement)."
)
out["agreement"] = agreement
for case in ["plain_robust", "plain_cluster_f"]:
    print(case, json.dumps(out[case]))
(here / "expected_robust.json").write_text(json.dumps(out, indent=1) + "\n")

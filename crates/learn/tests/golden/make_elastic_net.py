"""Reference fits for healthgap-learn's elastic net (tests/elastic_net_golden.rs).

Made with scikit-learn (version recorded in the output) in a venv:

    python3 -m venv .venv && .venv/bin/pip install scikit-learn numpy
    .venv/bin/python make_elastic_net.py > elastic_net.json

Objective (glmnet's, with weights normalized to sum to 1):

    -sum_i w_i l_i(b0 + x_i'b) / sum_i w_i + lam * ((1 - a)/2 ||b||^2 + a ||b||_1)

- Gaussian: sklearn ElasticNet(alpha=lam, l1_ratio=a) with sample_weight is this
  objective (sklearn rescales the weights to sum to n).
- Binomial: sklearn LogisticRegression(C, l1_ratio=a, solver='saga') minimises
  (1-a)/2 ||b||^2 + a ||b||_1 + C sum_i w_i logloss_i, the same problem with
  C = 1 / (lam * sum_i w_i). Its intercept is not penalized. As a check on saga's
  precision the same objective is also minimised with scipy's L-BFGS-B on
  b = b+ - b- (b+, b- >= 0); both solutions and their largest difference are stored.
- standardize = true: X is standardized by its weighted mean and weighted
  population standard deviation, fitted, and the coefficients mapped back
  (b_j / s_j, b0 - sum_j b_j m_j / s_j), as glmnet does.
"""

import json
import sys

import numpy as np
import scipy
import sklearn
from scipy.optimize import minimize
from sklearn.linear_model import ElasticNet, LogisticRegression

rng = np.random.default_rng(20261130)
N, P = 200, 6
X = rng.normal(size=(N, P))
X[:, 1] = 0.7 * X[:, 0] + 0.3 * X[:, 1]          # correlated columns
X[:, 3] = 3.0 * X[:, 3] + 5.0                     # a column on another scale
X[:, 5] = (rng.uniform(size=N) < 0.3).astype(float)  # a binary column
w = rng.uniform(0.5, 2.0, size=N)
beta = np.array([1.0, -0.5, 0.0, 0.3, 0.0, 0.8])
eta = 0.2 + X @ beta - 0.3 * 5.0
y_gauss = eta + rng.normal(size=N)
y_bin = (rng.uniform(size=N) < 1.0 / (1.0 + np.exp(-eta))).astype(float)


def standardize(X, w):
    wn = w / w.sum()
    m = wn @ X
    s = np.sqrt(wn @ (X - m) ** 2)
    return (X - m) / s, m, s


def back(b0, b, m, s):
    bj = b / s
    return b0 - bj @ m, bj


def gaussian(lam, a, std):
    Xf, m, s = standardize(X, w) if std else (X, np.zeros(P), np.ones(P))
    f = ElasticNet(alpha=lam, l1_ratio=a, tol=1e-14, max_iter=1_000_000)
    f.fit(Xf, y_gauss, sample_weight=w)
    b0, b = back(f.intercept_, f.coef_, m, s)
    return {"intercept": float(b0), "coef": b.tolist()}


def binomial_objective(Xf, lam, a):
    wn = w / w.sum()

    def f(theta):
        b0, bp, bm = theta[0], theta[1 : P + 1], theta[P + 1 :]
        b = bp - bm
        e = b0 + Xf @ b
        ll = np.logaddexp(0.0, e) - y_bin * e
        pen = lam * ((1 - a) / 2 * b @ b + a * (bp.sum() + bm.sum()))
        p = 1.0 / (1.0 + np.exp(-e))
        g_e = wn * (p - y_bin)
        g_b = Xf.T @ g_e + lam * (1 - a) * b
        grad = np.concatenate([[g_e.sum()], g_b + lam * a, -g_b + lam * a])
        return wn @ ll + pen, grad

    return f


def binomial(lam, a, std):
    Xf, m, s = standardize(X, w) if std else (X, np.zeros(P), np.ones(P))
    C = 1.0 / (lam * w.sum())
    f = LogisticRegression(C=C, l1_ratio=a, solver="saga", tol=1e-14, max_iter=10_000_000)
    f.fit(Xf, y_bin, sample_weight=w)
    obj = binomial_objective(Xf, lam, a)
    bounds = [(None, None)] + [(0, None)] * (2 * P)
    r = minimize(obj, np.zeros(2 * P + 1), jac=True, method="L-BFGS-B", bounds=bounds,
                 options={"ftol": 1e-16, "gtol": 1e-12, "maxiter": 100000, "maxfun": 1000000})
    b_lbfgs = r.x[1 : P + 1] - r.x[P + 1 :]
    b0, b = back(f.intercept_[0], f.coef_[0], m, s)
    c0, c = back(r.x[0], b_lbfgs, m, s)
    diff = max(abs(b0 - c0), float(np.max(np.abs(b - c))))
    return {"intercept": float(b0), "coef": b.tolist(),
            "lbfgs_intercept": float(c0), "lbfgs_coef": c.tolist(), "saga_vs_lbfgs": diff}


cases = []
for fam, lam, a, std in [
    ("continuous", 0.1, 0.5, False),
    ("continuous", 0.05, 0.9, True),
    ("continuous", 0.2, 0.0, True),
    ("binary", 0.02, 0.5, False),
    ("binary", 0.01, 1.0, True),
    ("binary", 0.05, 0.0, True),
]:
    fit = gaussian(lam, a, std) if fam == "continuous" else binomial(lam, a, std)
    cmd = (f"ElasticNet(alpha={lam}, l1_ratio={a}, tol=1e-14)" if fam == "continuous"
           else f"LogisticRegression(C=1/({lam}*sum(w)), l1_ratio={a}, solver='saga', tol=1e-14)")
    cases.append({"family": fam, "lambda": lam, "alpha": a, "standardize": std,
                  "cmdline": cmd + (" on weighted-standardized X" if std else ""), **fit})

json.dump({
    "provenance": {"script": "make_elastic_net.py", "sklearn": sklearn.__version__,
                   "numpy": np.__version__, "scipy": scipy.__version__, "seed": 20261130},
    "x_col_major": X.T.reshape(-1).tolist(), "nrows": N, "ncols": P,
    "weights": w.tolist(), "y_continuous": y_gauss.tolist(), "y_binary": y_bin.tolist(),
    "cases": cases,
}, sys.stdout, indent=1)

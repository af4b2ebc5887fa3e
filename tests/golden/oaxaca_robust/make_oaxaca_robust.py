#!/usr/bin/env python3
"""Heteroskedasticity-robust (unclustered) delta-method SEs of the linear
Oaxaca-Blinder decomposition, computed two independent ways:

(a) stacked influence functions of theta = (b_r, b_c, [beta*], xbar_r, xbar_c,
    [lambda for cotton]), V = n/(n-1) sum_i psi_i psi_i', SE = sqrt(grad' V grad),
    with the gradient of each (polynomial) component taken by complex step
    (exact to rounding);
(b) brute force: every component as a function of row weights w, refitted by
    weighted least squares (statsmodels WLS) and weighted means (cotton's
    lambda = W_r/(W_r + W_c) recomputed from w), derivative d c / d w_i at
    w = 1 by central differences, V = n/(n-1) sum_i (dc/dw_i)^2.

The script asserts that (a) and (b) agree and writes expected.json next to it.
See README.md.
"""

import json
import os
import sys

import numpy as np
import pandas as pd
import statsmodels
import statsmodels.api as sm

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "oaxaca")

CHOICES = ["reference", "comparison", "reimers", "cotton", "neumark", "pooled"]
AGGREGATES = [
    "gap",
    "explained",
    "unexplained",
    "unexplained_comparison",
    "unexplained_reference",
]
THREEFOLD = ["endowments", "coefficients", "interaction"]
STEP_B = 1e-4  # central-difference step on the row weights in (b); see README
# (1e-5 agrees slightly better on nonzero SEs, but the rounding noise of (b),
# ~ eps/h, then lifts the identically-zero pooled unexplained_reference SE to ~1e-7)
RTOL = 1e-6  # required agreement between (a) and (b)
ATOL_ZERO = 1e-8  # SEs of identically-zero components must be below this


# --------------------------------------------------------------------------
# data (mirrors tests/oaxaca.rs: ccard() and chicago_wage())
# --------------------------------------------------------------------------
def complete(path, used):
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    df = raw[used].apply(lambda s: pd.to_numeric(s.str.strip('"'), errors="coerce"))
    return df[np.isfinite(df.to_numpy(dtype=float)).all(axis=1)].reset_index(drop=True)


def ccard():
    cols = ["AGE", "INCOME", "INCOMESQ"]
    d = complete(os.path.join(DATA, "ccard.csv"), ["AVGEXP"] + cols + ["OWNRENT"])
    y = d["AVGEXP"].to_numpy(float)
    g = d["OWNRENT"].to_numpy(float).astype(int)  # owners = 1 = comparison
    return y, g, d[cols].to_numpy(float), cols


def chicago_wage():
    cols = ["age", "female", "LTHS", "some.college", "college", "advanced.degree"]
    used = ["ln.real.wage"] + cols + ["foreign.born"]
    d = complete(os.path.join(DATA, "chicago.csv"), used)
    y = np.exp(d["ln.real.wage"].to_numpy(float))
    g = (d["foreign.born"].to_numpy(float) == 0.0).astype(int)  # R's A = comparison
    return y, g, d[cols].to_numpy(float), cols


# --------------------------------------------------------------------------
# components as functions of the parameters (works with complex input)
# --------------------------------------------------------------------------
def full(xbar):
    """Prepend the intercept's mean 1."""
    return np.concatenate([np.ones(1, dtype=xbar.dtype), xbar])


def components(b_r, b_c, beta, xbar_r, xbar_c):
    """All reported components; xbar_* without the intercept."""
    Xr, Xc = full(xbar_r), full(xbar_c)
    d = Xc - Xr
    out = {}
    out["gap"] = Xc @ b_c - Xr @ b_r
    out["explained"] = d @ beta
    out["unexplained_comparison"] = Xc @ (b_c - beta)
    out["unexplained_reference"] = Xr @ (beta - b_r)
    out["unexplained"] = out["unexplained_comparison"] + out["unexplained_reference"]
    k = len(xbar_r)
    for j in range(1, k + 1):
        out[("explained", j)] = d[j] * beta[j]
    for j in range(0, k + 1):
        out[("unexplained", j)] = Xc[j] * (b_c[j] - beta[j]) + Xr[j] * (beta[j] - b_r[j])
    out["endowments"] = d @ b_r
    out["coefficients"] = Xr @ (b_c - b_r)
    out["interaction"] = d @ (b_c - b_r)
    return out


def beta_star(choice, b_r, b_c, pooled, neumark, lam):
    if choice == "reference":
        return b_r
    if choice == "comparison":
        return b_c
    if choice == "reimers":
        return 0.5 * (b_r + b_c)
    if choice == "cotton":  # weight lam = W_r/(W_r + W_c) on b_r, a statistic itself
        return lam * b_r + (1 - lam) * b_c
    if choice == "neumark":
        return neumark
    if choice == "pooled":
        return pooled
    raise ValueError(choice)


# --------------------------------------------------------------------------
# (a) stacked influence functions, numpy only
# --------------------------------------------------------------------------
def ols_influence(X, y):
    XtX_inv = np.linalg.inv(X.T @ X)
    b = XtX_inv @ (X.T @ y)
    e = y - X @ b
    return b, (X * e[:, None]) @ XtX_inv  # rows: (X'X)^-1 x_i e_i


def method_a(y, g, Z):
    n, k = Z.shape
    X = np.column_stack([np.ones(n), Z])
    r, c = g == 0, g == 1
    n_r, n_c = r.sum(), c.sum()
    p = k + 1

    b_r, psi_r = ols_influence(X[r], y[r])
    b_c, psi_c = ols_influence(X[c], y[c])
    Xn = X
    b_n, psi_n = ols_influence(Xn, y)  # neumark: no group indicator
    Xp = np.column_stack([X, g.astype(float)])
    b_p, psi_p = ols_influence(Xp, y)  # pooled with indicator (Jann 2008)
    b_p, psi_p = b_p[:p], psi_p[:, :p]  # drop the indicator's coefficient
    xbar_r, xbar_c = Z[r].mean(0), Z[c].mean(0)
    # cotton's lambda = W_r/(W_r + W_c) (here n_r/n) varies with the sample:
    # psi_i(lambda) = w_i (1{i in r} - lambda)/(W_r + W_c), w_i = 1
    lam = n_r / n
    psi_lam = (r.astype(float) - lam) / n

    results = {}
    for choice in CHOICES:
        has_beta = choice in ("neumark", "pooled")
        has_lam = choice == "cotton"
        # psi over all n rows for the stacked theta
        blocks = []
        P = np.zeros((n, p)); P[r] = psi_r; blocks.append(P)
        P = np.zeros((n, p)); P[c] = psi_c; blocks.append(P)
        if has_beta:
            blocks.append(psi_p if choice == "pooled" else psi_n)
        P = np.zeros((n, k)); P[r] = (Z[r] - xbar_r) / n_r; blocks.append(P)
        P = np.zeros((n, k)); P[c] = (Z[c] - xbar_c) / n_c; blocks.append(P)
        if has_lam:
            blocks.append(psi_lam[:, None])
        Psi = np.hstack(blocks)
        V = n / (n - 1) * Psi.T @ Psi

        sizes = [p, p] + ([p] if has_beta else []) + [k, k] + ([1] if has_lam else [])
        cuts = np.cumsum([0] + sizes)
        theta0 = np.concatenate(
            [b_r, b_c] + ([b_p if choice == "pooled" else b_n] if has_beta else [])
            + [xbar_r, xbar_c] + ([np.array([lam])] if has_lam else [])
        )

        def f(theta):
            parts = [theta[cuts[i]:cuts[i + 1]] for i in range(len(sizes))]
            if has_beta:
                br, bc, bs, xr, xc = parts
            elif has_lam:
                br, bc, xr, xc, lm = parts
                bs = beta_star(choice, br, bc, None, None, lm[0])
            else:
                br, bc, xr, xc = parts
                bs = beta_star(choice, br, bc, None, None, None)
            return components(br, bc, bs, xr, xc)

        est = {key: float(np.real(v)) for key, v in f(theta0.astype(complex)).items()}
        # complex-step gradient: exact up to rounding for these polynomials
        h = 1e-30
        grads = {key: np.zeros(len(theta0)) for key in est}
        for j in range(len(theta0)):
            t = theta0.astype(complex)
            t[j] += 1j * h
            for key, v in f(t).items():
                grads[key][j] = np.imag(v) / h
        quad = {key: float(grads[key] @ V @ grads[key]) for key in est}
        se = {key: float(np.sqrt(max(q, 0.0))) for key, q in quad.items()}
        results[choice] = (est, se)
        if choice == "pooled":
            raw_quad_pooled_unexplained_reference = quad["unexplained_reference"]
            # the same variance summed row by row, n/(n-1) sum_i (grad' psi_i)^2:
            # nonnegative, and free of the cancellation inside grad' V grad
            infl = Psi @ grads["unexplained_reference"]
            rowwise_se_pooled_unexplained_reference = float(
                np.sqrt(n / (n - 1) * np.sum(infl**2))
            )
    return results, dict(
        n_r=int(n_r), n_c=int(n_c), n=int(n), b_r=b_r, psi_r=psi_r,
        quad0=raw_quad_pooled_unexplained_reference,
        rowwise0=rowwise_se_pooled_unexplained_reference,
    )


# --------------------------------------------------------------------------
# (b) brute force: refit with row weights, differentiate by central differences
# --------------------------------------------------------------------------
def weighted_components(y, g, Z, w):
    n, k = Z.shape
    X = sm.add_constant(Z, has_constant="add")
    r, c = g == 0, g == 1
    lam = w[r].sum() / w.sum()  # cotton's weight W_r/(W_r + W_c), from the perturbed w
    b_r = sm.WLS(y[r], X[r], weights=w[r]).fit(method="qr").params
    b_c = sm.WLS(y[c], X[c], weights=w[c]).fit(method="qr").params
    b_n = sm.WLS(y, X, weights=w).fit(method="qr").params
    Xp = np.column_stack([X, g.astype(float)])
    b_p = sm.WLS(y, Xp, weights=w).fit(method="qr").params[: k + 1]
    xbar_r = np.average(Z[r], axis=0, weights=w[r])
    xbar_c = np.average(Z[c], axis=0, weights=w[c])
    out = {}
    for choice in CHOICES:
        bs = beta_star(choice, b_r, b_c, b_p, b_n, lam)
        comp = components(b_r, b_c, bs, xbar_r, xbar_c)
        # the gap straight from the weighted group means of y, not via theta
        comp["gap"] = np.average(y[c], weights=w[c]) - np.average(y[r], weights=w[r])
        out[choice] = comp
    return out


def method_b(y, g, Z, step=STEP_B):
    n = len(y)
    base = weighted_components(y, g, Z, np.ones(n))
    keys = {ch: list(base[ch]) for ch in CHOICES}
    D = {ch: {key: np.zeros(n) for key in keys[ch]} for ch in CHOICES}
    for i in range(n):
        wp = np.ones(n); wp[i] += step
        wm = np.ones(n); wm[i] -= step
        up = weighted_components(y, g, Z, wp)
        dn = weighted_components(y, g, Z, wm)
        for ch in CHOICES:
            for key in keys[ch]:
                D[ch][key][i] = (up[ch][key] - dn[ch][key]) / (2 * step)
    results = {}
    for ch in CHOICES:
        est = {key: float(base[ch][key]) for key in keys[ch]}
        se = {key: float(np.sqrt(n / (n - 1) * np.sum(D[ch][key] ** 2))) for key in keys[ch]}
        results[ch] = (est, se)
    return results


# --------------------------------------------------------------------------
def label(key, names):
    if isinstance(key, tuple):
        kind, j = key
        return kind, ("(intercept)" if j == 0 else names[j - 1])
    return None, key


def build(name, y, g, Z, names, agreement):
    ra, info = method_a(y, g, Z)
    rb = method_b(y, g, Z)

    worst_rel, worst_est = 0.0, 0.0
    zero_ses = {}
    for ch in CHOICES:
        ea, sa = ra[ch]
        eb, sb = rb[ch]
        assert set(ea) == set(eb)
        for key in ea:
            scale = max(abs(ea[key]), 1.0)
            worst_est = max(worst_est, abs(ea[key] - eb[key]) / scale)
            assert abs(ea[key] - eb[key]) <= 1e-9 * scale, (name, ch, key, ea[key], eb[key])
            if sa[key] < ATOL_ZERO:  # identically-zero component (Jann's identity)
                zero_ses[(ch, str(key))] = (sa[key], sb[key])
                continue
            rel = abs(sa[key] - sb[key]) / sa[key]
            worst_rel = max(worst_rel, rel)
            assert rel <= RTOL, (name, ch, key, sa[key], sb[key], rel)
    # under pooled, unexplained_reference is identically 0, so is its SE
    se0a = ra["pooled"][1]["unexplained_reference"]
    se0b = rb["pooled"][1]["unexplained_reference"]
    est0 = ra["pooled"][0]["unexplained_reference"]
    assert abs(est0) < 1e-8 and se0a < ATOL_ZERO, (name, est0, se0a)
    assert info["rowwise0"] < ATOL_ZERO and se0b < ATOL_ZERO, (name, info["rowwise0"], se0b)

    agreement[name] = {
        "max_relative_se_difference": worst_rel,
        "max_relative_estimate_difference": worst_est,
        "pooled_unexplained_reference": {
            "estimate": est0,
            "se_a": se0a,
            "variance_a_raw": info["quad0"],
            "se_a_rowwise": info["rowwise0"],
            "se_b": se0b,
        },
        "zero_se_components_a_b": {f"{ch}/{k}": list(v) for (ch, k), v in zero_ses.items()},
        "step_b": STEP_B,
    }

    out = {
        "n": {"reference": info["n_r"], "comparison": info["n_c"], "total": info["n"]},
        "columns": names,
    }
    for ch in CHOICES:
        est, se = ra[ch]
        block = {q: [est[q], se[q]] for q in AGGREGATES}
        detail = {"explained": {}, "unexplained": {}}
        for key in est:
            kind, lab = label(key, names)
            if kind is not None:
                detail[kind][lab] = [est[key], se[key]]
        block["detail"] = detail
        out[ch] = block
    est, se = ra["reference"]
    out["threefold"] = {q: [est[q], se[q]] for q in ["gap"] + THREEFOLD}

    # peer check of the OLS sandwich part: statsmodels HC0/HC1 of b_r
    r = g == 0
    Xr = sm.add_constant(Z[r], has_constant="add")
    fit0 = sm.OLS(y[r], Xr).fit(cov_type="HC0")
    fit1 = sm.OLS(y[r], Xr).fit(cov_type="HC1")
    psi = info["psi_r"]
    ours_block = info["n"] / (info["n"] - 1) * psi.T @ psi
    n_r, p = Xr.shape
    assert np.allclose(fit0.params, info["b_r"], rtol=1e-10, atol=0)
    assert np.allclose(fit0.cov_params(), psi.T @ psi, rtol=1e-8, atol=0)
    out["statsmodels_b_reference"] = {
        "names": ["(intercept)"] + names,
        "params": fit1.params.tolist(),
        "hc0_se": fit0.bse.tolist(),
        "hc1_se": fit1.bse.tolist(),
        "ours_se": np.sqrt(np.diag(ours_block)).tolist(),
        "note": "ours = HC0 * n/(n-1) with n = both groups; "
        "HC1 = HC0 * n_r/(n_r - k), n_r = reference rows, k = columns incl. intercept",
    }
    return out


def main():
    agreement = {}
    doc = {}
    for name, loader in [("ccard", ccard), ("chicago_wage", chicago_wage)]:
        y, g, Z, names = loader()
        doc[name] = build(name, y, g, Z, names, agreement)
    doc["definition"] = (
        "Linear Oaxaca-Blinder, group 0 = reference r, 1 = comparison c; gap = ybar_c - ybar_r; "
        "group OLS b_r, b_c with intercept; xbar_g group means of the design (intercept mean 1). "
        "explained = (xbar_c - xbar_r)'beta*, unexplained_comparison = xbar_c'(b_c - beta*), "
        "unexplained_reference = xbar_r'(beta* - b_r), unexplained = their sum. "
        "beta*: reference = b_r, comparison = b_c, reimers = (b_r + b_c)/2, "
        "cotton = lambda b_r + (1 - lambda) b_c with lambda = n_r/n (weighted: W_r/(W_r + W_c)), "
        "lambda varying with the sample, neumark = pooled OLS without group "
        "indicator, pooled = pooled OLS with indicator 1{comparison} (its coefficient dropped). "
        "threefold (reference view): endowments = (xbar_c - xbar_r)'b_r, coefficients = "
        "xbar_r'(b_c - b_r), interaction = (xbar_c - xbar_r)'(b_c - b_r). detail: explained_j = "
        "(xbar_c,j - xbar_r,j) beta*_j per covariate; unexplained_j = xbar_c,j (b_c,j - beta*_j) + "
        "xbar_r,j (beta*_j - b_r,j), '(intercept)' = b_c,0 - b_r,0. "
        "SE: robust unclustered delta method, theta = (b_r, b_c, [beta* for neumark/pooled], "
        "xbar_r, xbar_c, [lambda for cotton]) with row influence (X_g'X_g)^-1 x_i e_i, "
        "(X_p'X_p)^-1 x_i e_i, (x_i - xbar_g)/n_g, (1{i in r} - lambda)/n; V = n/(n-1) sum_i psi_i psi_i' with n = all rows; SE = sqrt(grad' V grad). "
        "Each value is [estimate, se]."
    )
    doc["agreement_a_vs_b"] = agreement
    doc["versions"] = {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "statsmodels": statsmodels.__version__,
    }
    with open(os.path.join(HERE, "expected.json"), "w") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")
    print(json.dumps(agreement, indent=2))


if __name__ == "__main__":
    main()

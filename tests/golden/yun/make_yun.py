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

Covariate sampling (new keys `se_robust`, `se_cluster_x`, `se_model_x`, same
layout as `se_iid`): the rows as functions of
  φ = (b_r, b_c, [b_pooled without its indicator], x̄_r, x̄_c (no intercept),
       F̄_c(β*), F̄_r(β*), ȳ_c, ȳ_r),
F̄_g(β*) the group mean of F(x_i'β*) with β* held at its estimate (β* moves it
through the coefficient block), Δ = ȳ_c − ȳ_r. Influence vectors ψ_i: a GLM's
rows bread·score_i (bread = inv(−Hessian), the observed information, as
statsmodels' cov_params() and healthgap's GlmFit::bread), a mean's rows
(z_i − μ)/n_g. V = n/(n−1) Σ_i ψ_iψ_iᵀ (robust), G/(G−1) Σ_c ψ_cψ_cᵀ over
hospitals (cluster_x), or blockdiag(cov_params() of each model, robust means
block) (model_x); SE = sqrt(∇ᵀV∇), ∇ by five-point central differences
over φ.
Checked against a brute force: every model re-fitted (own weighted Newton, the
observed Hessian) and every mean re-taken with row weights w, ∂row/∂w_i at
w = 1 by central differences, V = n/(n−1) Σ_i (∂row/∂w_i)² (and per hospital
with cluster weights); the script asserts agreement to 1e-6 relative.

Old keys: their SEs carry ~1e-9 relative central-difference roundoff that
moves with the BLAS build and thread count; when expected.json exists, the
recomputed old values are checked against it (1e-8 relative) and the stored
ones are kept, so the golden numbers do not churn. `--fresh` writes the
recomputed values instead.
Run: python tests/golden/yun/make_yun.py [--fresh]
(a venv with numpy, pandas, scipy, statsmodels 0.15)
"""
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy.special import log_ndtr
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

n = len(y)
G_codes, cl_idx = np.unique(cl, return_inverse=True)
n_clusters = len(G_codes)


def yun_rows(br, bc, bs, xr, xc, fc, fr, gap):
    """[E, U, E_k…, U_k…] from the coefficients, x̄'s (intercept first),
    F̄_c(β*), F̄_r(β*) and Δ: the same formulas as `decompose` below."""
    e = fc - fr
    u = gap - e
    de = (xc - xr) * bs
    du = xc * (bc - bs) + xr * (bs - br)
    return np.concatenate([[e, u], e * de / de.sum(), u * du / du.sum()])


def score_hess(link, ym, eta):
    """Per-row score factor ∂ℓ_i/∂η and observed-Hessian weight −∂²ℓ_i/∂η²."""
    if link == "logit":
        pr = 1 / (1 + np.exp(-eta))
        return ym - pr, pr * (1 - pr)
    q = 2 * ym - 1
    z = q * eta
    lam = np.exp(norm.logpdf(z) - log_ndtr(z))
    return q * lam, lam * (lam + z)


def newton(link, Xm, ym, wm, b0):
    """Weighted ML by Newton with the observed Hessian, from b0, to the
    rounding floor (two consecutive steps below 1e-12 relative)."""
    b = b0.copy()
    small = 0
    for _ in range(100):
        s, h = score_hess(link, ym, Xm @ b)
        step = np.linalg.solve((Xm.T * (wm * h)) @ Xm, Xm.T @ (wm * s))
        b = b + step
        if np.abs(step).max() <= 1e-12 * (1 + np.abs(b).max()):
            small += 1
            if small == 2:
                return b
    raise RuntimeError("weighted Newton did not converge")


def se_of(J, V):
    return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", J, V, J), 0.0))


def covariate_sampling(link, F, fr, fc, fp, xr, xc, gap, theta, Vjoint, res):
    """se_robust, se_cluster_x, se_model_x (covariate sampling included), each
    checked against the weight-perturbation brute force."""
    Xp = np.column_stack([g.astype(float), X])
    fits = {"r": (fr, ~g, X[~g]), "c": (fc, g, X[g]), "p": (fp, np.ones(n, bool), Xp)}
    # ψ of each model: bread · score_i on its rows, zero elsewhere. Bread =
    # inv(−Hessian) at the estimate (observed information; = cov_params()).
    psi_model = {}
    for m, (fit, mask, _) in fits.items():
        bread = np.linalg.inv(-fit.model.hessian(fit.params))
        assert np.allclose(bread, fit.cov_params(), rtol=1e-10, atol=0)
        ps = np.zeros((n, len(fit.params)))
        ps[mask] = fit.model.score_obs(fit.params) @ bread.T
        psi_model[m] = ps
    psi_model["p"] = psi_model["p"][:, 1:]  # drop the group indicator
    nr, nc = (~g).sum(), g.sum()

    # Brute force: the whole decomposition as a function of row weights.
    base = {m: newton(link, Xm, y[mask], np.ones(mask.sum()), fit.params)
            for m, (fit, mask, Xm) in fits.items()}
    for m, (fit, _, _) in fits.items():
        assert np.allclose(base[m], fit.params, rtol=1e-9, atol=1e-12), (link, m)

    def fit_w(m, w):
        _, mask, Xm = fits[m]
        wm = w[mask]
        if np.all(wm == 1.0):
            return base[m]
        return newton(link, Xm, y[mask], wm, base[m])

    def rows_w(w):
        br, bc, bp = fit_w("r", w), fit_w("c", w), fit_w("p", w)[1:]
        wr, wc = w[~g], w[g]
        xr_w, xc_w = wr @ X[~g] / wr.sum(), wc @ X[g] / wc.sum()
        xr_w[0] = xc_w[0] = 1.0  # the intercept
        gap_w = wc @ y[g] / wc.sum() - wr @ y[~g] / wr.sum()
        out = []
        for choice in ["reference", "comparison", "pooled"]:
            bs = {"reference": br, "comparison": bc, "pooled": bp}[choice]
            fcs = wc @ F(X[g] @ bs) / wc.sum()
            frs = wr @ F(X[~g] @ bs) / wr.sum()
            out.append(yun_rows(br, bc, bs, xr_w, xc_w, fcs, frs, gap_w))
        return np.concatenate(out)

    ones = np.ones(n)
    nrow = 2 + 2 * p
    at_one = rows_w(ones)
    hw = 1e-4

    def d_weight(members):
        up, down = ones.copy(), ones.copy()
        up[members] += hw
        down[members] -= hw
        return (rows_w(up) - rows_w(down)) / (2 * hw)

    D_row = np.array([d_weight([i]) for i in range(n)])
    D_cl = np.array([d_weight(np.flatnonzero(cl_idx == c)) for c in range(n_clusters)])
    se_bf_robust = np.sqrt(n / (n - 1) * (D_row ** 2).sum(0))
    se_bf_cluster = np.sqrt(n_clusters / (n_clusters - 1) * (D_cl ** 2).sum(0))

    for ci, choice in enumerate(["reference", "comparison", "pooled"]):
        pooled = choice == "pooled"
        bs0 = {"reference": fr.params, "comparison": fc.params, "pooled": fp.params[1:]}[choice]
        Fc_i, Fr_i = F(X[g] @ bs0), F(X[~g] @ bs0)
        fcs0, frs0 = Fc_i.mean(), Fr_i.mean()
        # φ = (b_r, b_c, [b_p], x̄_r, x̄_c, F̄_c(β*), F̄_r(β*), ȳ_c, ȳ_r)
        blocks = [fr.params, fc.params] + ([fp.params[1:]] if pooled else [])
        nb = sum(len(b) for b in blocks)
        phi = np.concatenate(blocks + [xr[1:], xc[1:],
                                       [fcs0, frs0, y[g].mean(), y[~g].mean()]])
        K = len(phi)

        def rows_phi(f):
            br, bc = f[:p], f[p:2 * p]
            o = 2 * p
            bp = f[o:o + p] if pooled else None
            o = nb
            xr_f = np.concatenate([[1.0], f[o:o + p - 1]])
            xc_f = np.concatenate([[1.0], f[o + p - 1:o + 2 * (p - 1)]])
            fcm, frm, ycm, yrm = f[o + 2 * (p - 1):]
            bs = {"reference": br, "comparison": bc, "pooled": bp}[choice]
            # F̄_g(β*): the mean parameter plus β*'s own move (X held).
            fcs = fcm + (F(X[g] @ bs).mean() - fcs0)
            frs = frm + (F(X[~g] @ bs).mean() - frs0)
            return yun_rows(br, bc, bs, xr_f, xc_f, fcs, frs, ycm - yrm)

        v0 = rows_phi(phi)
        assert np.allclose(v0, at_one[ci * nrow:(ci + 1) * nrow], rtol=1e-10, atol=1e-14)
        assert np.allclose(v0[0], res[choice]["explained"], rtol=1e-12)
        assert np.allclose(v0[1], res[choice]["unexplained"], rtol=1e-12)
        # Five-point central differences: the unexplained detail rows divide by
        # Σ_k du_k, small next to its terms, so a 2-point stencil's O(h²) error
        # is ~1e-6 relative there (as in se_iid); this one's O(h⁴) is not.
        J = np.zeros((len(v0), K))
        for j in range(K):
            h = 1e-6 * max(abs(phi[j]), 1)

            def at(step):
                t = phi.copy()
                t[j] += step
                return rows_phi(t)
            J[:, j] = (8 * (at(h) - at(-h)) - (at(2 * h) - at(-2 * h))) / (12 * h)
        # ψ_i, stacked.
        psi_means = np.zeros((n, 2 * (p - 1) + 4))
        psi_means[~g, :p - 1] = (X[~g, 1:] - xr[1:]) / nr
        psi_means[g, p - 1:2 * (p - 1)] = (X[g, 1:] - xc[1:]) / nc
        o = 2 * (p - 1)
        psi_means[g, o] = (Fc_i - fcs0) / nc
        psi_means[~g, o + 1] = (Fr_i - frs0) / nr
        psi_means[g, o + 2] = (y[g] - y[g].mean()) / nc
        psi_means[~g, o + 3] = (y[~g] - y[~g].mean()) / nr
        psi = np.column_stack([psi_model["r"], psi_model["c"]]
                              + ([psi_model["p"]] if pooled else []) + [psi_means])
        V_robust = n / (n - 1) * psi.T @ psi
        S = np.zeros((n_clusters, K))
        np.add.at(S, cl_idx, psi)
        V_cluster = n_clusters / (n_clusters - 1) * S.T @ S
        # The coefficient block of the cluster V is the old joint sandwich.
        assert np.allclose(V_cluster[:nb, :nb], Vjoint[:nb, :nb], rtol=1e-9,
                           atol=1e-12 * np.abs(Vjoint).max())
        V_model = np.zeros((K, K))
        covs = [fr.cov_params(), fc.cov_params()] + ([fp.cov_params()[1:, 1:]] if pooled else [])
        o = 0
        for cv in covs:
            V_model[o:o + len(cv), o:o + len(cv)] = cv
            o += len(cv)
        V_model[nb:, nb:] = V_robust[nb:, nb:]
        se_rob, se_clx, se_mod = se_of(J, V_robust), se_of(J, V_cluster), se_of(J, V_model)
        # (a) stacked ψ vs (b) weight-perturbation brute force.
        for name, a, b in [("robust", se_rob, se_bf_robust[ci * nrow:(ci + 1) * nrow]),
                           ("cluster_x", se_clx, se_bf_cluster[ci * nrow:(ci + 1) * nrow])]:
            big = (a > 1e-10) | (b > 1e-10)
            rel = np.abs(a - b)[big] / b[big]
            assert rel.max() < 1e-6, (link, choice, name, rel.max())
            assert np.all(a[~big] <= 1e-10) and np.all(b[~big] <= 1e-10)
            print(f"{link} {choice} se_{name}: ψ vs brute force max rel diff {rel.max():.2e}")
        iid = np.array(res[choice]["se_iid"])
        big = iid > 1e-10
        ratio = se_rob[big] / iid[big]
        print(f"{link} {choice} se_robust/se_iid: {ratio.min():.3f}..{ratio.max():.3f} "
              f"(E {ratio[0]:.3f}, U {ratio[1]:.3f})")
        res[choice]["se_robust"] = list(se_rob)
        res[choice]["se_cluster_x"] = list(se_clx)
        res[choice]["se_model_x"] = list(se_mod)


def keep_old_keys(out):
    """Keep the stored values of every key already in expected.json (their
    central-difference SEs move by ~1e-9 relative with the BLAS build), after
    checking the recomputed ones against them."""
    path = here / "expected.json"
    if "--fresh" in sys.argv or not path.exists():
        return
    old = json.loads(path.read_text())
    worst = [0.0]

    def walk(o, new, where):
        if isinstance(o, dict):
            assert isinstance(new, dict) and set(o) <= set(new), where
            for k in o:
                new[k] = walk(o[k], new[k], f"{where}/{k}")
            return new
        if isinstance(o, list):
            assert len(o) == len(new), where
            return [walk(a, b, f"{where}[{i}]") for i, (a, b) in enumerate(zip(o, new))]
        if isinstance(o, str):
            assert o == new, where
            return o
        rel = abs(o - new) / max(abs(o), abs(new), 1e-300) if o != new else 0.0
        assert rel <= 1e-8 or abs(o - new) <= 1e-15, (where, o, new)
        worst[0] = max(worst[0], rel)
        return o

    walk(old, out, "")
    print(f"old keys: recomputed within {worst[0]:.1e} relative of expected.json; stored values kept")


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
    covariate_sampling(link, F, fr, fc, fp, xr, xc, gap, theta, Vjoint, res)
    out[link] = res
keep_old_keys(out)
(here / "expected.json").write_text(json.dumps(out, indent=1))
print(json.dumps({k: out["logit"]["reference"][k] for k in ["explained", "unexplained"]}))

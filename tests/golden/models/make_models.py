"""Golden reference fits for the crate's regression-model tests.

What it produces (all in the folder this script lives in):
  framing.csv           verbatim copy of /work/shared/golden/framing.csv (statsmodels'
                        `framing` mediation data set, 265 rows).
  framing_design.csv    framing.csv turned into a purely numeric design matrix
                        (cong_mesg, emo, treat, age, income, gender_female and
                        educ dummies with the alphabetically-first level omitted).
  clustered.csv         synthetic clustered data (n = 3000, 50 hospitals, 120
                        surgeons), generated with numpy default_rng(SEED) below.
  expected.json         list of reference fits (statsmodels OLS/WLS/Logit/Probit,
                        pyfixest feols/feglm-logit) with coef, se, nobs, the exact
                        Python call, and the small-sample factor each tool applied.
  expected_meta.json    versions, facts about the generated data (seed, cluster
                        sizes, repaired / separated hospitals) and the result of
                        the pre-0.60 pf.ssc(...) spelling.

Versions used to produce the committed files (printed again at run time):
  python 3.11, numpy 2.4.6, pandas 3.1.1, scipy 1.17.1, statsmodels 0.15.0,
  pyfixest 0.60.0

Rerun with:
  cd /work/main/tests/golden/models && ../../../bench/.venv/bin/python make_models.py

The script is deterministic (apart from <= 1e-14 relative last-bit variation of
pyfixest entries, mainly the two-way FE ones, between processes; see README): the data generator
uses a fixed seed, every fit is
run on the data *as re-read from the CSV files* (so the Rust side sees exactly the
same doubles), and every fit is cross-checked against an independent numpy
computation (coefficients, raw sandwich and the small-sample factor).  Any check
failure raises, so a successful run means all checks passed.

In every `command` string `fd` is pd.read_csv("framing_design.csv") and `cl` is
pd.read_csv("clustered.csv"); `sm` is statsmodels.api and `pf` is pyfixest.
"""

import os

# Single-threaded numerics (BLAS, rayon), set before numpy / pyfixest load.
# Everything except pyfixest fits (mainly the two-way FE ones) is then
# byte-identical from run to run; those still vary in the last bits (<= ~1e-14
# relative) between *processes*: pyfixest's Rust demeaner is stable within a
# process but not across processes, even single-threaded (see README).
for _var in ("RAYON_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
             "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyfixest as pf  # noqa: E402
import scipy  # noqa: E402
import scipy.special as sps  # noqa: E402
import scipy.stats as st  # noqa: E402
import statsmodels  # noqa: E402
import statsmodels.api as sm  # noqa: E402

HERE = Path(__file__).resolve().parent
SRC_FRAMING = Path("/work/shared/golden/framing.csv")
SEED = 20240611  # seed of numpy.random.default_rng for clustered.csv

VERSIONS = {
    "python": sys.version.split()[0],
    "numpy": np.__version__,
    "pandas": pd.__version__,
    "scipy": scipy.__version__,
    "statsmodels": statsmodels.__version__,
    "pyfixest": pf.__version__,
}
print("versions:", VERSIONS)

# Relative tolerance for "our numpy reproduces the tool" checks on statsmodels
# (exact same algebra, so only rounding differs).
TOL_SM = 1e-10


def rel_err(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


# ---------------------------------------------------------------------------
# 1. framing.csv -> framing_design.csv
# ---------------------------------------------------------------------------
shutil.copyfile(SRC_FRAMING, HERE / "framing.csv")
raw = pd.read_csv(HERE / "framing.csv")

# Level strings actually present (checked, not assumed).
gender_levels = sorted(raw["gender"].dropna().unique())
check(gender_levels == ["female", "male"], f"unexpected gender levels {gender_levels}")
educ_levels = sorted(raw["educ"].dropna().unique())  # plain str sort = alphabetical
educ_ref = educ_levels[0]  # omitted reference level
print("educ levels (sorted):", educ_levels, "-> reference:", repr(educ_ref))

needed = ["cong_mesg", "emo", "treat", "age", "income", "gender", "educ"]
n_raw = len(raw)
sub = raw[needed].dropna().reset_index(drop=True)
design = pd.DataFrame(
    {
        "cong_mesg": sub["cong_mesg"].astype(int),
        "emo": sub["emo"].astype(int),
        "treat": sub["treat"].astype(int),
        "age": sub["age"].astype(int),
        "income": sub["income"].astype(int),
        "gender_female": (sub["gender"] == "female").astype(int),
    }
)
EDUC_COLS = []
for lev in educ_levels[1:]:
    col = f"educ={lev}"
    design[col] = (sub["educ"] == lev).astype(int)
    EDUC_COLS.append(col)
design.to_csv(HERE / "framing_design.csv", index=False)
print(f"framing_design.csv: {len(design)} rows kept of {n_raw} (dropped {n_raw - len(design)} with NA)")

# ---------------------------------------------------------------------------
# 2. clustered.csv (synthetic)
# ---------------------------------------------------------------------------
rng = np.random.default_rng(SEED)
N, H, S = 3000, 50, 120
MIN_H, MIN_S = 5, 3

# Hospital sizes: 5 guaranteed rows each + multinomial(Dirichlet(0.8)) for the
# rest, so sizes are very unequal (some hospitals have only a handful of rows).
props = rng.dirichlet(np.full(H, 0.8))
sizes = MIN_H + rng.multinomial(N - MIN_H * H, props)
hospital = np.repeat(np.arange(1, H + 1), sizes)

# Surgeons: each has a "home" hospital (every hospital gets >= 1 home surgeon,
# the other 70 go to hospitals in proportion to size).  A row gets a surgeon of
# its own hospital with prob 0.85, otherwise any surgeon: nested-ish but crossing.
home = np.empty(S, dtype=int)
home[:H] = rng.permutation(np.arange(1, H + 1))
home[H:] = rng.choice(np.arange(1, H + 1), size=S - H, p=sizes / N)
surgeon = np.empty(N, dtype=int)
cross = rng.random(N) < 0.15
for i in range(N):
    if cross[i]:
        surgeon[i] = rng.integers(1, S + 1)
    else:
        own = np.flatnonzero(home == hospital[i]) + 1
        surgeon[i] = own[rng.integers(0, own.size)]
# Deterministic repair so every surgeon has >= MIN_S rows: move rows (preferably
# from the surgeon's home hospital) away from the currently largest surgeon.
n_repair_surgeon = 0
while True:
    counts = np.bincount(surgeon, minlength=S + 1)[1:]
    short = np.flatnonzero(counts < MIN_S)
    if short.size == 0:
        break
    s = short[0] + 1
    donors = np.flatnonzero(counts[surgeon - 1] > MIN_S)
    pref = donors[hospital[donors] == home[s - 1]]
    pool = pref if pref.size else donors
    surgeon[pool[np.argmax(counts[surgeon[pool] - 1])]] = s
    n_repair_surgeon += 1

a_h = rng.normal(0.0, 1.0, H)  # hospital effect (outcome y)
b_s = rng.normal(0.0, 0.5, S)  # surgeon effect
p_g = sps.expit(rng.normal(0.0, 1.2, H))  # share of g = 1 varies by hospital
c_h = 0.7 * a_h + rng.normal(0.0, 0.5, H)  # hospital effect (logit outcome)

ah = a_h[hospital - 1]
g = (rng.random(N) < p_g[hospital - 1]).astype(int)
x1 = rng.normal(0.0, 1.0, N)
x2 = 0.7 * ah + rng.normal(0.0, 1.0, N)  # correlated with the hospital effect
x3 = (rng.random(N) < 0.4).astype(int)
w = rng.uniform(0.5, 2.0, N)
sd = 0.5 + 0.5 * np.abs(x1) + 0.3 * g  # heteroskedastic noise scale
y = 1.0 + ah + b_s[surgeon - 1] + 0.5 * g + 1.0 * x1 - 0.5 * x2 + 0.8 * x3 + sd * rng.normal(0.0, 1.0, N)
eta = -1.9 + c_h[hospital - 1] + 0.6 * g + 0.5 * x1 - 0.4 * x2 + 0.3 * x3
pr = sps.expit(eta)
ybin = (rng.random(N) < pr).astype(int)
# No hospital may be all-0 or all-1 in ybin (otherwise FE logit drops it).
# Deterministic repair: in an all-0 hospital set ybin = 1 on its row with the
# highest latent probability; in an all-1 hospital set ybin = 0 on the lowest.
repaired_hosp = []
for h in range(1, H + 1):
    idx = np.flatnonzero(hospital == h)
    if ybin[idx].sum() == 0:
        ybin[idx[np.argmax(pr[idx])]] = 1
        repaired_hosp.append(h)
    elif ybin[idx].sum() == idx.size:
        ybin[idx[np.argmin(pr[idx])]] = 0
        repaired_hosp.append(h)

# ysep: ybin with ONE hospital forced to all zeros -> FE logit must drop it.
# Chosen deterministically: the hospital whose size is closest to the median
# size (smallest id on ties) among those with at least one ybin == 1.
med = np.median(sizes)
cands = [h for h in range(1, H + 1) if ybin[hospital == h].sum() > 0]
SEP_HOSPITAL = int(min(cands, key=lambda h: (abs(sizes[h - 1] - med), h)))
ysep = ybin.copy()
ysep[hospital == SEP_HOSPITAL] = 0

# Shuffle the rows so clusters are not contiguous, round continuous columns to
# 6 decimals (the CSV then holds exactly the doubles that every tool reads).
perm = rng.permutation(N)
cl_gen = pd.DataFrame(
    {
        "hospital": hospital,
        "surgeon": surgeon,
        "g": g,
        "x1": np.round(x1, 6),
        "x2": np.round(x2, 6),
        "x3": x3,
        "w": np.round(w, 6),
        "y": np.round(y, 6),
        "ybin": ybin,
        "ysep": ysep,
    }
).iloc[perm].reset_index(drop=True)
cl_gen.to_csv(HERE / "clustered.csv", index=False, float_format="%.6f")

# ---------------------------------------------------------------------------
# 3. Re-read both CSVs; all fits below use exactly these frames.
# ---------------------------------------------------------------------------
fd = pd.read_csv(HERE / "framing_design.csv")
cl = pd.read_csv(HERE / "clustered.csv")
check(np.array_equal(cl[["hospital", "surgeon", "g", "x3", "ybin", "ysep"]].to_numpy(),
                     cl_gen[["hospital", "surgeon", "g", "x3", "ybin", "ysep"]].to_numpy()),
      "clustered.csv integer round trip")
check(np.array_equal(cl[["x1", "x2", "w", "y"]].to_numpy(), cl_gen[["x1", "x2", "w", "y"]].to_numpy()),
      "clustered.csv float round trip")

# Data-set checks required by the brief.
hs = cl.groupby("hospital").size()
ss = cl.groupby("surgeon").size()
check(sorted(hs.index) == list(range(1, H + 1)) and hs.min() >= MIN_H, "hospital sizes")
check(sorted(ss.index) == list(range(1, S + 1)) and ss.min() >= MIN_S, "surgeon sizes")
hb = cl.groupby("hospital")["ybin"].agg(["sum", "size"])
check(((hb["sum"] > 0) & (hb["sum"] < hb["size"])).all(), "ybin all-0/all-1 hospital")
hsep = cl.groupby("hospital")["ysep"].agg(["sum", "size"])
bad = hsep.index[(hsep["sum"] == 0) | (hsep["sum"] == hsep["size"])].tolist()
check(bad == [SEP_HOSPITAL], f"ysep separated hospitals {bad}")
n_hosp_per_surgeon = cl.groupby("surgeon")["hospital"].nunique()
DATA_INFO = {
    "seed": SEED,
    "n": int(len(cl)),
    "hospital_sizes_min_median_max": [int(hs.min()), float(hs.median()), int(hs.max())],
    "n_hospitals_with_size_le_10": int((hs <= 10).sum()),
    "surgeon_sizes_min_median_max": [int(ss.min()), float(ss.median()), int(ss.max())],
    "surgeons_spanning_several_hospitals": int((n_hosp_per_surgeon > 1).sum()),
    "surgeon_rows_repaired_to_reach_min_3": n_repair_surgeon,
    "g_share_by_hospital_min_max": [float(cl.groupby("hospital")["g"].mean().min()),
                                    float(cl.groupby("hospital")["g"].mean().max())],
    "corr_x2_hospital_effect": float(np.corrcoef(x2, ah)[0, 1]),
    "ybin_mean": float(cl["ybin"].mean()),
    "ybin_hospitals_repaired_not_all_0_or_1": repaired_hosp,
    "ysep_hospital_forced_all_zero": SEP_HOSPITAL,
    "ysep_hospital_rows": int(hs.loc[SEP_HOSPITAL]),
}
print("clustered.csv:", DATA_INFO)
check(0.2 <= DATA_INFO["ybin_mean"] <= 0.3, "ybin mean outside 0.2-0.3")

# ---------------------------------------------------------------------------
# 4. Independent numpy machinery used to verify every fit
# ---------------------------------------------------------------------------


def cluster_meat(scores, groups):
    """sum_g (sum_{i in g} s_i)(sum_{i in g} s_i)'  (CR0 meat, no factors)."""
    codes, _ = pd.factorize(np.asarray(groups))
    sums = np.zeros((codes.max() + 1, scores.shape[1]))
    np.add.at(sums, codes, scores)
    return sums.T @ sums, int(codes.max() + 1)


def raw_vcovs(bread, scores, groups=None, iid_scale=None):
    """Uncorrected covariances: iid (bread * iid_scale), HC0 and CR0."""
    out = {"HC0": bread @ (scores.T @ scores) @ bread}
    if iid_scale is not None:
        out["iid"] = bread * iid_scale
    if groups is not None:
        meat, G = cluster_meat(scores, groups)
        out["CR0"] = bread @ meat @ bread
        out["G"] = G
    return out


def fe_dummies(frame, fe):
    """Dummy matrix for the FE columns: all levels of the first, drop-first for the rest."""
    blocks = []
    for j, f in enumerate(fe):
        d = pd.get_dummies(frame[f].astype("category"), drop_first=(j > 0)).to_numpy(float)
        blocks.append(d)
    return np.hstack(blocks)


def manual_linear(frame, y, x, constant, fe=(), weights=None, cluster=None):
    """Exact (dense, dummy-variable) WLS/OLS + FWL partialled-out sandwich pieces."""
    Y = frame[y].to_numpy(float)
    X = frame[x].to_numpy(float)
    if constant:
        X = np.column_stack([np.ones(len(frame)), X])
    wv = np.ones(len(frame)) if weights is None else frame[weights].to_numpy(float)
    sw = np.sqrt(wv)
    if fe:
        D = fe_dummies(frame, fe)
        # partial the FE out of X and y (exact projection, weighted)
        coefD = np.linalg.lstsq(D * sw[:, None], np.column_stack([X, Y]) * sw[:, None], rcond=None)[0]
        rank_D = np.linalg.matrix_rank(D)
        XY = np.column_stack([X, Y]) - D @ coefD
        Xt, Yt = XY[:, :-1], XY[:, -1]
    else:
        Xt, Yt, rank_D = X, Y, 0
    XtW = Xt * wv[:, None]
    bread = np.linalg.inv(Xt.T @ XtW)
    beta = bread @ (XtW.T @ Yt)
    e = Yt - Xt @ beta  # = full dummy-regression residual
    scores = (wv * e)[:, None] * Xt
    ssr = float(np.sum(wv * e**2))
    n = len(frame)
    groups = None if cluster is None else frame[cluster].to_numpy()
    out = raw_vcovs(bread, scores, groups, iid_scale=ssr / n)
    out.update(beta=beta, n=n, k=X.shape[1], k_fe_rank=rank_D, ssr=ssr)
    return out


def newton(score_fn, hess_fn, b0, tol=1e-13, maxiter=200):
    b = b0.copy()
    for _ in range(maxiter):
        step = np.linalg.solve(hess_fn(b), score_fn(b))
        b = b - step
        if np.max(np.abs(step)) < tol:
            return b
    raise AssertionError("manual Newton did not converge")


def manual_binary(frame, y, x, constant, link, fe=(), cluster=None):
    """Own Newton-Raphson ML fit (logit/probit), observed-Hessian bread, score sandwich."""
    Y = frame[y].to_numpy(float)
    X = frame[x].to_numpy(float)
    if constant:
        X = np.column_stack([np.ones(len(frame)), X])
    k = X.shape[1]
    Z = np.column_stack([X, fe_dummies(frame, fe)]) if fe else X
    q = 2 * Y - 1

    def parts(b):
        xb = Z @ b
        if link == "logit":
            mu = sps.expit(xb)
            s = (Y - mu)[:, None] * Z
            wgt = mu * (1 - mu)  # -d2 loglik / d xb2
        else:  # probit, observed Hessian (as statsmodels Probit.hessian)
            lam = q * st.norm.pdf(q * xb) / st.norm.cdf(q * xb)
            s = lam[:, None] * Z
            wgt = lam * (lam + xb)
        return s, wgt

    def score(b):
        return parts(b)[0].sum(0)

    def hessian(b):
        # Hessian H of the log-likelihood; newton() steps b <- b - H^{-1} score.
        s, wgt = parts(b)
        return -(Z.T @ (Z * wgt[:, None]))

    b = newton(score, hessian, np.zeros(Z.shape[1]))
    s, wgt = parts(b)
    info = Z.T @ (Z * wgt[:, None])  # -Hessian
    bread_full = np.linalg.inv(info)
    groups = None if cluster is None else frame[cluster].to_numpy()
    full = raw_vcovs(bread_full, s, groups)
    full["iid"] = bread_full
    out = {kk: (vv[:k, :k] if isinstance(vv, np.ndarray) else vv) for kk, vv in full.items()}
    out.update(beta=b[:k], n=len(frame), k=k, k_fe_rank=Z.shape[1] - k)
    return out


def implied_factor(V_tool, V_raw):
    """Scalar c with V_tool = c * V_raw, and the largest deviation from that,
    max_ij |V_tool - c V_raw|_ij / sqrt(V_ii V_jj) (scale-free, also fine for
    near-zero off-diagonal elements); should be at rounding level."""
    V_tool, V_raw = np.asarray(V_tool), np.asarray(V_raw)
    ratio = np.diag(V_tool) / np.diag(V_raw)
    c = float(np.median(ratio))
    sd = np.sqrt(np.diag(c * V_raw))
    spread = float(np.max(np.abs(V_tool - c * V_raw) / np.outer(sd, sd)))
    return c, spread


# ---------------------------------------------------------------------------
# 5. The fits
# ---------------------------------------------------------------------------
ENTRIES = []
NS = {"sm": sm, "pf": pf, "np": np, "pd": pd, "fd": fd, "cl": cl}
CHECK_LOG = []


def run(cmd):
    """Evaluate the exact command string (so `command` is literally what ran)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=sm.tools.sm_exceptions.ConvergenceWarning)
        return eval(cmd, NS)


def j(x):
    return [float(v) for v in x]


def sm_entry(name, data, frame_name, estimator, y, x, vcov, cluster=None, weights=None):
    """Build, run and verify one statsmodels fit."""
    frame = NS[frame_name]
    X = f'sm.add_constant({frame_name}[{x!r}])'
    Y = f'{frame_name}[{y!r}]'
    if estimator in ("ols", "wls"):
        model = f"sm.OLS({Y}, {X})" if estimator == "ols" else \
            f"sm.WLS({Y}, {X}, weights={frame_name}[{weights!r}])"
        fitargs = []
    else:
        cls = "Logit" if estimator == "logit" else "Probit"
        model = f"sm.{cls}({Y}, {X})"
        fitargs = ['method="newton"', "tol=1e-12", "maxiter=200", "disp=0"]
    if vcov == "HC1":
        fitargs.append('cov_type="HC1"')
    elif vcov == "CR1":
        fitargs.append(f'cov_type="cluster", cov_kwds={{"groups": {frame_name}[{cluster!r}]}}')
    cmd = f"{model}.fit({', '.join(fitargs)})"
    res = run(cmd)
    if estimator in ("logit", "probit"):
        check(res.mle_retvals["converged"], f"{name}: not converged")

    n, K = int(res.nobs), len(res.params)
    V = np.asarray(res.cov_params())
    # independent numpy reproduction
    if estimator in ("ols", "wls"):
        m = manual_linear(frame, y, x, True, weights=weights, cluster=cluster)
        iid_raw_note = "SSR/N*(X'WX)^-1"
    else:
        m = manual_binary(frame, y, x, True, estimator, cluster=cluster)
        iid_raw_note = "(-Hessian)^-1"
    check(rel_err(res.params, m["beta"]) < 1e-9, f"{name}: coef mismatch {rel_err(res.params, m['beta'])}")
    raw_key = {"iid": "iid", "HC1": "HC0", "CR1": "CR0"}[vcov]
    c, spread = implied_factor(V, m[raw_key])
    # the formula statsmodels documents / implements
    G = m.get("G")
    if vcov == "iid":
        f_formula = n / (n - K) if estimator in ("ols", "wls") else 1.0
        ftxt = ("sigma2 = SSR/(N-K): factor N/(N-K) on SSR/N*(X'WX)^-1" if estimator in ("ols", "wls")
                else "none: inverse observed information (-H)^-1 at the MLE")
    elif vcov == "HC1":
        if estimator in ("ols", "wls"):
            f_formula, ftxt = n / (n - K), "HC1 = N/(N-K) * HC0 (statsmodels RegressionResults.cov_HC1)"
        else:
            f_formula = 1.0
            ftxt = ("cov_type='HC1' on discrete models has no cov_HC1 attribute and falls back to "
                    "sandwich_covariance.cov_white_simple(use_correction=False): i.e. plain HC0, factor 1")
    else:
        f_formula = G / (G - 1) * (n - 1) / (n - K)
        ftxt = "CR1 = G/(G-1) * (N-1)/(N-K) * CR0 (sandwich_covariance.cov_cluster, use_correction=True)"
    check(abs(c / f_formula - 1) < TOL_SM and spread < TOL_SM,
          f"{name}: factor {c} vs formula {f_formula} (spread {spread})")
    check(rel_err(res.bse, np.sqrt(np.diag(f_formula * m[raw_key]))) < TOL_SM, f"{name}: se mismatch")
    CHECK_LOG.append((name, rel_err(res.params, m["beta"]),
                      rel_err(res.bse, np.sqrt(np.diag(f_formula * m[raw_key])))))
    e = {
        "name": name, "data": data, "tool": f"statsmodels {statsmodels.__version__}",
        "estimator": estimator, "y": y, "x": list(x), "constant": True, "fe": [],
        "weights": weights, "vcov": vcov, "cluster": cluster, "ssc": ftxt,
        "terms": list(res.params.index), "coef": j(res.params), "se": j(res.bse),
        "nobs": n, "k": K, "ssc_factor": float(f_formula), "ssc_factor_implied": c,
        "raw_vcov": {"iid": iid_raw_note, "HC1": "HC0 sandwich", "CR1": "CR0 sandwich"}[vcov],
        "command": cmd,
    }
    if vcov == "CR1":
        e["n_clusters"] = G
    if estimator in ("logit", "probit"):
        e["llf"] = float(res.llf)
    ENTRIES.append(e)


# ---- statsmodels on framing_design ----------------------------------------
FX_OLS = ["treat", "age", "income", "gender_female"] + EDUC_COLS
FX_BIN = ["emo"] + FX_OLS
for v in ("iid", "HC1"):
    sm_entry(f"framing_ols_{v}", "framing_design.csv", "fd", "ols", "emo", FX_OLS, v)
for est in ("logit", "probit"):
    for v in ("iid", "HC1"):
        sm_entry(f"framing_{est}_{v}", "framing_design.csv", "fd", est, "cong_mesg", FX_BIN, v)

# ---- statsmodels on clustered ----------------------------------------------
CX = ["g", "x1", "x2", "x3"]
for est in ("ols", "wls"):
    for v in ("iid", "HC1", "CR1"):
        sm_entry(f"clustered_{est}_{v}", "clustered.csv", "cl", est, "y", CX, v,
                 cluster="hospital" if v == "CR1" else None, weights="w" if est == "wls" else None)
for v in ("iid", "CR1"):
    sm_entry(f"clustered_logit_{v}", "clustered.csv", "cl", "logit", "ybin", CX, v,
             cluster="hospital" if v == "CR1" else None)

# ---- pyfixest ---------------------------------------------------------------
# Tight demeaning/IRLS tolerances so the golden values are the exact estimator
# (pyfixest's defaults are MapDemeaner(fixef_tol=1e-6) and iwls_tol=1e-8; the
# legacy fixef_tol= argument is deprecated in 0.60).  The effect of the
# default tolerance is recorded in `default_tol_max_rel_diff`.
PF_TOL = "demeaner=pf.MapDemeaner(fixef_tol=1e-13)"
PF_GLM_TOL = "iwls_tol=1e-13, iwls_maxiter=100, demeaner=pf.MapDemeaner(fixef_tol=1e-13)"


def pf_factor_formula(vcov, ssc_kind, n, k, fe_levels, n_fe, nested_levels, n_nested, G):
    """pyfixest 0.60 utils.get_ssc(), re-derived (see README)."""
    k_fe = sum(fe_levels)
    k_fe_adj = k_fe - (n_fe - 1) if n_fe > 1 else k_fe
    if ssc_kind == "none" or n_fe == 0:
        df_k = k
    elif ssc_kind == "full" or vcov != "CR1" or nested_levels == 0:
        df_k = k + k_fe_adj
    else:  # nonnested, CRV with FE nested in the cluster
        df_k = k + k_fe_adj - nested_levels + n_nested
    if vcov == "iid":
        return n / (n - df_k), df_k  # sigma2 = SSR/(N-1) * (N-1)/(N-df_k) relative to SSR/N
    if vcov == "HC1":
        return n / (n - df_k), df_k
    return G / (G - 1) * (n - 1) / (n - df_k), df_k


def pf_entry(name, fml, vcov, weights=None, ssc=None, ssc_kind="nonnested", family=None,
             ssc_text=None):
    yv, rhs = [s.strip() for s in fml.split("~")]
    xs_part, fe_part = [s.strip() for s in rhs.split("|")]
    x = [s.strip() for s in xs_part.split("+")]
    fe = [s.strip() for s in fe_part.split("+")]
    vc = {"iid": '"iid"', "HC1": '"hetero"', "CR1": '{"CRV1": "hospital"}'}[vcov]
    args = [repr(fml).replace("'", '"'), "data=cl", f"vcov={vc}"]
    if family:
        args.insert(2, f'family="{family}"')
    if weights:
        args.append(f'weights="{weights}"')
    if ssc:
        args.append(f"ssc={ssc}")
    args.append(PF_GLM_TOL if family else PF_TOL)
    fn = "pf.feglm" if family else "pf.feols"
    cmd = f"{fn}({', '.join(args)})"
    fit = run(cmd)
    # same call with pyfixest's default tolerances, to document their effect
    cmd_default_tol = cmd.replace(", " + (PF_GLM_TOL if family else PF_TOL), "")
    fit_dt = run(cmd_default_tol)

    coef, se = fit.coef(), fit.se()
    n = int(fit._N)
    used = fit._data  # rows actually used (after separation / singleton drops)
    frame = cl.loc[used.index] if len(used) != len(cl) else cl
    check(len(frame) == n, f"{name}: nobs bookkeeping")
    cluster = "hospital" if vcov == "CR1" else None
    if family:
        m = manual_binary(frame, yv, x, False, "logit", fe=fe, cluster=cluster)
        raw_key = {"iid": "iid", "HC1": "HC0", "CR1": "CR0"}[vcov]
    else:
        m = manual_linear(frame, yv, x, False, fe=fe, weights=weights, cluster=cluster)
        raw_key = {"iid": "iid", "HC1": "HC0", "CR1": "CR0"}[vcov]
    coef_diff = rel_err(coef.to_numpy(), m["beta"])
    check(coef_diff < 1e-8, f"{name}: pyfixest coef vs exact dummy fit {coef_diff}")
    V = np.asarray(fit._vcov)
    c, spread = implied_factor(V, m[raw_key])
    fe_levels = [int(frame[f].nunique()) for f in fe]  # levels in the estimation sample
    # levels pyfixest itself counts in K (fit._k_fe).  For feglm these are counted
    # BEFORE separated rows are dropped, so a dropped hospital still counts.
    # fit._k_fe is a Series indexed "__fixed_effect__(name)", NOT in formula order
    # (two-way: surgeon before hospital), so map it by name.
    kfe = {str(i).removeprefix("__fixed_effect__(").removesuffix(")"): int(v) for i, v in fit._k_fe.items()}
    fe_levels_pf = [kfe[f] for f in fe]
    nested = [f for f in fe if cluster and frame.groupby(f)[cluster].nunique().max() == 1]
    nested_levels = sum(fe_levels_pf[fe.index(f)] for f in nested)  # pyfixest: sum(_k_fe[nested])
    G = m.get("G")
    f_formula, df_k = pf_factor_formula(vcov, ssc_kind, n, len(x), fe_levels_pf, len(fe),
                                       nested_levels, len(nested), G)
    # family logit iid: pyfixest multiplies the inverse information by (N-1)/(N-df_k)
    if family and vcov == "iid":
        f_formula = (n - 1) / (n - df_k)
    check(abs(c / f_formula - 1) < 1e-7, f"{name}: implied factor {c} vs formula {f_formula}")
    # exact SEs: our numpy sandwich at the exact optimum times pyfixest's factor.
    # feols: equal to pyfixest to ~1e-13.  feglm: pyfixest evaluates the IRLS
    # weights W (hence bread and scores) at the iterate BEFORE the final update,
    # so its SEs differ from the exact-MLE value at the ~1e-9 relative level.
    se_exact = np.sqrt(np.diag(f_formula * m[raw_key]))
    se_diff = rel_err(se.to_numpy(), se_exact)
    check(se_diff < (1e-7 if family else 1e-10), f"{name}: se vs exact {se_diff}")
    CHECK_LOG.append((name, coef_diff, se_diff))
    dt_diff = max(rel_err(fit_dt.coef().to_numpy(), coef.to_numpy()),
                  rel_err(fit_dt.se().to_numpy(), se.to_numpy()))
    if family and vcov == "iid":
        ftxt_v = "(N-1)/(N-df_k) * (X~'WX~)^-1 (inverse information of the IRLS fit)"
    elif vcov == "iid":
        ftxt_v = "sigma2 = SSR/(N-df_k); factor N/(N-df_k) on SSR/N*(X~'WX~)^-1"
    elif vcov == "HC1":
        ftxt_v = "N/(N-df_k) * HC0 (k_adj with the fixest n/(n-1) 'cluster' adj at G=N folded in)"
    else:
        ftxt_v = "G/(G-1) * (N-1)/(N-df_k) * CR0"
    e = {
        "name": name, "data": "clustered.csv", "tool": f"pyfixest {pf.__version__}",
        "estimator": "feglm_logit" if family else "feols", "y": yv, "x": x,
        "constant": False, "fe": fe, "weights": weights, "vcov": vcov, "cluster": cluster,
        "ssc": (ssc_text or "pyfixest default ssc() = ssc(k_adj=True, k_fixef='nonnested', G_adj=True, G_df='min')")
               + f"; {ftxt_v}; df_k = {df_k}",
        "terms": list(coef.index), "coef": j(coef), "se": j(se), "nobs": n,
        "k": len(x), "df_k": int(df_k), "fe_levels": fe_levels,
        "fe_levels_counted_by_pyfixest": fe_levels_pf,
        "fe_nested_in_cluster": nested,
        "ssc_factor": float(f_formula), "ssc_factor_implied": c,
        "raw_vcov": {"iid": "SSR/N*(X~'WX~)^-1" if not family else "(X~'WX~)^-1",
                     "HC1": "HC0 sandwich on FE-partialled X~", "CR1": "CR0 sandwich on FE-partialled X~"}[vcov],
        "se_exact": j(se_exact),
        "max_rel_diff_vs_exact_dummy_fit": {"coef": coef_diff, "se": se_diff,
                                            "vcov_after_factor": spread},
        "default_tol_max_rel_diff": dt_diff,
        "command": cmd,
    }
    if vcov == "CR1":
        e["n_clusters"] = G
    if family:
        all_h = set(cl["hospital"].unique())
        kept_h = set(frame["hospital"].unique())
        e["dropped_fe"] = {"hospital": sorted(int(h) for h in all_h - kept_h)}
        e["n_dropped_rows"] = int(len(cl) - n)
    ENTRIES.append(e)


F1 = "y ~ g + x1 + x2 + x3 | hospital"
F2 = "y ~ g + x1 + x2 + x3 | hospital + surgeon"
pf_entry("feols_fe1_crv1_default", F1, "CR1")
pf_entry("feols_fe1_crv1_ssc_explicit", F1, "CR1",
         ssc='pf.ssc(k_adj=True, k_fixef="nonnested", G_adj=True)',
         ssc_text="explicit pf.ssc(k_adj=True, k_fixef='nonnested', G_adj=True) "
                  "(0.60 names; fixest's fixef.K='nested' semantics; identical to the default)")
pf_entry("feols_fe1_crv1_ssc_full", F1, "CR1", ssc_kind="full",
         ssc='pf.ssc(k_adj=True, k_fixef="full", G_adj=True)',
         ssc_text="pf.ssc(k_adj=True, k_fixef='full', G_adj=True): every FE level counted in K")
pf_entry("feols_fe1_crv1_ssc_none", F1, "CR1", ssc_kind="none",
         ssc='pf.ssc(k_adj=True, k_fixef="none", G_adj=True)',
         ssc_text="pf.ssc(k_adj=True, k_fixef='none', G_adj=True): FE levels not counted in K")
pf_entry("feols_fe1_iid", F1, "iid")
pf_entry("feols_fe1_hc1", F1, "HC1")
pf_entry("feols_fe2_crv1", F2, "CR1")
pf_entry("feols_fe2_iid", F2, "iid")
pf_entry("feols_fe1_w_crv1", F1, "CR1", weights="w")
pf_entry("feols_fe1_w_iid", F1, "iid", weights="w")
pf_entry("feols_fe1_w_hc1", F1, "HC1", weights="w")
FL = "ybin ~ g + x1 + x2 + x3 | hospital"
FS = "ysep ~ g + x1 + x2 + x3 | hospital"
pf_entry("feglm_logit_fe1_crv1", FL, "CR1", family="logit")
pf_entry("feglm_logit_fe1_iid", FL, "iid", family="logit")
pf_entry("feglm_logit_sep_crv1", FS, "CR1", family="logit")
pf_entry("feglm_logit_sep_iid", FS, "iid", family="logit")

# The call spelled in the brief uses pre-0.60 names and a value 0.60 rejects:
try:
    pf.ssc(adj=True, fixef_k="nested", cluster_adj=True)
    OLD_SSC_NOTE = "accepted"
except Exception as exc:  # documented in README
    OLD_SSC_NOTE = f"{type(exc).__name__}: {exc}"
print("pf.ssc(adj=True, fixef_k='nested', cluster_adj=True) ->", OLD_SSC_NOTE)

# ---------------------------------------------------------------------------
# 6. Write expected.json
# ---------------------------------------------------------------------------
out = {
    "generated_by": "tests/golden/models/make_models.py",
    "versions": VERSIONS,
    "data_info": {"framing_design_rows": int(len(fd)), "framing_educ_reference": educ_ref,
                  "clustered": DATA_INFO},
    "pyfixest_old_ssc_call": {"call": 'pf.ssc(adj=True, fixef_k="nested", cluster_adj=True)',
                              "result": OLD_SSC_NOTE},
    "entries": ENTRIES,
}
# The brief asks for "a list of reference fits": expected.json is that list;
# metadata goes into a sibling file so the list stays a plain JSON array.
with open(HERE / "expected.json", "w") as fh:
    json.dump(ENTRIES, fh, indent=1)
    fh.write("\n")
meta = {k: v for k, v in out.items() if k != "entries"}
with open(HERE / "expected_meta.json", "w") as fh:
    json.dump(meta, fh, indent=1)
    fh.write("\n")

print(f"\n{len(ENTRIES)} entries written; verification vs independent numpy (name, max rel diff coef, max rel diff se):")
for row in CHECK_LOG:
    print(f"  {row[0]:32s} {row[1]:.2e} {row[2]:.2e}")

"""Golden values for the care-site analysis: pyfixest 0.60 fits.

Generates hospital.csv (seeded numpy draws: 4,000 patients in 40 hospitals,
comparison group c concentrated in some hospitals, covariates x1, x2, 60
surgeons crossing hospitals, a continuous outcome y and a binary outcome yb)
and writes expected.json with, for each outcome, pyfixest's coefficient on c
and its CRV1(hospital) SE for
  - `without_fe`: feols("y ~ c + x1 + x2") / feglm(logit),
  - `with_fe`:    feols("y ~ c + x1 + x2 | hospital") / feglm(logit),
  - `two_way`:    feols("y ~ c + x1 + x2 | hospital + surgeon") (LPM only).
Run: bench/.venv/bin/python tests/golden/hospital/make_hospital.py
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyfixest as pf

here = Path(__file__).parent
rng = np.random.default_rng(7)
n, H = 4000, 40
hosp_effect = rng.normal(0, 0.6, H)
c_pref = rng.uniform(0, 1, H) ** 3
c = (rng.uniform(size=n) < 0.25).astype(int)
p = np.where(c[:, None] == 1, c_pref + 0.02, 1 - c_pref + 0.02)
p = p / p.sum(1, keepdims=True)
hospital = np.array([rng.choice(H, p=row) for row in p])
surgeon = (hospital * 3 + rng.integers(0, 5, n)) % 60
x1 = rng.normal(0, 1, n) + 0.4 * c
x2 = (rng.uniform(size=n) < 0.3 + 0.2 * c).astype(float)
eta = -1.2 + 0.3 * c + 0.5 * x1 - 0.4 * x2 + hosp_effect[hospital]
yb = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(float)
y = 2.0 + 0.8 * c + 1.0 * x1 - 0.5 * x2 + 2 * hosp_effect[hospital] + rng.normal(0, 1, n)
d = pd.DataFrame({"y": y, "yb": yb, "c": c, "x1": x1, "x2": x2,
                  "hospital": hospital, "surgeon": surgeon})
d.to_csv(here / "hospital.csv", index=False, float_format="%.17g")

out = {"pyfixest": pf.__version__}
for outcome in ["y", "yb"]:
    res = {}
    for name, rhs in [("without_fe", "c + x1 + x2"), ("with_fe", "c + x1 + x2 | hospital"),
                      ("two_way", "c + x1 + x2 | hospital + surgeon")]:
        # Tight tolerances: the golden values are the exact estimator
        # (pyfixest's defaults are fixef_tol=1e-6, iwls_tol=1e-8).
        fit = pf.feols(f"{outcome} ~ {rhs}", data=d, vcov={"CRV1": "hospital"},
                       demeaner=pf.MapDemeaner(fixef_tol=1e-13))
        res[f"lpm_{name}"] = {"coef": float(fit.coef()["c"]), "se": float(fit.se()["c"])}
        if outcome == "yb" and name != "two_way":
            g = pf.feglm(f"{outcome} ~ {rhs}", data=d, family="logit", vcov={"CRV1": "hospital"},
                         iwls_tol=1e-13, iwls_maxiter=100,
                         demeaner=pf.MapDemeaner(fixef_tol=1e-13))
            res[f"logit_{name}"] = {"coef": float(g.coef()["c"]), "se": float(g.se()["c"])}
    out[outcome] = res
(here / "expected.json").write_text(json.dumps(out, indent=1))
print(json.dumps(out, indent=1))

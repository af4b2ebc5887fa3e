"""Golden values for the Gelbach decomposition: pyfixest's `decompose()`.

Generates gelbach.csv (seeded) and writes expected.json with pyfixest's
point estimates for
  - `plain`: y ~ d + x1 + x21 + x22 + x23, base = d + x1,
    blocks g1 = {x21, x22}, g2 = {x23};
  - `fe`: the same with fixed effects for f (25 levels), blocks g1, g2 and
    the fixed effects as one block.
Run: bench/.venv/bin/python tests/golden/gelbach/make_gelbach.py
(pyfixest 0.60, numpy, pandas).
"""
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyfixest as pf

here = Path(__file__).parent
rng = np.random.default_rng(20261126)
n = 3000
f = rng.integers(0, 25, n)
f_effect = rng.normal(0, 1, 25)
d = (rng.uniform(size=n) < 0.2 + 0.4 * (f < 8)).astype(float)
x1 = rng.normal(0, 1, n) + 0.3 * d
x21 = rng.normal(0, 1, n) + 0.5 * d + 0.2 * f_effect[f]
x22 = (rng.uniform(size=n) < 0.3 + 0.2 * d).astype(float)
x23 = rng.normal(0, 1, n) - 0.4 * d + 0.3 * x1
y = (0.5 * d + 0.4 * x1 + 0.7 * x21 - 0.5 * x22 + 0.3 * x23 + f_effect[f]
     + rng.normal(0, 1, n))
data = pd.DataFrame({"y": y, "d": d, "x1": x1, "x21": x21, "x22": x22, "x23": x23, "f": f})
data.to_csv(here / "gelbach.csv", index=False, float_format="%.17g")

out = {"pyfixest": pf.__version__}
for name, formula in [("plain", "y ~ d + x1 + x21 + x22 + x23"),
                      ("fe", "y ~ d + x1 + x21 + x22 + x23 | f")]:
    fit = pf.feols(formula, data=data)
    groups = {"g1": ["x21", "x22"], "g2": ["x23"]}
    if name == "fe":
        groups["fe"] = re.compile(r"^f\b|C\(f\)|^f\[|^f_")
    gb = fit.decompose(decomp_var="d", x1_vars=["x1"], combine_covariates=groups,
                       only_coef=True, seed=1)
    tidy = gb.tidy()
    levels = tidy[tidy["panels"] == "Levels (units)"]["coefficients"]
    print(name, levels.to_dict())
    out[name] = {str(k): float(v) for k, v in levels.items()}
    # Ungrouped (per term) for the plain model.
    if name == "plain":
        gb = fit.decompose(decomp_var="d", x1_vars=["x1"], only_coef=True, seed=1)
        t = gb.tidy()
        levels = t[t["panels"] == "Levels (units)"]["coefficients"]
        print("plain_terms", levels.to_dict())
        out["plain_terms"] = {str(k): float(v) for k, v in levels.items()}
(here / "expected.json").write_text(json.dumps(out, indent=1, default=float))

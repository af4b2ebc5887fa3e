//! Shrunken level effects from the cells (`hospital_effects = "random"` of
//! the linear Oaxaca–Blinder decomposition): in place of the absorbed fixed
//! effects α_l, a linear mixed model with a random intercept per level,
//!
//! y = x b + γ·s_l + u_l + ε, u_l ~ N(0, σ_u²), ε ~ N(0, σ²/w),
//!
//! fitted by maximum likelihood from the cells' per-level sums
//! ([`healthgap_models::lmm`]), and the level effect α_l = b_0 + γ·s_l + û_l.
//! s_l is the comparison group's share of the level's weight (a Mundlak
//! (1978) term): without it the shrinkage of û_l toward 0 would also shrink
//! the part of the hospital effect that goes with the hospital's patient mix,
//! which is the sorting the decomposition measures. A level without rows of
//! the model's groups gets û_l = 0 (its prior mean) and so a finite effect,
//! where a fixed effect is not identified.
//!
//! **Resampling.** A level whose cells lie in one cluster enters as m copies
//! when its cluster has multiplicity m (a hospital drawn twice is two
//! hospitals), and a fractional m weights its marginal likelihood (the cluster
//! delta method); a level spanning clusters has its cells' moments scaled by
//! their clusters' multiplicities instead.

use healthgap_models::lmm::{LevelSums, RandomIntercept, fit_random_intercept};

use healthgap_models::{CoefficientRow, ModelError, ModelSummary};

use crate::cells::{CellFit, Cells, FitSpec, INDICATOR};

/// A random-intercept fit in the fixed-effects layout of [`CellFit`] (the
/// intercept and share coefficients folded into the level effects), and the
/// mixed model itself.
#[derive(Debug, Clone)]
pub struct RandomFit {
    /// Coefficients without the intercept and the share term, `alpha` the
    /// level effects b_0 + γ·s_l + û_l (NaN for a level without any rows).
    pub cell: CellFit,
    /// The mixed model over every column (indicator, intercept, covariates,
    /// share).
    pub model: RandomIntercept,
    /// Names of the mixed model's columns.
    pub names: Vec<String>,
}

impl Cells {
    /// For each level, the one cluster holding all its cells, or None when it
    /// spans several.
    pub fn level_homes(&self) -> Vec<Option<u32>> {
        let mut home: Vec<Option<Option<u32>>> = vec![None; self.levels];
        for (c, &l) in self.level.iter().enumerate() {
            let h = &mut home[l as usize];
            *h = match *h {
                None => Some(Some(self.cluster[c])),
                Some(Some(k)) if k == self.cluster[c] => Some(Some(k)),
                _ => Some(None),
            };
        }
        home.into_iter().map(Option::flatten).collect()
    }

    /// The comparison group's share of each level's weight (NaN for a level
    /// without weight), with cluster multiplicities.
    pub fn comparison_share(&self, mult: Option<&[f64]>) -> Vec<f64> {
        let mut w = vec![[0.0; 2]; self.levels];
        for (c, m) in self.moments.iter().enumerate() {
            let k = mult.map_or(1.0, |m| m[self.cluster[c] as usize]);
            w[self.level[c] as usize][usize::from(self.group[c])] += k * m.w;
        }
        w.iter().map(|[r, c]| c / (r + c)).collect()
    }

    /// The random-intercept model over the cells selected by `spec` (its
    /// columns must include the intercept, column 0), with the comparison
    /// share named `share_name`; `start` warm-starts log λ.
    pub fn fit_random(
        &self,
        spec: &FitSpec,
        mult: Option<&[f64]>,
        share_name: &str,
        start: Option<f64>,
    ) -> Result<RandomFit, ModelError> {
        let cols = spec.columns.clone();
        debug_assert_eq!(cols.first(), Some(&0));
        let homes = self.level_homes();
        let m = |c: usize| mult.map_or(1.0, |m| m[c]);
        let (acc, _) =
            self.accumulate(spec, &cols, true, |c| match homes[self.level[c] as usize] {
                Some(_) => 1.0,
                None => m(self.cluster[c] as usize),
            });
        let copies: Vec<f64> = homes
            .iter()
            .map(|h| h.map_or(1.0, |c| m(c as usize)))
            .collect();
        let d = usize::from(spec.indicator);
        let k = d + cols.len();
        let share = self.comparison_share(mult);
        let data = with_level_column(&acc, k, &share);
        let mut names: Vec<String> = Vec::with_capacity(k + 1);
        if spec.indicator {
            names.push(INDICATOR.to_string());
        }
        names.extend(cols.iter().map(|&j| self.names[j].clone()));
        names.push(share_name.to_string());
        let sums = LevelSums {
            k: k + 1,
            data: &data,
            copies: &copies,
        };
        let model = fit_random_intercept(&sums, &names, start)?;
        let (b0, gamma) = (model.coef[d], model.coef[k]);
        let alpha = (0..self.levels)
            .map(|l| b0 + gamma * share[l] + model.modes[l])
            .collect();
        let mut coef = model.coef[..d].to_vec();
        coef.extend(&model.coef[d + 1..k]);
        let n = self
            .moments
            .iter()
            .enumerate()
            .filter(|(c, _)| spec.groups[usize::from(self.group[*c])])
            .map(|(c, _)| m(self.cluster[c] as usize) * self.rows[c] as f64)
            .sum();
        let cell = CellFit {
            names: names[..d].iter().chain(&names[d + 1..k]).cloned().collect(),
            coef,
            bread: Vec::new(),
            alpha,
            w: model.n,
            rss: model.sigma * model.sigma * model.n,
            n,
        };
        Ok(RandomFit { cell, model, names })
    }
}

/// Level sums of k columns extended by a column constant within each level
/// (value v_l): Σw·v = v_l Σw, Σw·v·x = v_l Σwx, Σw·v² = v_l² Σw,
/// Σw·v·y = v_l Σwy. A level with a non-finite v_l has no weight.
fn with_level_column(acc: &[f64], k: usize, v: &[f64]) -> Vec<f64> {
    let (s, k2) = (LevelSums::stride(k), k + 1);
    let s2 = LevelSums::stride(k2);
    let levels = acc.len() / s;
    let mut out = vec![0.0; levels * s2];
    for l in 0..levels {
        let a = &acc[l * s..(l + 1) * s];
        let o = &mut out[l * s2..(l + 1) * s2];
        if !(a[0] > 0.0 && v[l].is_finite()) {
            continue;
        }
        let x = |i: usize| if i < k { a[1 + i] } else { v[l] * a[0] };
        let xx = |i: usize, j: usize| match (i < k, j < k) {
            (true, true) => a[1 + k + i * k + j],
            (true, false) => v[l] * a[1 + i],
            (false, true) => v[l] * a[1 + j],
            (false, false) => v[l] * v[l] * a[0],
        };
        let xy = |i: usize| {
            if i < k {
                a[1 + k + k * k + i]
            } else {
                v[l] * a[1 + 2 * k + k * k]
            }
        };
        o[0] = a[0];
        for i in 0..k2 {
            o[1 + i] = x(i);
            o[1 + k2 + k2 * k2 + i] = xy(i);
            for j in 0..k2 {
                o[1 + k2 + i * k2 + j] = xx(i, j);
            }
        }
        o[1 + 2 * k2 + k2 * k2] = a[1 + 2 * k + k * k];
        o[2 + 2 * k2 + k2 * k2] = a[2 + 2 * k + k * k];
    }
    out
}

impl RandomFit {
    /// The model's summary: fixed effects with the model-based variance
    /// σ̂²A⁻¹ at the estimated λ (lmer's `vcov`), Wald intervals with the
    /// normal quantile, σ_u and σ in the label.
    pub fn summary(&self, label: &str, variable: &str, level: f64) -> ModelSummary {
        use statrs::distribution::{ContinuousCDF, Normal};
        let z = Normal::standard().inverse_cdf(1.0 - (1.0 - level) / 2.0);
        let k = self.names.len();
        let s2 = self.model.sigma * self.model.sigma;
        let coefficients = self
            .names
            .iter()
            .enumerate()
            .map(|(j, name)| {
                let (b, se) = (
                    self.model.coef[j],
                    (s2 * self.model.bread[j * k + j]).sqrt(),
                );
                CoefficientRow {
                    term: name.clone(),
                    estimate: b,
                    se,
                    p_value: 2.0 * Normal::standard().sf((b / se).abs()),
                    ci_low: b - z * se,
                    ci_high: b + z * se,
                }
            })
            .collect();
        let levels = self.model.levels.round() as usize;
        ModelSummary {
            label: format!(
                "{label}, random intercept by {variable} (σ_u = {:.4}, σ = {:.4}{})",
                self.model.sigma_u,
                self.model.sigma,
                if self.model.boundary() {
                    ", boundary fit"
                } else {
                    ""
                }
            ),
            family: "linear".into(),
            n: Some(self.cell.n.round() as usize),
            clusters: None,
            vcov: "model-based (ML, σ_u fixed at its estimate)".into(),
            converged: true,
            iterations: 1,
            absorbed: vec![format!("{variable} (random intercept, {levels} levels)")],
            coefficients,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::covariates::{Absorbed, Column, Covariates};
    use healthgap_models::{Design, Glmm, GlmmFamily, Grouping};

    /// 1,800 rows in 30 levels (= clusters) whose comparison share and effect
    /// differ; frequency weights 1–2; a few rows of neither group (code 2).
    /// y, group, x, level, weight.
    type Data = (Vec<f64>, Vec<u32>, Vec<f64>, Vec<u32>, Vec<f64>);

    fn data() -> Data {
        let (mut y, mut g, mut x, mut h, mut w) = (vec![], vec![], vec![], vec![], vec![]);
        for i in 0..1_800usize {
            let l = (i * 7 + i / 90) % 30;
            let share = 0.1 + 0.6 * (l as f64 / 29.0);
            let grp = u32::from(((i * 37) % 100) as f64 / 100.0 < share);
            let xv = ((i * 53) % 29) as f64 / 7.0;
            let u = 0.8 * (((l * 17) % 13) as f64 / 6.0 - 1.0);
            let e = ((i * 91) % 23) as f64 / 5.0 - 2.2;
            y.push(2.0 + 0.4 * xv + 0.5 * f64::from(grp) + u + share + e);
            g.push(if i % 97 == 0 { 2 } else { grp });
            x.push(xv);
            h.push(l as u32);
            w.push(1.0 + (i % 2) as f64);
        }
        (y, g, x, h, w)
    }

    fn covariates(x: &[f64], h: &[u32]) -> Covariates {
        Covariates {
            columns: vec![Column {
                name: "x".into(),
                factor: "a".into(),
                values: x.to_vec(),
            }],
            categoricals: vec![],
            absorbed: Some(Absorbed {
                variable: "h".into(),
                factor: "c".into(),
                codes: h.to_vec(),
                levels: 30,
                labels: (0..30).map(|l| l.to_string()).collect(),
            }),
        }
    }

    fn spec(groups: [bool; 2]) -> FitSpec {
        FitSpec {
            groups,
            indicator: false,
            absorb: false,
            columns: vec![0, 1],
        }
    }

    #[test]
    fn the_cell_fit_is_the_row_mixed_model_with_the_share_term() {
        let (y, g, x, h, w) = data();
        let cells = Cells::build(&y, &g, &covariates(&x, &h), Some(&w), Some((&h, 30)));
        let fit = cells
            .fit_random(&spec([true, false]), None, "share", None)
            .expect("cells");
        // The same model on the reference group's rows.
        let share = cells.comparison_share(None);
        let keep: Vec<usize> = (0..y.len()).filter(|&i| g[i] == 0).collect();
        let pick = |f: &dyn Fn(usize) -> f64| keep.iter().map(|&i| f(i)).collect::<Vec<f64>>();
        let design = Design::from_columns(
            "y",
            pick(&|i| y[i]),
            vec![
                ("(intercept)".into(), pick(&|_| 1.0)),
                ("x".into(), pick(&|i| x[i])),
                ("share".into(), pick(&|i| share[h[i] as usize])),
            ],
        )
        .expect("design")
        .with_weights(pick(&|i| w[i]));
        let codes: Vec<u32> = keep.iter().map(|&i| h[i]).collect();
        let grouping = Grouping {
            name: "h",
            codes: &codes,
            levels: 30,
        };
        let rows = Glmm::new(GlmmFamily::Identity)
            .fit(&design, grouping, None, None)
            .expect("glmm");
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs().max(1e-6);
        assert!(rel(fit.model.deviance, rows.deviance) < 1e-7);
        assert!(rel(fit.model.sigma_u, rows.intercept_sd) < 1e-3);
        for j in 0..3 {
            assert!(rel(fit.model.coef[j], rows.coef[j]) < 1e-4, "β{j}");
        }
        for l in 0..30 {
            let alpha = rows.coef[0] + rows.coef[2] * share[l] + rows.modes[l][0];
            assert!(
                (fit.cell.alpha[l] - alpha).abs() < 1e-3,
                "level {l}: {} vs {alpha} (mode {} vs {})",
                fit.cell.alpha[l],
                fit.model.modes[l],
                rows.modes[l][0]
            );
        }
        // With the intercept's GLS equation, the fitted mean is the group mean.
        let m = cells.means(0, None);
        let fitted = m.x[1] * fit.cell.coef[0]
            + m.share
                .iter()
                .zip(&fit.cell.alpha)
                .map(|(s, a)| s * a)
                .sum::<f64>();
        assert!((fitted - m.y).abs() < 1e-10, "{fitted} vs {}", m.y);
    }

    #[test]
    fn a_level_without_the_groups_rows_gets_its_prior_mean() {
        let (y, mut g, x, h, w) = data();
        // Level 4 loses its reference rows.
        for i in 0..y.len() {
            if h[i] == 4 && g[i] == 0 {
                g[i] = 2;
            }
        }
        let cells = Cells::build(&y, &g, &covariates(&x, &h), Some(&w), Some((&h, 30)));
        let fit = cells
            .fit_random(&spec([true, false]), None, "share", None)
            .expect("fit");
        let share = cells.comparison_share(None);
        assert_eq!(share[4], 1.0);
        let b = &fit.model.coef;
        assert!((fit.cell.alpha[4] - (b[0] + b[2])).abs() < 1e-12);
        assert_eq!(fit.model.modes[4], 0.0);
        // A replicate without level 9's cluster: no effect for it at all.
        let mut mult = vec![1.0; 30];
        mult[9] = 0.0;
        mult[3] = 2.0;
        let rep = cells
            .fit_random(
                &spec([true, false]),
                Some(&mult),
                "share",
                fit.model.log_lambda,
            )
            .expect("replicate");
        assert!(rep.cell.alpha[9].is_nan());
        assert_eq!(rep.model.levels, 29.0);
    }
}

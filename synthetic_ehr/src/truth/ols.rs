//! The moment-based truths: Kitagawa, the LPM group coefficient and linear
//! Oaxaca-Blinder, from weighted moments per (group, hospital) cell and weighted
//! least squares on them.

use super::{BIOLOGICAL_COLUMNS, K, P};

/// Weighted moments of one (group, hospital) cell: Σw, Σwz, Σwzzᵀ, Σwzy.
#[derive(Debug, Clone)]
pub(super) struct Moments {
    pub(super) zz: Vec<f64>,
    pub(super) zy: Vec<f64>,
}

impl Moments {
    fn new() -> Self {
        Moments {
            zz: vec![0.0; P * P],
            zy: vec![0.0; P * K],
        }
    }
    pub(super) fn add(&mut self, z: &[f64; P], y: &[f64; K]) {
        for i in 0..P {
            let zi = z[i];
            if zi == 0.0 {
                continue;
            }
            let row = &mut self.zz[i * P..(i + 1) * P];
            for j in 0..P {
                row[j] += zi * z[j];
            }
            for k in 0..K {
                self.zy[i * K + k] += zi * y[k];
            }
        }
    }
    fn add_scaled(&mut self, other: &Moments, scale: f64) {
        for (a, b) in self.zz.iter_mut().zip(&other.zz) {
            *a += scale * b;
        }
        for (a, b) in self.zy.iter_mut().zip(&other.zy) {
            *a += scale * b;
        }
    }
    pub(super) fn weight(&self) -> f64 {
        self.zz[0]
    }
}

/// Moments per group (0 = reference, 1 = comparison) and hospital.
#[derive(Debug, Clone)]
pub(super) struct Cells {
    cells: Vec<Moments>,
    pub(super) hospitals: usize,
}

impl Cells {
    pub(super) fn new(hospitals: usize) -> Self {
        Cells {
            cells: vec![Moments::new(); 2 * hospitals],
            hospitals,
        }
    }
    pub(super) fn at(&mut self, group: usize, h: usize) -> &mut Moments {
        &mut self.cells[group * self.hospitals + h]
    }
    pub(super) fn get(&self, group: usize, h: usize) -> &Moments {
        &self.cells[group * self.hospitals + h]
    }
    pub(super) fn add_scaled(&mut self, other: &Cells, scale: f64) {
        for (a, b) in self.cells.iter_mut().zip(&other.cells) {
            a.add_scaled(b, scale);
        }
    }
    /// Cells with group-specific weights (population shares).
    pub(super) fn weighted(&self, weights: [f64; 2]) -> Cells {
        let mut out = Cells::new(self.hospitals);
        for g in 0..2 {
            for h in 0..self.hospitals {
                out.at(g, h).add_scaled(self.get(g, h), weights[g]);
            }
        }
        out
    }
}

/// Augmented column index: 0 = constant, 1 = group indicator, 2.. = covariates.
fn aug(group: usize, m: &Moments, a: usize, b: usize) -> f64 {
    let g = group as f64;
    let zi = |i: usize| -> Option<usize> {
        match i {
            0 => Some(0),
            1 => None,
            _ => Some(i - 1),
        }
    };
    let factor = usize::from(a == 1) + usize::from(b == 1);
    let scale = if factor > 0 { g } else { 1.0 };
    let (ia, ib) = (zi(a).unwrap_or(0), zi(b).unwrap_or(0));
    scale * m.zz[ia * P + ib]
}

fn aug_y(group: usize, m: &Moments, a: usize, k: usize) -> f64 {
    let g = group as f64;
    match a {
        1 => g * m.zy[k],
        0 => m.zy[k],
        _ => m.zy[(a - 1) * K + k],
    }
}

/// Result of a weighted least-squares fit on cell moments.
struct Fit {
    /// Coefficients per outcome, in the order of `cols`.
    coef: Vec<[f64; K]>,
}

/// Weighted least squares of the K outcomes on the augmented columns `cols`,
/// over the cells of `groups`, optionally absorbing hospital fixed effects by the
/// within transformation: XᵀX = Σ_h (A_h − s_h s_hᵀ / W_h).
fn wls(cells: &Cells, groups: &[usize], cols: &[usize], fe: bool) -> Option<Fit> {
    let q = cols.len();
    let mut xtx = vec![0.0; q * q];
    let mut xty = vec![0.0; q * K];
    for h in 0..cells.hospitals {
        let mut a = vec![0.0; q * q];
        let mut ay = vec![0.0; q * K];
        let mut s = vec![0.0; q];
        let mut sy = [0.0; K];
        let mut w = 0.0;
        for &g in groups {
            let m = cells.get(g, h);
            if m.weight() == 0.0 {
                continue;
            }
            w += m.weight();
            for (i, &ci) in cols.iter().enumerate() {
                s[i] += aug(g, m, 0, ci);
                for (j, &cj) in cols.iter().enumerate() {
                    a[i * q + j] += aug(g, m, ci, cj);
                }
                for k in 0..K {
                    ay[i * K + k] += aug_y(g, m, ci, k);
                }
            }
            for (k, slot) in sy.iter_mut().enumerate() {
                *slot += m.zy[k];
            }
        }
        if w == 0.0 {
            continue;
        }
        for i in 0..q {
            for j in 0..q {
                xtx[i * q + j] += a[i * q + j] - if fe { s[i] * s[j] / w } else { 0.0 };
            }
            for k in 0..K {
                xty[i * K + k] += ay[i * K + k] - if fe { s[i] * sy[k] / w } else { 0.0 };
            }
        }
    }
    let beta = cholesky_solve(&xtx, &xty, q, K)?;
    Some(Fit {
        coef: (0..q)
            .map(|i| std::array::from_fn(|k| beta[i * K + k]))
            .collect(),
    })
}

/// Solves A X = B for symmetric positive definite A (q × q) and B (q × r).
fn cholesky_solve(a: &[f64], b: &[f64], q: usize, r: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; q * q];
    for i in 0..q {
        for j in 0..=i {
            let mut sum = a[i * q + j];
            for k in 0..j {
                sum -= l[i * q + k] * l[j * q + k];
            }
            if i == j {
                if sum.is_nan() || sum <= 1e-12 * a[i * q + i].abs().max(1e-300) {
                    return None;
                }
                l[i * q + i] = sum.sqrt();
            } else {
                l[i * q + j] = sum / l[j * q + j];
            }
        }
    }
    let mut x = b.to_vec();
    for c in 0..r {
        for i in 0..q {
            let mut sum = x[i * r + c];
            for k in 0..i {
                sum -= l[i * q + k] * x[k * r + c];
            }
            x[i * r + c] = sum / l[i * q + i];
        }
        for i in (0..q).rev() {
            let mut sum = x[i * r + c];
            for k in i + 1..q {
                sum -= l[k * q + i] * x[k * r + c];
            }
            x[i * r + c] = sum / l[i * q + i];
        }
    }
    Some(x)
}

/// Moment-based quantities of one set of cells (weights already applied).
/// Returns (quantity, component, value per outcome).
pub(super) fn moment_quantities(cells: &Cells) -> Vec<(&'static str, String, [f64; K])> {
    let mut out = Vec::new();
    let nh = cells.hospitals;
    let total = |g: usize| -> f64 { (0..nh).map(|h| cells.get(g, h).weight()).sum() };
    let (wr, wc) = (total(0), total(1));
    if wr <= 0.0 || wc <= 0.0 {
        return out;
    }
    let mean_y = |g: usize, wtot: f64| -> [f64; K] {
        std::array::from_fn(|k| (0..nh).map(|h| cells.get(g, h).zy[k]).sum::<f64>() / wtot)
    };
    let (yr, yc) = (mean_y(0, wr), mean_y(1, wc));
    let gap: [f64; K] = std::array::from_fn(|k| yc[k] - yr[k]);
    // Kitagawa.
    let mut between = [0.0; K];
    let mut within = [0.0; K];
    for h in 0..nh {
        let (mr, mc) = (cells.get(0, h), cells.get(1, h));
        let (sr, sc) = (mr.weight() / wr, mc.weight() / wc);
        for k in 0..K {
            let mu_c = if mc.weight() > 0.0 {
                mc.zy[k] / mc.weight()
            } else {
                0.0
            };
            let mu_r = if mr.weight() > 0.0 {
                mr.zy[k] / mr.weight()
            } else {
                mu_c
            };
            between[k] += (sc - sr) * mu_r;
            within[k] += sc * (mu_c - mu_r);
        }
    }
    out.push(("kitagawa", "between_hospital".to_string(), between));
    out.push(("kitagawa", "within_hospital".to_string(), within));
    // LPM group coefficient.
    let x: Vec<usize> = (2..P + 1).collect();
    let with =
        |head: &[usize]| -> Vec<usize> { head.iter().copied().chain(x.iter().copied()).collect() };
    for (name, cols, fe) in [
        ("crude", vec![0, 1], false),
        ("hospital_fe", vec![1], true),
        ("covariates", with(&[0, 1]), false),
        ("covariates_hospital_fe", with(&[1]), true),
    ] {
        let pos = cols.iter().position(|&c| c == 1).unwrap_or(0);
        if let Some(fit) = wls(cells, &[0, 1], &cols, fe) {
            out.push(("lpm_group_coefficient", name.to_string(), fit.coef[pos]));
        }
    }
    // Oaxaca-Blinder with hospital FE absorbed.
    let xbar = |g: usize, wtot: f64| -> Vec<f64> {
        x.iter()
            .map(|&c| (0..nh).map(|h| aug(g, cells.get(g, h), 0, c)).sum::<f64>() / wtot)
            .collect()
    };
    let (xr, xc) = (xbar(0, wr), xbar(1, wc));
    let pooled = wls(cells, &[0, 1], &with(&[1]), true);
    let reference = wls(cells, &[0], &x, true);
    // Hospital intercepts α_h = (Σwy − Σ_j s_j b_j − τ Σ w g)/W over the cells used.
    let alpha =
        |groups: &[usize], b: &[[f64; K]], tau: Option<[f64; K]>, h: usize| -> Option<[f64; K]> {
            let mut w = 0.0;
            let mut val = [0.0; K];
            for &g in groups {
                let m = cells.get(g, h);
                w += m.weight();
                for k in 0..K {
                    val[k] += m.zy[k];
                    for (j, &c) in x.iter().enumerate() {
                        val[k] -= aug(g, m, 0, c) * b[j][k];
                    }
                    if let Some(t) = tau {
                        val[k] -= g as f64 * m.weight() * t[k];
                    }
                }
            }
            (w > 0.0).then(|| std::array::from_fn(|k| val[k] / w))
        };
    if let (Some(pooled), Some(reference)) = (pooled, reference) {
        let pooled_tau = pooled.coef[0];
        let b_pooled: Vec<[f64; K]> = pooled.coef[1..].to_vec();
        for (label, b, groups, tau) in [
            (
                "oaxaca_blinder_reference",
                reference.coef.clone(),
                vec![0usize],
                None,
            ),
            (
                "oaxaca_blinder_pooled",
                b_pooled.clone(),
                vec![0, 1],
                Some(pooled_tau),
            ),
        ] {
            let mut bio = [0.0; K];
            let mut ses = [0.0; K];
            for (j, b_j) in b.iter().enumerate() {
                for k in 0..K {
                    let v = (xc[j] - xr[j]) * b_j[k];
                    if j < BIOLOGICAL_COLUMNS {
                        bio[k] += v;
                    } else {
                        ses[k] += v;
                    }
                }
            }
            let mut care = [0.0; K];
            for h in 0..nh {
                let sr = cells.get(0, h).weight() / wr;
                let sc = cells.get(1, h).weight() / wc;
                if sr == 0.0 && sc == 0.0 {
                    continue;
                }
                let a = alpha(&groups, &b, tau, h)
                    .or_else(|| alpha(&[0, 1], &b_pooled, Some(pooled_tau), h))
                    .unwrap_or([0.0; K]);
                for k in 0..K {
                    care[k] += (sc - sr) * a[k];
                }
            }
            let explained: [f64; K] = std::array::from_fn(|k| bio[k] + ses[k] + care[k]);
            out.push((label, "explained".to_string(), explained));
            out.push((
                label,
                "unexplained".to_string(),
                std::array::from_fn(|k| gap[k] - explained[k]),
            ));
            out.push((label, "explained:biological".to_string(), bio));
            out.push((label, "explained:socioeconomic".to_string(), ses));
            out.push((label, "explained:care_site".to_string(), care));
        }
    }
    out
}

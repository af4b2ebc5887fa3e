//! Multiple imputation by chained equations (van Buuren & Groothuis-Oudshoorn
//! 2011, J Stat Softw 45(3); van Buuren 2018, §4.5): each imputation l starts
//! from random draws of the observed values and, for `iterations` rounds,
//! visits the incomplete variables in order (the visit sequence, `Input::visit`), fitting each one's model on the
//! rows where it is observed (its predictors at their current values) and
//! replacing its missing cells by draws (crate::draw). With strata, every
//! stratum (group) has its own models.
//!
//! Imputation l draws from its own ChaCha8 stream (seed, l), and the
//! imputations run in parallel: results are identical for any thread count.
//! Only the missing cells × m are kept ([`Imputed`]).

use std::collections::BTreeSet;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

use crate::draw::{self, Failed, Fit, Response};
use crate::frame::{Block, Input, Layout, MISSING, Method, Settings, Values, dummies};

/// Why the imputation cannot run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImputeError {
    /// Fewer than two imputations.
    #[error(
        "[imputation] m = {0}: multiple imputation needs m ≥ 2 (the between-imputation variance, \
         and with it the pooled standard errors, needs at least two imputations; 20 is the default)"
    )]
    TooFewImputations(usize),
    /// No iterations.
    #[error("[imputation] iterations must be at least 1")]
    NoIterations,
    /// A variable with no observed value in a stratum.
    #[error(
        "`{variable}` is missing for every patient in group `{stratum}`: there is nothing to impute \
         it from; leave it out of the analysis, or set [imputation] by_group = false"
    )]
    AllMissing {
        /// Variable.
        variable: String,
        /// Stratum (group).
        stratum: String,
    },
    /// A model that does not fit the variable's type.
    #[error("[imputation.method] {variable} = \"{method}\": {reason}")]
    WrongMethod {
        /// Variable.
        variable: String,
        /// Method asked for.
        method: &'static str,
        /// Why not.
        reason: &'static str,
    },
    /// A model that failed with no fallback.
    #[error("the imputation model of `{variable}` in group `{stratum}` failed: {reason}")]
    Model {
        /// Variable.
        variable: String,
        /// Stratum.
        stratum: String,
        /// Reason.
        reason: String,
    },
}

/// One imputed variable: its missing rows and their m imputed values.
#[derive(Debug, Clone, Serialize)]
pub struct Imputed {
    /// Index of the variable in the input.
    pub variable: usize,
    /// Name.
    pub name: String,
    /// The model used (`auto` resolved).
    pub method: Method,
    /// Levels of a categorical variable (None for numbers).
    pub levels: Option<usize>,
    /// Missing rows, ascending.
    pub rows: Vec<u32>,
    /// Imputed values, imputation-major: `values[l * rows.len() + k]` is row
    /// `rows[k]` in imputation l (level codes as numbers for categoricals).
    pub values: Vec<f64>,
    /// The mean of the imputed values (for a categorical: the share not at
    /// the reference level) after each iteration, per imputation.
    pub trace: Vec<Vec<f64>>,
}

impl Imputed {
    /// The imputed values of imputation `l`.
    pub fn imputation(&self, l: usize) -> &[f64] {
        let k = self.rows.len();
        &self.values[l * k..(l + 1) * k]
    }
}

/// The imputations.
#[derive(Debug, Clone, Serialize)]
pub struct Imputations {
    /// Imputations.
    pub m: usize,
    /// Iterations of each.
    pub iterations: usize,
    /// The imputed variables.
    pub imputed: Vec<Imputed>,
    /// Fallbacks taken (a logistic or multinomial model that separated),
    /// each naming the variable, the group and what was used instead.
    pub warnings: Vec<String>,
}

/// One target of the chained equations.
struct Target {
    /// Position among the targets.
    index: usize,
    variable: usize,
    method: Method,
    /// Columns in the moving block.
    start: usize,
    width: usize,
    /// Per stratum: positions (within the stratum) of the missing rows.
    missing: Vec<Vec<usize>>,
    /// Per stratum: positions (within the stratum) of the observed rows.
    observed: Vec<Vec<usize>>,
}

/// The resolved model of a variable, or why the asked one does not fit it.
fn resolve(name: &str, values: &Values, asked: Method) -> Result<Method, ImputeError> {
    let binary = values.is_binary();
    let categorical = matches!(values, Values::Categorical { .. });
    let wrong = |reason| ImputeError::WrongMethod {
        variable: name.to_string(),
        method: asked.as_str(),
        reason,
    };
    match asked {
        Method::Auto if categorical => Ok(Method::Multinomial),
        Method::Auto if binary => Ok(Method::Logistic),
        Method::Auto => Ok(Method::Pmm),
        Method::Pmm | Method::Norm if categorical => Err(wrong(
            "a categorical variable is imputed with `multinomial`",
        )),
        Method::Logistic if !binary => Err(wrong("`logistic` imputes 0/1 variables only")),
        Method::Multinomial if !categorical => {
            Err(wrong("`multinomial` imputes categorical variables only"))
        }
        m => Ok(m),
    }
}

/// Imputes every incomplete variable marked for imputation, m times.
pub fn impute(input: &Input, settings: &Settings) -> Result<Imputations, ImputeError> {
    if settings.m < 2 {
        return Err(ImputeError::TooFewImputations(settings.m));
    }
    if settings.iterations == 0 {
        return Err(ImputeError::NoIterations);
    }
    let layout = Layout::new(input);
    let targets = targets(input, &layout)?;
    let runs: Vec<Result<Run, ImputeError>> = (0..settings.m)
        .into_par_iter()
        .map(|l| run_one(input, &layout, &targets, settings, l))
        .collect();
    let runs: Vec<Run> = runs.into_iter().collect::<Result<_, _>>()?;
    let mut warnings = BTreeSet::new();
    for r in &runs {
        warnings.extend(r.fallbacks.iter().cloned());
    }
    let imputed = targets
        .iter()
        .enumerate()
        .map(|(t, target)| {
            let v = &input.variables[target.variable];
            let mut rows: Vec<u32> = Vec::new();
            for (s, stratum) in layout.strata.iter().enumerate() {
                rows.extend(target.missing[s].iter().map(|&r| stratum.rows[r]));
            }
            let mut order: Vec<usize> = (0..rows.len()).collect();
            order.sort_by_key(|&k| rows[k]);
            let values = runs
                .iter()
                .flat_map(|r| order.iter().map(move |&k| r.values[t][k]))
                .collect();
            rows.sort_unstable();
            Imputed {
                variable: target.variable,
                name: v.name.clone(),
                method: target.method,
                levels: match v.values {
                    Values::Categorical { levels, .. } => Some(levels),
                    Values::Numeric(_) => None,
                },
                rows,
                values,
                trace: runs.iter().map(|r| r.trace[t].clone()).collect(),
            }
        })
        .collect();
    Ok(Imputations {
        m: settings.m,
        iterations: settings.iterations,
        imputed,
        warnings: warnings.into_iter().collect(),
    })
}

/// The incomplete variables to impute, in visit order, with their rows.
fn targets(input: &Input, layout: &Layout) -> Result<Vec<Target>, ImputeError> {
    let mut out = Vec::new();
    for (v, (var, block)) in input.variables.iter().zip(&layout.blocks).enumerate() {
        let (Block::Moving(start, width), Some(asked)) = (*block, var.impute) else {
            continue;
        };
        let method = resolve(&var.name, &var.values, asked)?;
        let mut missing = Vec::new();
        let mut observed = Vec::new();
        for (s, stratum) in layout.strata.iter().enumerate() {
            let (mis, obs): (Vec<usize>, Vec<usize>) = (0..stratum.rows.len())
                .partition(|&r| var.values.missing(stratum.rows[r] as usize));
            if !mis.is_empty() && obs.is_empty() {
                return Err(ImputeError::AllMissing {
                    variable: var.name.clone(),
                    stratum: stratum_name(input, s),
                });
            }
            missing.push(mis);
            observed.push(obs);
        }
        out.push(Target {
            index: out.len(),
            variable: v,
            method,
            start,
            width,
            missing,
            observed,
        });
    }
    // The visit sequence: the named variables first, in their order.
    let rank = |t: &Target| {
        let name = &input.variables[t.variable].name;
        input
            .visit
            .iter()
            .position(|v| v == name)
            .unwrap_or(usize::MAX)
    };
    out.sort_by_key(|t| (rank(t), t.variable));
    for (k, t) in out.iter_mut().enumerate() {
        t.index = k;
    }
    Ok(out)
}

fn stratum_name(input: &Input, s: usize) -> String {
    input
        .strata
        .as_ref()
        .and_then(|(_, names)| names.get(s).cloned())
        .unwrap_or_else(|| "all".into())
}

/// One imputation's result: per target the imputed values (stratum order),
/// the trace, and the fallbacks taken.
struct Run {
    values: Vec<Vec<f64>>,
    trace: Vec<Vec<f64>>,
    fallbacks: Vec<String>,
}

/// The ridge penalty of a multinomial model that separated (a weak prior on
/// the coefficients, as mice's `polyreg` fits with weight decay).
const RIDGE: f64 = 1.0;

/// The stream of imputation `l`.
pub fn stream(seed: u64, l: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x4D49_4345_5F49_4D50);
    rng.set_stream(l as u64);
    rng
}

/// Runs imputation `l`: the starting draws, then the iterations.
fn run_one(
    input: &Input,
    layout: &Layout,
    targets: &[Target],
    settings: &Settings,
    l: usize,
) -> Result<Run, ImputeError> {
    let mut rng = stream(settings.seed, l);
    let mut state = State::start(input, layout, targets, &mut rng);
    let mut trace = vec![Vec::with_capacity(settings.iterations); targets.len()];
    let mut fallbacks = Vec::new();
    for _ in 0..settings.iterations {
        for (t, target) in targets.iter().enumerate() {
            for s in 0..layout.strata.len() {
                if target.missing[s].is_empty() {
                    continue;
                }
                let drawn = state.update(input, layout, target, s, settings.donors, &mut rng);
                match drawn {
                    Ok(Some(fallback)) => fallbacks.push(format!(
                        "imputation model of `{}` in group `{}`: {fallback}",
                        input.variables[target.variable].name,
                        stratum_name(input, s)
                    )),
                    Ok(None) => {}
                    Err(Failed(reason)) => {
                        return Err(ImputeError::Model {
                            variable: input.variables[target.variable].name.clone(),
                            stratum: stratum_name(input, s),
                            reason,
                        });
                    }
                }
            }
            trace[t].push(state.imputed_mean(input, target));
        }
    }
    let values = targets.iter().map(|t| state.imputed_values(t)).collect();
    Ok(Run {
        values,
        trace,
        fallbacks,
    })
}

/// One imputation's current values: the moving block of every stratum
/// (column-major rows × moving columns), the current response of each
/// target (numbers, or level codes) and the warm starts of the logit fits.
struct State {
    moving: Vec<Vec<f64>>,
    response: Vec<Vec<Vec<f64>>>,
    warm: std::collections::HashMap<(usize, usize), Vec<f64>>,
}

impl State {
    /// Observed cells as they are; each missing cell a random observed value
    /// of its stratum (mice's starting imputation).
    fn start(input: &Input, layout: &Layout, targets: &[Target], rng: &mut ChaCha8Rng) -> State {
        let qm = layout.moving_cols;
        let mut moving = Vec::with_capacity(layout.strata.len());
        let mut response = vec![Vec::new(); targets.len()];
        for (s, stratum) in layout.strata.iter().enumerate() {
            let ns = stratum.rows.len();
            let mut block = vec![0.0; ns * qm];
            for (t, target) in targets.iter().enumerate() {
                let v = &input.variables[target.variable].values;
                let observed = &target.observed[s];
                let mut y: Vec<f64> = stratum.rows.iter().map(|&i| raw(v, i as usize)).collect();
                for &r in &target.missing[s] {
                    y[r] = y[observed[rng.random_range(0..observed.len())]];
                }
                write(&mut block, ns, target, &y, 0..ns, v);
                response[t].push(y);
            }
            moving.push(block);
        }
        State {
            moving,
            response,
            warm: Default::default(),
        }
    }

    /// Fits target's model in stratum s and redraws its missing cells; the
    /// fallback taken, if any.
    fn update(
        &mut self,
        input: &Input,
        layout: &Layout,
        target: &Target,
        s: usize,
        donors: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Option<String>, Failed> {
        let t = target.index;
        let stratum = &layout.strata[s];
        let ns = stratum.rows.len();
        let (obs, mis) = (&target.observed[s], &target.missing[s]);
        let columns = Columns {
            fixed: &stratum.fixed,
            qf: layout.fixed_cols,
            moving: &self.moving[s],
            qm: layout.moving_cols,
            ns,
        };
        let x_obs = columns.predictors(target, obs);
        let x_mis = columns.predictors(target, mis);
        let p = x_obs.len() / obs.len().max(1);
        let fit = Fit {
            x: &x_obs,
            n: obs.len(),
            p,
        };
        let missing = Fit {
            x: &x_mis,
            n: mis.len(),
            p,
        };
        let y_all = &self.response[t][s];
        let y: Vec<f64> = obs.iter().map(|&r| y_all[r]).collect();
        let y = &y;
        let values = &input.variables[target.variable].values;
        let (drawn, fallback) = match target.method {
            Method::Logistic | Method::Multinomial => {
                let levels = match values {
                    Values::Categorical { levels, .. } => *levels,
                    Values::Numeric(_) => 2,
                };
                let codes: Vec<u32>;
                let response = if levels == 2 && matches!(values, Values::Numeric(_)) {
                    Response::Binary(y)
                } else {
                    codes = y.iter().map(|&c| c as u32).collect();
                    Response::Codes(&codes)
                };
                let warm = self.warm.get(&(target.variable, s)).map(Vec::as_slice);
                let fitted = match draw::multinomial(&fit, &response, levels, warm, 0.0) {
                    Err(Failed(reason)) if levels > 2 => {
                        draw::multinomial(&fit, &response, levels, None, RIDGE).map(|post| {
                            let note = format!(
                                "{reason}; a ridge-penalized fit (λ = {RIDGE} on every \
                                 coefficient but the intercepts) imputed it instead"
                            );
                            (post, Some(note))
                        })
                    }
                    other => other.map(|post| (post, None)),
                };
                match fitted {
                    Ok((post, note)) => {
                        self.warm.insert(
                            (target.variable, s),
                            draw::expand(&post.kept, &post.beta, (levels - 1) * p),
                        );
                        (logit_draw(&missing, &post, levels, rng), note)
                    }
                    Err(Failed(reason)) if levels == 2 => {
                        self.warm.remove(&(target.variable, s));
                        (
                            linear_draw(&fit, &missing, y, Method::Pmm, donors, rng)?,
                            Some(format!(
                                "{reason}; imputed by predictive mean matching instead"
                            )),
                        )
                    }
                    Err(e) => return Err(e),
                }
            }
            m => (linear_draw(&fit, &missing, y, m, donors, rng)?, None),
        };
        let y = &mut self.response[t][s];
        for (&r, v) in mis.iter().zip(&drawn) {
            y[r] = *v;
        }
        write(
            &mut self.moving[s],
            ns,
            target,
            y,
            mis.iter().copied(),
            values,
        );
        Ok(fallback)
    }

    /// The mean of the imputed cells (categorical: the share off the
    /// reference level), over the strata.
    fn imputed_mean(&self, input: &Input, target: &Target) -> f64 {
        let t = target.index;
        let categorical = matches!(
            input.variables[target.variable].values,
            Values::Categorical { .. }
        );
        let (mut sum, mut count) = (0.0f64, 0.0f64);
        for (s, mis) in target.missing.iter().enumerate() {
            for &r in mis {
                let v = self.response[t][s][r];
                sum += if categorical {
                    f64::from(u8::from(v != 0.0))
                } else {
                    v
                };
                count += 1.0;
            }
        }
        sum / count.max(1.0)
    }

    /// The imputed cells, stratum by stratum.
    fn imputed_values(&self, target: &Target) -> Vec<f64> {
        let t = target.index;
        target
            .missing
            .iter()
            .enumerate()
            .flat_map(|(s, mis)| mis.iter().map(move |&r| self.response[t][s][r]))
            .collect()
    }
}

/// The raw value of row i: the number, or the level code as a number
/// (NaN when missing).
fn raw(values: &Values, i: usize) -> f64 {
    match values {
        Values::Numeric(x) => x[i],
        Values::Categorical { codes, .. } => {
            if codes[i] == MISSING {
                f64::NAN
            } else {
                f64::from(codes[i])
            }
        }
    }
}

/// Writes the design columns of a target for the rows `rows` of a stratum.
fn write(
    block: &mut [f64],
    ns: usize,
    target: &Target,
    y: &[f64],
    rows: impl Iterator<Item = usize>,
    values: &Values,
) {
    let mut buf = vec![0.0; target.width.max(1)];
    for r in rows {
        match values {
            Values::Numeric(_) => buf[0] = y[r],
            Values::Categorical { .. } => dummies(y[r] as u32, &mut buf),
        }
        for c in 0..target.width {
            block[(target.start + c) * ns + r] = buf[c];
        }
    }
}

/// One stratum's design blocks (column-major, `ns` rows each).
struct Columns<'a> {
    fixed: &'a [f64],
    qf: usize,
    moving: &'a [f64],
    qm: usize,
    ns: usize,
}

impl Columns<'_> {
    /// The predictors of a target at the stratum rows `rows`: the fixed
    /// block and the moving columns of the other imputed variables,
    /// column-major rows × p.
    fn predictors(&self, target: &Target, rows: &[usize]) -> Vec<f64> {
        let own = target.start..target.start + target.width;
        let ns = self.ns;
        let mut x = Vec::with_capacity(rows.len() * (self.qf + self.qm - target.width));
        let columns = (0..self.qf)
            .map(|c| &self.fixed[c * ns..(c + 1) * ns])
            .chain(
                (0..self.qm)
                    .filter(|c| !own.contains(c))
                    .map(|c| &self.moving[c * ns..(c + 1) * ns]),
            );
        for col in columns {
            x.extend(rows.iter().map(|&r| col[r]));
        }
        x
    }
}

/// Norm or pmm draws for the missing rows (`missing`), the model fitted on
/// the observed ones (`fit`, responses `y`).
fn linear_draw(
    fit: &Fit,
    missing: &Fit,
    y: &[f64],
    method: Method,
    donors: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<f64>, Failed> {
    let post = draw::linear(fit, y)?;
    let (sigma, beta_star) = draw::linear_draw(&post, rng);
    let star = draw::linear_predictor(missing, &post.kept, &beta_star);
    if method == Method::Norm {
        return Ok(star
            .iter()
            .map(|s| {
                s + sigma
                    * rand_distr::Distribution::<f64>::sample(&rand_distr::StandardNormal, rng)
            })
            .collect());
    }
    let mut obs: Vec<(f64, f64)> = post.fitted.iter().copied().zip(y.iter().copied()).collect();
    obs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    Ok(draw::pmm(&obs, &star, donors, rng))
}

/// Draws of a logit model for the missing rows (`missing`): β* from the
/// posterior, then each row's level from its probabilities.
fn logit_draw(
    missing: &Fit,
    post: &draw::Posterior,
    levels: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<f64> {
    let j = levels - 1;
    let beta = draw::expand(&post.kept, &post.draw(1.0, rng), j * missing.p);
    let probs = draw::softmax(missing, &beta, j);
    (0..missing.n)
        .map(|r| {
            let u: f64 = rng.random();
            let mut acc = 0.0;
            for (a, level) in probs.iter().enumerate() {
                acc += level[r];
                if u < acc {
                    return (a + 1) as f64;
                }
            }
            0.0
        })
        .collect()
}

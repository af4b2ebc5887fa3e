//! A warehouse study without row export (`[data] warehouse` and no
//! `allow_row_export`): the moment-based analyses run on per-cell
//! sufficient statistics that PostgreSQL computes, and no patient row leaves
//! the warehouse.
//!
//! What leaves it, every statement recorded in results.json:
//! - the column types (`WHERE 1 = 0`: no row), the attrition counts, per
//!   group the rows, the missing values and the events of binary outcomes;
//! - per categorical covariate and for the cluster, the levels and their
//!   row counts, which code the `CASE` dummies exactly as the loader codes
//!   the rows ([`healthgap_cohort::load::categorical_levels`], clusters in
//!   natural order);
//! - per analysis and outcome, the moments per (group × absorbed level ×
//!   cluster) cell (`healthgap_warehouse::moments::cell_moments`, two
//!   centred passes), turned into [`Cells`] by [`Cells::from_moments`].
//!
//! The methods then run from the cells (`Spec::run_cells`): the cluster delta
//! method and the cluster bootstrap reweight the cells here, with no
//! resampling query. Methods and options that need rows are refused when
//! the plan is built ([`refusals`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow, bail};

use healthgap_cohort::load::{ABSORB_THRESHOLD, categorical_levels, natural_cmp};
use healthgap_cohort::{AttritionStep, OutcomeKind, VarKind};
use healthgap_decompose::cells::{CellInput, Cells, INTERCEPT};
use healthgap_decompose::covariates::{Absorbed, Categorical, Column, Covariates};
use healthgap_decompose::spec::{CellSource, Ran};
use healthgap_decompose::{AnalysisResult, CellSample, Cluster, DecomposeError};
use healthgap_models::moments::ClusterMoments;
use healthgap_report::suppress::Disclosure;
use healthgap_report::{OutcomeInfo, WarehouseInfo};
use healthgap_sql::{
    CellMoments, CohortQuery, Covariate, Dialect, Expr, Key, Literal, MomentSpec, Outcome,
    ResultSet, Values,
};
use healthgap_warehouse::Postgres;
use healthgap_warehouse::moments::{Cell, cell_moments};

use crate::analysis::{AnalysisRun, Observer, checked, expand, inference_spec};
use crate::plan::{AnalysisPlan, Plan};
use crate::study::{CohortFacts, Study};

const D: Dialect = Dialect::Postgres;

/// The alternative every refusal names.
const EXPORT: &str = "set [data] allow_row_export = true to pull the analysis columns and run \
                      it here";

/// What the plan asks that the in-warehouse path cannot do, refused before
/// any data are read: methods that need rows (each names its reason), and
/// study options whose moments are not built (no cluster, weights,
/// imputation, `min_count`, a binary `event` value).
pub fn refusals(plan: &Plan) -> Result<()> {
    let mut refused = Vec::new();
    let spec = &plan.cohort;
    if spec.cluster.is_none() {
        refused.push(format!(
            "[design] cluster is not set: in the warehouse the variances and the bootstrap are \
             computed from per-cluster moments, and without a cluster every patient is a unit; \
             set [design] cluster, or {EXPORT}"
        ));
    }
    if spec.weights.is_some() {
        refused.push(format!(
            "[design] weights: weighted moments are not computed in the warehouse yet; {EXPORT}"
        ));
    }
    if plan.imputation.is_some() {
        refused.push(format!(
            "[cohort] missing = \"multiple_imputation\" imputes each patient's values; {EXPORT}"
        ));
    }
    for v in spec.variables.iter().filter(|v| v.min_count.is_some()) {
        refused.push(format!(
            "[variables] {}: min_count (merging rare levels) is not computed in the warehouse \
             yet; drop it or {EXPORT}",
            v.name
        ));
    }
    for o in spec.outcomes.iter().filter(|o| o.event.is_some()) {
        refused.push(format!(
            "[outcomes] {}: event = … (recoding a binary outcome) is not computed in the \
             warehouse yet; code it 0/1 in the table or {EXPORT}",
            o.name
        ));
    }
    for a in &plan.analyses {
        if let Some(e) = a.spec.spec().needs_rows(&inference_spec(plan, a)) {
            refused.push(format!("analysis `{}`: {e}", a.id));
        }
    }
    if refused.is_empty() {
        return Ok(());
    }
    bail!(
        "[data] warehouse without allow_row_export runs only moment-based analyses inside the \
         warehouse (no patient row leaves it), and this config asks for more:\n  - {}",
        refused.join("\n  - ")
    )
}

/// A covariate as the warehouse codes it.
#[derive(Debug, Clone)]
enum Kind {
    Numeric,
    /// Levels in design order (the reference first), as text and as SQL
    /// literals of the column's type, and their rows in the cohort.
    Categorical {
        levels: Vec<String>,
        literals: Vec<Literal>,
        counts: Vec<usize>,
        absorb: bool,
    },
}

/// The moments of one outcome (its index) over one variable list.
type MomentsKey = (usize, Vec<String>);

/// The cohort as aggregates: everything the analyses and the report need,
/// and the connection that computes the moments.
pub struct WarehouseCohort {
    pg: Mutex<Postgres>,
    /// The cohort query: the source, the filters and the analysed groups.
    base: CohortQuery,
    /// Raw group values (the reference first), as the keys come back.
    group_values: Vec<String>,
    /// Cluster levels in natural order (their codes).
    clusters: HashMap<String, u32>,
    cluster_name: String,
    variables: Vec<(String, String, Kind)>,
    facts: CohortFacts,
    /// Moments already pulled, by (outcome, design variables).
    cache: Mutex<Vec<(MomentsKey, Arc<Vec<Cell>>)>>,
}

/// The text of one value of a result column, as the loader writes levels.
fn text(values: &Values, r: usize) -> Option<String> {
    match values {
        Values::Int(v) => v[r].map(|x| x.to_string()),
        Values::Float(v) => v[r].map(|x| x.to_string()),
        Values::Text(v) => v[r].clone(),
        Values::Bool(v) => v[r].map(|x| x.to_string()),
    }
}

fn count(values: &Values, r: usize) -> usize {
    match values {
        Values::Int(v) => v[r].unwrap_or(0).max(0) as usize,
        Values::Float(v) => v[r].unwrap_or(0.0).max(0.0) as usize,
        _ => 0,
    }
}

/// A level's text as an SQL literal of the column's type.
fn literal(values: &Values, level: &str) -> Result<Literal> {
    Ok(match values {
        Values::Text(_) => Literal::Str(level.to_string()),
        Values::Bool(_) => Literal::Bool(level == "true"),
        _ => Literal::Number(
            level
                .parse()
                .with_context(|| format!("level `{level}` is not a number"))?,
        ),
    })
}

/// The levels of `column` in the cohort and their rows. A text level that
/// `[data] na_values` lists is a missing value for the loader, and missing
/// values are refused here (as [`group_counts`] refuses NULLs).
fn levels_of(
    pg: &mut Postgres,
    base: &CohortQuery,
    column: &str,
    na_values: &[String],
) -> Result<Vec<(Option<String>, usize)>> {
    let rs = pg.query(&base.levels_query(D, &Expr::col(column))?)?;
    let (level, n) = (&rs.columns[0].1, &rs.columns[1].1);
    let levels: Vec<(Option<String>, usize)> = (0..rs.rows())
        .map(|r| (text(level, r), count(n, r)))
        .collect();
    if matches!(level, Values::Text(_))
        && let Some(na) = levels
            .iter()
            .filter_map(|(l, _)| l.as_ref())
            .find(|l| na_values.contains(l))
    {
        bail!(
            "`{column}` holds `{na}`, a missing value by [data] na_values: the in-warehouse path \
             does not take each analysis's complete cases yet; filter those rows out in \
             [cohort] filters or {EXPORT}"
        );
    }
    Ok(levels)
}

/// The column types of the source (no row read).
fn column_types(pg: &mut Postgres, base: &CohortQuery, plan: &Plan) -> Result<ResultSet> {
    let columns = plan.cohort.columns()?;
    Ok(pg.query(&base.types_query(D, &columns)?)?)
}

/// Connects, and computes the cohort's aggregates (see the module doc).
pub fn load(plan: &Plan) -> Result<WarehouseCohort> {
    let context = || format!("{}", plan.config_path.display());
    load_inner(plan).with_context(context)
}

fn load_inner(plan: &Plan) -> Result<WarehouseCohort> {
    let w = plan
        .warehouse
        .as_ref()
        .ok_or_else(|| anyhow!("the plan has no [data] warehouse"))?;
    let spec = &plan.cohort;
    let mut pg = Postgres::connect(&w.url, w.password_env.as_deref())?;
    let mut base = CohortQuery::new(w.table.clone());
    for f in &spec.filters {
        base = base.filter(f)?;
    }
    let types = column_types(&mut pg, &base, plan)?;
    let type_of = |name: &str| -> Result<&Values> {
        types
            .columns
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| anyhow!("column `{name}` is not in the warehouse table"))
    };
    let mut group_values = vec![spec.reference.clone()];
    group_values.extend(spec.compare.iter().cloned());
    let group_type = type_of(&spec.group_column)?;
    let group_literals = group_values
        .iter()
        .map(|v| literal(group_type, v))
        .collect::<Result<Vec<_>>>()?;
    base = base.groups(&spec.group_column, group_literals);
    let attrition = attrition(&mut pg, &base, plan)?;
    let cluster_name = spec
        .cluster
        .clone()
        .ok_or_else(|| anyhow!("[design] cluster is required in the warehouse"))?;
    let mut cluster_levels: Vec<String> = Vec::new();
    for (level, _) in levels_of(&mut pg, &base, &cluster_name, &spec.na_values)? {
        cluster_levels.push(level.ok_or_else(|| {
            anyhow!(
                "the cluster column `{cluster_name}` has missing values; every row needs a cluster"
            )
        })?);
    }
    cluster_levels.sort_by(|a, b| natural_cmp(a, b));
    let mut variables = Vec::new();
    for v in &spec.variables {
        let ty = type_of(&v.name)?;
        let kind = match &v.kind {
            Some(k) => k.clone(),
            None if matches!(ty, Values::Text(_)) => VarKind::Categorical {
                reference: None,
                absorb: false,
            },
            None => VarKind::Numeric,
        };
        let kind = match kind {
            VarKind::Numeric if matches!(ty, Values::Text(_)) => bail!(
                "column `{}`: declared numeric but holds texts; declare it type = \"categorical\"",
                v.name
            ),
            VarKind::Numeric => Kind::Numeric,
            VarKind::Categorical { reference, absorb } => {
                let levels = levels_of(&mut pg, &base, &v.name, &spec.na_values)?;
                categorical(&levels, &v.name, ty, reference, absorb)?
            }
        };
        variables.push((v.name.clone(), v.block.clone(), kind));
    }
    let (group_counts, outcome_counts) = group_counts(&mut pg, &base, plan, &group_values)?;
    let facts = CohortFacts {
        source: "warehouse".into(),
        files: Vec::new(),
        rows_read: attrition.0,
        warehouse: None,
        clusters: Some((cluster_name.clone(), cluster_levels.len())),
        group_labels: display_labels(plan, &group_values),
        group_counts: group_counts.clone(),
        attrition: attrition.1,
        table1: Vec::new(),
        table1_complete: None,
        disclosure: Disclosure {
            group_labels: display_labels(plan, &group_values),
            group_counts,
            outcome_counts,
            level_counts: level_counts(&variables),
        },
        outcomes: spec
            .outcomes
            .iter()
            .map(|o| OutcomeInfo {
                name: o.name.clone(),
                label: o.label.clone(),
                binary: o.kind == OutcomeKind::Binary,
            })
            .collect(),
    };
    let clusters = cluster_levels
        .into_iter()
        .enumerate()
        .map(|(i, l)| (l, i as u32))
        .collect();
    Ok(WarehouseCohort {
        pg: Mutex::new(pg),
        base,
        group_values,
        clusters,
        cluster_name,
        variables,
        facts,
        cache: Mutex::new(Vec::new()),
    })
}

fn display_labels(plan: &Plan, values: &[String]) -> Vec<String> {
    values
        .iter()
        .map(|v| {
            plan.cohort
                .group_display
                .get(v)
                .cloned()
                .unwrap_or_else(|| v.clone())
        })
        .collect()
}

/// Patients per level of every dummy-coded categorical (`variable=level`).
fn level_counts(variables: &[(String, String, Kind)]) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (name, _, kind) in variables {
        if let Kind::Categorical {
            levels,
            counts,
            absorb: false,
            ..
        } = kind
        {
            out.extend(
                levels
                    .iter()
                    .zip(counts)
                    .map(|(l, n)| (format!("{name}={l}"), *n)),
            );
        }
    }
    out
}

/// A categorical covariate's levels in design order, as the loader orders
/// them, from the warehouse's level counts.
fn categorical(
    levels: &[(Option<String>, usize)],
    name: &str,
    ty: &Values,
    reference: Option<String>,
    absorb: bool,
) -> Result<Kind> {
    let observed: Vec<(String, usize)> = levels
        .iter()
        .filter_map(|(l, n)| l.clone().map(|l| (l, *n)))
        .collect();
    let levels = categorical_levels(&observed, reference)
        .map_err(|message| anyhow!("column `{name}`: {message}"))?;
    let counts = levels
        .iter()
        .map(|l| observed.iter().find(|(o, _)| o == l).map_or(0, |(_, n)| *n))
        .collect();
    let literals = levels
        .iter()
        .map(|l| literal(ty, l))
        .collect::<Result<Vec<_>>>()?;
    Ok(Kind::Categorical {
        absorb: absorb || levels.len() > ABSORB_THRESHOLD,
        levels,
        literals,
        counts,
    })
}

/// Rows read and the attrition steps (each filter, then the groups), from
/// one counting query.
fn attrition(
    pg: &mut Postgres,
    base: &CohortQuery,
    plan: &Plan,
) -> Result<(usize, Vec<AttritionStep>)> {
    let q = base.attrition_query(D)?;
    let rs = pg.query(&q.sql)?;
    if rs.rows() != 1 {
        bail!("the attrition query returned {} rows", rs.rows());
    }
    let n: Vec<usize> = rs.columns.iter().map(|(_, v)| count(v, 0)).collect();
    if n.first() == Some(&0) {
        bail!("the data have no rows: the warehouse table is empty");
    }
    if n.last() == Some(&0) {
        bail!(
            "the data have no rows after the filters and the groups ({}): relax [cohort] filters \
             or check [groups]",
            plan.cohort.filters.join("; ")
        );
    }
    let spec = &plan.cohort;
    let mut labels: Vec<String> = q.columns.iter().skip(1).map(|c| c.label.clone()).collect();
    // The groups' step is labelled with the display labels, as the loader does.
    let mut shown = vec![spec.reference.clone()];
    shown.extend(spec.compare.iter().cloned());
    if let Some(last) = labels.last_mut() {
        *last = format!(
            "{} in {{{}}}",
            spec.group_column,
            display_labels(plan, &shown).join(", ")
        );
    }
    let steps = labels
        .into_iter()
        .enumerate()
        .map(|(k, step)| AttritionStep {
            step,
            excluded: n[k].saturating_sub(n[k + 1]),
            remaining: n[k + 1],
        })
        .collect();
    Ok((n[0], steps))
}

/// Rows per group, and (events, rows) per group of each binary outcome.
/// Refuses missing values in any analysis column (the in-warehouse path
/// does not take per-analysis complete cases yet) and binary outcomes not
/// coded 0/1.
#[allow(clippy::type_complexity)]
fn group_counts(
    pg: &mut Postgres,
    base: &CohortQuery,
    plan: &Plan,
    group_values: &[String],
) -> Result<(Vec<usize>, Vec<(String, Vec<(usize, usize)>)>)> {
    let spec = &plan.cohort;
    let mut columns: Vec<&str> = spec.outcomes.iter().map(|o| o.name.as_str()).collect();
    columns.extend(spec.variables.iter().map(|v| v.name.as_str()));
    let mut conditions: Vec<Expr> = columns
        .iter()
        .map(|c| Expr::col(*c).is_null(false))
        .collect();
    let binary: Vec<&str> = spec
        .outcomes
        .iter()
        .filter(|o| o.kind == OutcomeKind::Binary)
        .map(|o| o.name.as_str())
        .collect();
    for b in &binary {
        conditions.push(Expr::col(*b).cmp(healthgap_sql::CmpOp::Eq, Expr::num(1.0)));
        conditions.push(
            Expr::col(*b)
                .in_list(vec![Literal::Number(0.0), Literal::Number(1.0)])
                .not(),
        );
    }
    let rs = pg.query(&base.count_query(D, &conditions)?)?;
    let row_of =
        |g: &str| (0..rs.rows()).find(|&r| text(&rs.columns[0].1, r).as_deref() == Some(g));
    let at = |r: Option<usize>, k: usize| r.map_or(0, |r| count(&rs.columns[k].1, r));
    let rows: Vec<Option<usize>> = group_values.iter().map(|g| row_of(g)).collect();
    let counts: Vec<usize> = rows.iter().map(|r| at(*r, 1)).collect();
    if let Some(g) = counts.iter().position(|n| *n == 0) {
        bail!(
            "group `{}` has no rows after the filters ({}); relax [cohort] filters or drop it \
             from [groups]",
            group_values[g],
            spec.filters.join("; ")
        );
    }
    for (k, c) in columns.iter().enumerate() {
        if rows.iter().any(|r| at(*r, 2 + k) > 0) {
            bail!(
                "`{c}` has missing values in the cohort: the in-warehouse path does not take \
                 each analysis's complete cases yet; filter them out in [cohort] filters \
                 (\"{c} is not null\") or {EXPORT}"
            );
        }
    }
    let mut outcome_counts = Vec::new();
    for (b, name) in binary.iter().enumerate() {
        let k = 2 + columns.len() + 2 * b;
        if rows.iter().any(|r| at(*r, k + 1) > 0) {
            bail!("outcome `{name}`: declared binary but holds values other than 0 and 1");
        }
        let per_group = rows
            .iter()
            .zip(&counts)
            .map(|(r, n)| (at(*r, k), *n))
            .collect();
        outcome_counts.push((name.to_string(), per_group));
    }
    Ok((counts, outcome_counts))
}

impl WarehouseCohort {
    /// The cohort's facts, with the statements run so far.
    pub fn facts(&self) -> CohortFacts {
        let mut facts = self.facts.clone();
        if let Ok(pg) = self.pg.lock() {
            facts.warehouse = Some(WarehouseInfo {
                engine: "postgres".into(),
                server: pg.target().to_string(),
                row_export: false,
                queries: pg.statements().to_vec(),
            });
        }
        facts
    }

    /// The layout of `variables` and the covariates of the moment queries.
    fn layout(&self, variables: &[String]) -> Result<(Covariates, Vec<Covariate>), DecomposeError> {
        let mut cov = Covariates::default();
        let mut sql = Vec::new();
        let mut absorbed: Vec<Absorbed> = Vec::new();
        for name in variables {
            let Some((_, block, kind)) = self.variables.iter().find(|(n, _, _)| n == name) else {
                continue;
            };
            match kind {
                Kind::Numeric => {
                    cov.columns.push(Column {
                        name: name.clone(),
                        factor: block.clone(),
                        values: Vec::new(),
                    });
                    sql.push(Covariate::Numeric {
                        name: name.clone(),
                        expr: Expr::col(name.as_str()),
                    });
                }
                Kind::Categorical {
                    levels,
                    absorb: true,
                    ..
                } => absorbed.push(Absorbed {
                    variable: name.clone(),
                    factor: block.clone(),
                    codes: Vec::new(),
                    levels: levels.len(),
                    labels: levels.clone(),
                }),
                Kind::Categorical {
                    levels, literals, ..
                } => {
                    let (Some(reference), Some(literal)) = (levels.first(), literals.first())
                    else {
                        continue;
                    };
                    let first = cov.columns.len();
                    cov.categoricals.push(Categorical {
                        variable: name.clone(),
                        factor: block.clone(),
                        base: format!("{name}={reference}"),
                        columns: (first..first + levels.len() - 1).collect(),
                    });
                    cov.columns.extend(levels.iter().skip(1).map(|l| Column {
                        name: format!("{name}={l}"),
                        factor: block.clone(),
                        values: Vec::new(),
                    }));
                    sql.push(Covariate::Categorical {
                        name: name.clone(),
                        expr: Expr::col(name.as_str()),
                        reference: literal.clone(),
                        levels: literals.clone(),
                    });
                }
            }
        }
        if absorbed.len() > 1 {
            return Err(DecomposeError::Design(
                healthgap_cohort::SeveralAbsorbed(
                    absorbed.into_iter().map(|a| a.variable).collect(),
                )
                .to_string(),
            ));
        }
        cov.absorbed = absorbed.pop();
        Ok((cov, sql))
    }

    /// The cells of every group over `variables` and outcome `outcome`
    /// (pulled once, then shared by the comparisons and analyses).
    fn moments(
        &self,
        outcome: usize,
        variables: &[String],
        cov: &Covariates,
        sql: Vec<Covariate>,
    ) -> Result<Arc<Vec<Cell>>, DecomposeError> {
        let key = (outcome, variables.to_vec());
        let failed = |e: String| DecomposeError::Design(format!("warehouse moments: {e}"));
        if let Some((_, cells)) = self
            .cache
            .lock()
            .map_err(|e| failed(e.to_string()))?
            .iter()
            .find(|(k, _)| *k == key)
        {
            return Ok(Arc::clone(cells));
        }
        let mut q = self.base.clone();
        let o = &self.facts.outcomes[outcome];
        q.outcomes = vec![Outcome {
            name: o.name.clone(),
            expr: Expr::col(o.name.as_str()),
        }];
        q.cluster = Some(Expr::col(self.cluster_name.as_str()));
        q.hospital = cov
            .absorbed
            .as_ref()
            .map(|a| Expr::col(a.variable.as_str()));
        q.covariates = sql;
        let mut keys = vec![Key::Group];
        if q.hospital.is_some() {
            keys.push(Key::Hospital);
        }
        keys.push(Key::Cluster);
        let spec = MomentSpec::all(&q, keys, Some(0)).map_err(|e| failed(e.to_string()))?;
        let cells = {
            let mut pg = self.pg.lock().map_err(|e| failed(e.to_string()))?;
            cell_moments(&mut pg, &q, &spec).map_err(|e| failed(e.to_string()))?
        };
        let cells = Arc::new(cells);
        self.cache
            .lock()
            .map_err(|e| failed(e.to_string()))?
            .push((key, Arc::clone(&cells)));
        Ok(cells)
    }
}

/// Raw moments over (x_1, …, x_p, y) as a cell's moments over (1, x_1, …,
/// x_p) and y: the intercept's are Σw, Σwx and Σwy.
fn cluster_moments(m: &CellMoments, p: usize) -> ClusterMoments {
    let k = p + 1;
    let at = |i: usize| if i == 0 { None } else { Some(i - 1) };
    let mut out = ClusterMoments {
        w: m.sum_w,
        x: vec![0.0; k],
        xx: vec![0.0; k * k],
        xy: vec![0.0; k],
        y: m.sums[p],
        yy: m.product(p, p),
    };
    for i in 0..k {
        out.x[i] = at(i).map_or(m.sum_w, |a| m.sums[a]);
        out.xy[i] = at(i).map_or(m.sums[p], |a| m.product(a, p));
        for j in 0..k {
            out.xx[i * k + j] = match (at(i), at(j)) {
                (None, None) => m.sum_w,
                (None, Some(b)) | (Some(b), None) => m.sums[b],
                (Some(a), Some(b)) => m.product(a, b),
            };
        }
    }
    out
}

/// One outcome and comparison of a warehouse cohort, as a [`CellSource`].
struct Source<'a> {
    plan: &'a Plan,
    cohort: &'a WarehouseCohort,
    outcome: usize,
    comparison: usize,
}

impl CellSource for Source<'_> {
    fn expand(&self, names: &[String]) -> Vec<String> {
        expand(self.plan, names)
    }

    fn every_factor(&self) -> Vec<String> {
        self.plan.blocks.values().flatten().cloned().collect()
    }

    fn cells(&self, variables: &[String]) -> Result<(Arc<Covariates>, Cells), DecomposeError> {
        let wc = self.cohort;
        let (cov, sql) = wc.layout(variables)?;
        let cells = wc.moments(self.outcome, variables, &cov, sql)?;
        let p = cov.columns.len();
        let level_of: HashMap<&str, u32> = cov.absorbed.as_ref().map_or_else(HashMap::new, |a| {
            a.labels
                .iter()
                .enumerate()
                .map(|(i, l)| (l.as_str(), i as u32))
                .collect()
        });
        let unknown = |what: &str, v: &Option<String>| {
            DecomposeError::Design(format!(
                "warehouse moments: a cell's {what} `{}` is not among the cohort's",
                v.as_deref().unwrap_or("NULL")
            ))
        };
        let mut inputs = Vec::new();
        for cell in cells.iter() {
            let key = |k: usize| cell.keys.get(k).cloned().flatten();
            let group = key(0);
            let Some(g) = wc
                .group_values
                .iter()
                .position(|v| Some(v) == group.as_ref())
            else {
                return Err(unknown("group", &group));
            };
            let group = match g {
                0 => 0,
                g if g == self.comparison => 1,
                _ => continue,
            };
            let (level, cluster) = if cov.absorbed.is_some() {
                (key(1), key(2))
            } else {
                (None, key(1))
            };
            let level = match &level {
                Some(l) => *level_of
                    .get(l.as_str())
                    .ok_or_else(|| unknown("level", &level))?,
                None if cov.absorbed.is_some() => return Err(unknown("level", &level)),
                None => 0,
            };
            let cluster_code = cluster
                .as_ref()
                .and_then(|c| wc.clusters.get(c))
                .copied()
                .ok_or_else(|| unknown("cluster", &cluster))?;
            inputs.push(CellInput {
                group,
                level,
                cluster: cluster_code,
                rows: cell.moments.count.round() as usize,
                moments: cluster_moments(&cell.moments, p),
            });
        }
        let mut names = vec![INTERCEPT.to_string()];
        names.extend(cov.columns.iter().map(|c| c.name.clone()));
        let levels = cov.absorbed.as_ref().map_or(1, |a| a.levels);
        let cells = Cells::from_moments(names, levels, wc.clusters.len(), inputs)?;
        Ok((Arc::new(cov), cells))
    }
}

/// Runs one analysis from the warehouse's moments for every outcome and
/// comparison (as [`crate::analysis::run_analysis`] does on rows).
fn run_analysis(
    plan: &Plan,
    wc: &WarehouseCohort,
    a: &AnalysisPlan,
    observer: &dyn Observer,
) -> Result<AnalysisRun> {
    let facts = &wc.facts;
    let comparisons = facts.group_labels.len() - 1;
    let replicates = match a.inference.method {
        crate::config::RawInferenceMethod::Bootstrap => {
            a.inference.replicates * a.outcomes.len() * comparisons
        }
        crate::config::RawInferenceMethod::Delta => 0,
    };
    observer.started(a, replicates);
    let progress = || observer.replicate();
    let spec = inference_spec(plan, a);
    let mut out = Vec::new();
    let mut failures = Vec::new();
    for outcome in &a.outcomes {
        let Some(o) = facts.outcomes.iter().position(|x| &x.name == outcome) else {
            bail!("outcome `{outcome}` is not in [outcomes]");
        };
        let binary = facts.outcomes[o].binary;
        for k in 1..facts.group_labels.len() {
            let labels = [
                facts.group_labels[0].as_str(),
                facts.group_labels[k].as_str(),
            ];
            let sample = CellSample {
                outcome,
                labels,
                cluster: Some(Cluster {
                    name: &wc.cluster_name,
                    codes: &[],
                    count: wc.clusters.len(),
                }),
                binary,
                min_cell: plan.min_cell,
            };
            let source = Source {
                plan,
                cohort: wc,
                outcome: o,
                comparison: k,
            };
            let ran = a.spec.run_cells(&sample, &source, &spec, &progress);
            let Ran {
                output,
                info,
                hospitals,
            } = match ran {
                Ok(ran) => ran,
                Err(err) => {
                    failures.push(format!(
                        "{outcome}, {} vs {}: {err:#}",
                        labels[1], labels[0]
                    ));
                    continue;
                }
            };
            // No value is missing (checked when loading): the sample is the
            // cohort's two groups.
            let sample_counts = [0, k].map(|g| {
                let n = facts.group_counts[g];
                let events = facts
                    .disclosure
                    .outcome_counts
                    .iter()
                    .find(|(name, _)| name == outcome)
                    .map(|(_, c)| c[g].0);
                (n, binary.then_some(events.unwrap_or(0)))
            });
            let result = AnalysisResult {
                sample_counts,
                id: a.id.clone(),
                spec: a.spec.clone(),
                outcome: outcome.clone(),
                binary,
                weighted: false,
                reference: labels[0].to_string(),
                comparison: labels[1].to_string(),
                n: Some(output.n),
                inference: info,
                estimates: output.estimates,
                models: output.models,
                warnings: output.warnings,
                balance: output.balance,
                learners: output.learners,
                attrition: Vec::new(),
                hospitals,
            };
            match checked(result) {
                Ok(result) => out.push(result),
                Err(reason) => failures.push(format!(
                    "{outcome}, {} vs {}: {reason}",
                    labels[1], labels[0]
                )),
            }
        }
    }
    observer.finished(a);
    if out.is_empty() && !failures.is_empty() {
        bail!("{}", failures.join("; "));
    }
    Ok(AnalysisRun {
        results: out,
        failures,
    })
}

/// Every analysis with its inference, from the warehouse's moments; the
/// study as [`crate::study::run_study`] gives it on rows.
pub fn run_study(plan: &Plan, wc: &WarehouseCohort, observer: &dyn Observer) -> Result<Study> {
    let run = |a: &AnalysisPlan| run_analysis(plan, wc, a, observer);
    let warnings = vec![
        "Table 1 is not computed in a warehouse study without row export (only the moments of \
         the analyses left the warehouse)"
            .to_string(),
    ];
    let ran = crate::study::run_analyses(plan, None, warnings, &run, observer)?;
    crate::study::finish(plan, &wc.facts(), ran)
}

/// Every analysis fitted once from the warehouse's moments, without
/// inference (as [`crate::study::check_study`] on rows).
pub fn check_study(plan: &Plan, wc: &WarehouseCohort) -> Result<()> {
    crate::study::check_analyses(plan, |_, dry| {
        run_analysis(plan, wc, dry, &crate::analysis::Quiet)
    })
}

//! A study on moments computed in warehouses: `[data] warehouse` without
//! `allow_row_export`, or a federated study (`[[data.site]]`, several
//! warehouses). The moment-based analyses run on per-cell sufficient
//! statistics that PostgreSQL computes, and no patient row leaves a
//! warehouse.
//!
//! What leaves each warehouse, every statement recorded in results.json:
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
//! A federated study asks every site for the same aggregates and adds them
//! up: the counts are summed, a categorical covariate's levels are the union
//! over the sites (coded identically everywhere), and the cluster and the
//! absorbed variable are keyed per site ([`SiteLevels`]: hospital 7 of two
//! sites is two hospitals), so the cells of the sites are distinct and
//! together they are the cells of the pooled rows. Their order is the value's
//! natural order, then the sites' config order: with ids distinct across the
//! sites it is the pooled data's order, and the bootstrap draws the same
//! clusters.
//!
//! The methods then run from the cells (`Spec::run_cells`): the cluster delta
//! method and the cluster bootstrap reweight the cells here, with no
//! resampling query. Methods and options that need rows are refused when
//! the plan is built ([`refusals`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow, bail};

use healthgap_cohort::load::{
    ABSORB_THRESHOLD, categorical_levels, merge_rare_level_counts, natural_cmp,
};
use healthgap_cohort::spec::OutcomeSpec;
use healthgap_cohort::{AttritionStep, OutcomeKind, VarKind};
use healthgap_decompose::cells::{CellInput, Cells, INTERCEPT};
use healthgap_decompose::covariates::{Absorbed, Categorical, Column, Covariates};
use healthgap_decompose::spec::CellSource;
use healthgap_decompose::{CellSample, Cluster, DecomposeError};
use healthgap_models::moments::ClusterMoments;
use healthgap_report::suppress::{self, Disclosure};
use healthgap_report::{GroupCount, OutcomeInfo, SiteInfo, WarehouseInfo};
use healthgap_sql::{
    ArithOp, CellMoments, CmpOp, CohortQuery, Covariate, Dialect, Expr, Key, Literal, MissingTexts,
    MomentSpec, Outcome, ResultSet, Values,
};
use healthgap_warehouse::Postgres;
use healthgap_warehouse::moments::{Cell, cell_moments};

use crate::analysis::{
    AnalysisRun, Comparison, EmptyGroups, Observer, analysis_variables, complete_case_report,
    expand, inference_spec,
};

mod complete_cases;

use crate::plan::{AnalysisPlan, Plan, WarehousePlan};
use crate::study::{CohortFacts, Study};
use complete_cases::{Coded, Occurring};

const D: Dialect = Dialect::Postgres;

/// The alternative every refusal of `[data] warehouse` names.
const EXPORT: &str = "set [data] allow_row_export = true to pull the analysis columns and run \
                      it here";

/// The alternative a federated study's refusals name (its rows never leave
/// the sites).
const SITES_EXPORT: &str = "study one site's table alone with [data] warehouse and \
                            allow_row_export = true (a federated study never pulls rows)";

/// The alternative the plan's refusals name.
fn export(plan: &Plan) -> &'static str {
    if plan.sites.is_empty() {
        EXPORT
    } else {
        SITES_EXPORT
    }
}

/// What the plan asks that the in-warehouse path cannot do, refused before
/// any data are read: methods that need rows (each names its reason), and
/// study options whose moments are not built (no cluster, imputation).
pub fn refusals(plan: &Plan) -> Result<()> {
    let export = export(plan);
    let mut refused = Vec::new();
    let spec = &plan.cohort;
    if spec.cluster.is_none() {
        refused.push(format!(
            "[design] cluster is not set: in the warehouse the variances and the bootstrap are \
             computed from per-cluster moments, and without a cluster every patient is a unit; \
             set [design] cluster, or {export}"
        ));
    }
    if plan.imputation.is_some() {
        refused.push(format!(
            "[cohort] missing = \"multiple_imputation\" imputes each patient's values; {export}"
        ));
    }
    for a in &plan.analyses {
        if let Some(e) = a.spec.spec().needs_rows(&inference_spec(plan, a)) {
            let e = e.to_string().replace(EXPORT, export);
            refused.push(format!("analysis `{}`: {e}", a.id));
        }
    }
    if refused.is_empty() {
        return Ok(());
    }
    let lead = if plan.sites.is_empty() {
        "[data] warehouse without allow_row_export runs only moment-based analyses inside the \
         warehouse (no patient row leaves it)"
    } else {
        "[[data.site]] (a federated study) runs only moment-based analyses inside the sites' \
         warehouses (no patient row leaves them)"
    };
    bail!(
        "{lead}, and this config asks for more:\n  - {}",
        refused.join("\n  - ")
    )
}

/// Levels keyed per site, so that a value at two sites is two levels (a
/// hospital's or a cluster's id is its site's own): in the order of the
/// values given, each value's sites in config order. A level reads as its
/// value, or `value (site)` when the value is at several sites.
#[derive(Debug, Clone, Default)]
struct SiteLevels {
    labels: Vec<String>,
    codes: HashMap<(usize, String), u32>,
}

impl SiteLevels {
    /// `values` in their order; `at[s]` the values at site `s`, named
    /// `names[s]`.
    fn new(values: &[String], at: &[HashSet<String>], names: &[String]) -> SiteLevels {
        let mut out = SiteLevels::default();
        for v in values {
            let sites: Vec<usize> = (0..at.len()).filter(|&s| at[s].contains(v)).collect();
            for &s in &sites {
                out.codes.insert((s, v.clone()), out.labels.len() as u32);
                out.labels.push(if sites.len() > 1 {
                    format!("{v} ({})", names[s])
                } else {
                    v.clone()
                });
            }
        }
        out
    }

    fn len(&self) -> usize {
        self.labels.len()
    }

    /// The code of `value` at site `site`.
    fn code(&self, site: usize, value: &str) -> Option<u32> {
        self.codes.get(&(site, value.to_string())).copied()
    }
}

/// A covariate as the warehouse codes it.
#[derive(Debug, Clone)]
enum Kind {
    Numeric,
    /// Dummy-coded: the same levels at every site, in design order (the
    /// reference first), as text, with their rows in the cohort.
    Categorical {
        levels: Vec<String>,
        counts: Vec<usize>,
        /// `min_count`: each level in the table with the position of the
        /// level it joins among `levels` (empty when none was merged).
        merged: Vec<(String, usize)>,
    },
    /// Absorbed (fixed or random effects): levels keyed per site.
    Absorbed(SiteLevels),
}

/// Each variable's name, block and coding.
type Variables = Vec<(String, String, Kind)>;

/// The moment cells of every site, in the sites' order.
type SiteCells = Arc<Vec<Vec<Cell>>>;
/// Per site, the cohort query and the moment spec of a pull.
type Statements = Vec<(CohortQuery, MomentSpec)>;

/// What the counting query returns, per group: the rows, per binary outcome
/// its (events, rows with the outcome), and per column with missing values
/// its missing rows.
#[derive(Debug, Clone, Default)]
struct GroupCounts {
    rows: Vec<usize>,
    events: Vec<(String, Vec<(usize, usize)>)>,
    missing: Vec<(String, Vec<usize>)>,
}

impl GroupCounts {
    /// Adds one site's counts.
    fn add(&mut self, site: GroupCounts) {
        self.rows.resize(site.rows.len(), 0);
        self.rows
            .iter_mut()
            .zip(&site.rows)
            .for_each(|(t, n)| *t += n);
        for (name, per_group) in site.events {
            match self.events.iter_mut().find(|(n, _)| *n == name) {
                Some((_, t)) => t.iter_mut().zip(&per_group).for_each(|(t, (e, n))| {
                    t.0 += e;
                    t.1 += n;
                }),
                None => self.events.push((name, per_group)),
            }
        }
        for (name, per_group) in site.missing {
            match self.missing.iter_mut().find(|(n, _)| *n == name) {
                Some((_, t)) => t.iter_mut().zip(&per_group).for_each(|(t, m)| *t += m),
                None => self.missing.push((name, per_group)),
            }
        }
    }
}

/// One warehouse of the study: its connection, its cohort query and what it
/// returned.
struct Site {
    /// `[[data.site]] name`; `None` for `[data] warehouse`.
    name: Option<String>,
    pg: Mutex<Postgres>,
    /// The cohort query: the source, the filters and the analysed groups.
    base: CohortQuery,
    /// The columns' types (the `WHERE 1 = 0` probe; the site column, which
    /// no table has, as text).
    types: ResultSet,
    /// Rows in its table.
    rows_read: usize,
    /// Its rows per group.
    group_counts: Vec<usize>,
}

impl Site {
    /// `site `name`: ` before a federated site's messages (nothing for
    /// `[data] warehouse`).
    fn prefix(&self) -> String {
        self.name
            .as_ref()
            .map(|n| format!("site `{n}`: "))
            .unwrap_or_default()
    }

    /// Whether the site's column `name` is a text column.
    fn holds_text(&self, name: &str) -> bool {
        matches!(self.type_of(name), Ok(Values::Text(_)))
    }

    /// The type of the site's column `name`.
    fn type_of(&self, name: &str) -> Result<&Values> {
        self.types
            .columns
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| anyhow!("column `{name}` is not in the warehouse table"))
    }
}

/// A site's error with the site named (a single warehouse's unchanged).
fn at_site<T>(name: Option<&str>, result: Result<T>) -> Result<T> {
    match name {
        Some(name) => result.with_context(|| format!("site `{name}`")),
        None => result,
    }
}

/// The cohort as aggregates: everything the analyses and the report need,
/// and the connections that compute the moments.
pub struct WarehouseCohort {
    sites: Vec<Site>,
    /// Raw group values (the reference first), as the keys come back.
    group_values: Vec<String>,
    /// The clusters, keyed per site.
    clusters: SiteLevels,
    cluster_name: String,
    variables: Variables,
    /// `[data] site_column`.
    site_column: Option<String>,
    facts: CohortFacts,
    min_cell: usize,
    /// The outcomes and variables with missing values: their missing rows
    /// per group (each analysis takes its complete cases).
    missing: Vec<(String, Vec<usize>)>,
    /// The cohort's warnings (levels merged by `min_count`), as the loader
    /// gives them.
    warnings: Vec<String>,
    /// The outcomes as declared (in the order of `facts.outcomes`).
    outcomes: Vec<OutcomeSpec>,
    /// Moments already pulled, by their statements' inputs (per site, the
    /// cohort query and the moment spec): analyses with the same outcome,
    /// variables and absorbed variable, and also those whose queries
    /// coincide otherwise (the care-site analysis and an Oaxaca–Blinder
    /// decomposition with the hospital absorbed), share one pull.
    pulled: Mutex<Vec<(Statements, SiteCells)>>,
    /// Complete-case counts already made, by (outcome, the variables with
    /// missing values in step order).
    counted: Mutex<Vec<complete_cases::Counted>>,
    /// The outcomes whose moments are pulled together (indices into
    /// `outcomes`, ascending): those some analysis uses that have no missing
    /// value, hence the same complete cases over any variables.
    together: Vec<usize>,
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

/// The levels of `column` in the cohort and their rows (NULL, a missing
/// value, included; a text `[data] na_values` lists is NULL, see
/// [`missing_texts`]).
fn levels_of(
    pg: &mut Postgres,
    base: &CohortQuery,
    column: &str,
) -> Result<Vec<(Option<String>, usize)>> {
    let rs = pg.query(&base.levels_query(D, &Expr::col(column))?)?;
    let (level, n) = (&rs.columns[0].1, &rs.columns[1].1);
    Ok((0..rs.rows())
        .map(|r| (text(level, r), count(n, r)))
        .collect())
}

/// The text columns the analyses use (outcomes, weights, variables, the
/// cluster: those the loader reads `[data] na_values` in) that hold one of
/// the `na_values` somewhere in the table, found by one counting query; the
/// cohort query then reads those texts as NULL everywhere, as the loader
/// does on rows before the filters.
fn missing_texts(plan: &Plan, site: &mut Site) -> Result<Option<MissingTexts>> {
    let spec = &plan.cohort;
    if spec.na_values.is_empty() {
        return Ok(None);
    }
    let mut text_columns: Vec<String> = Vec::new();
    for c in healthgap_cohort::typed_columns(spec) {
        if plan.site_column.as_ref() != Some(&c) && matches!(site.type_of(&c)?, Values::Text(_)) {
            text_columns.push(c);
        }
    }
    if text_columns.is_empty() {
        return Ok(None);
    }
    let values: Vec<Literal> = spec
        .na_values
        .iter()
        .map(|v| Literal::Str(v.clone()))
        .collect();
    let conditions: Vec<Expr> = text_columns
        .iter()
        .map(|c| Expr::col(c.as_str()).in_list(values.clone()))
        .collect();
    let pg = site.pg.get_mut().map_err(|e| anyhow!("{e}"))?;
    let rs = pg.query(&site.base.source_count_query(D, &conditions)?)?;
    let columns: Vec<String> = text_columns
        .into_iter()
        .enumerate()
        .filter(|(k, _)| count(&rs.columns[*k].1, 0) > 0)
        .map(|(_, c)| c)
        .collect();
    Ok((!columns.is_empty()).then_some(MissingTexts { columns, values }))
}

/// The cohort rows at a site from which its session turns PostgreSQL's JIT
/// compilation back on (see `Postgres::with_jit`): measured slower at 1M
/// rows, faster at 10M; the threshold lies between, where the compilation
/// (a few seconds per statement) is about what it saves.
const JIT_ROWS: usize = 5_000_000;

/// Connects to every warehouse, and computes the cohort's aggregates (see
/// the module doc). Nothing is kept of a study one of whose sites fails.
pub fn load(plan: &Plan) -> Result<WarehouseCohort> {
    let context = || format!("{}", plan.config_path.display());
    load_inner(plan).with_context(context)
}

/// The plan's warehouses: the sites, or `[data] warehouse` as one unnamed
/// site.
fn warehouses(plan: &Plan) -> Result<Vec<(Option<&str>, &WarehousePlan)>> {
    if !plan.sites.is_empty() {
        return Ok(plan
            .sites
            .iter()
            .map(|s| (Some(s.name.as_str()), &s.warehouse))
            .collect());
    }
    let w = plan
        .warehouse
        .as_ref()
        .ok_or_else(|| anyhow!("the plan has no [data] warehouse"))?;
    Ok(vec![(None, w)])
}

/// Connects to one warehouse, probes the columns' types and restricts the
/// cohort query to the filters and the analysed groups (their literals of
/// the site's group column type). The attrition is counted once the
/// variables are typed ([`site_attrition`]).
fn open_site(
    plan: &Plan,
    name: Option<&str>,
    w: &WarehousePlan,
    group_values: &[String],
) -> Result<Site> {
    let spec = &plan.cohort;
    let mut pg = Postgres::connect(&w.url, w.password_env.as_deref())?;
    let mut base = CohortQuery::new(w.table.clone());
    for f in &spec.filters {
        base = base.filter(f)?;
    }
    check_columns(plan, &mut pg, &w.table)?;
    let mut columns = plan.cohort.columns()?;
    columns.retain(|c| Some(c) != plan.site_column.as_ref());
    let mut types = pg.query(&base.types_query(D, &columns)?)?;
    if let Some(c) = &plan.site_column {
        types.columns.push((c.clone(), Values::Text(Vec::new())));
    }
    let mut site = Site {
        name: name.map(str::to_string),
        pg: Mutex::new(pg),
        base,
        types,
        rows_read: 0,
        group_counts: Vec::new(),
    };
    site.base.missing_texts = missing_texts(plan, &mut site)?;
    text_outcomes_and_weights(plan, &mut site)?;
    let group_type = site.type_of(&spec.group_column)?;
    let group_literals = group_values
        .iter()
        .map(|v| literal(group_type, v))
        .collect::<Result<Vec<_>>>()?;
    site.base = site.base.groups(&spec.group_column, group_literals);
    Ok(site)
}

/// Each site reads its text columns of numeric variables as numbers (in the
/// filters too), then counts its attrition: the sites' counts summed (rows
/// read, then remaining after each step) and the steps' labels.
fn site_attrition(
    plan: &Plan,
    sites: &mut [Site],
    kinds: &[VarKind],
) -> Result<(Vec<usize>, Vec<String>)> {
    let mut total: Vec<usize> = Vec::new();
    let mut labels = Vec::new();
    for site in sites.iter_mut() {
        // (After the outcomes and weights stored as text, [`text_outcomes_and_weights`].)
        let numeric: Vec<String> = plan
            .cohort
            .variables
            .iter()
            .zip(kinds)
            .filter(|(v, k)| {
                matches!(k, VarKind::Numeric)
                    && plan.site_column.as_deref() != Some(v.name.as_str())
                    && site.holds_text(&v.name)
                    && !site.base.number_texts.contains(&v.name)
            })
            .map(|(v, _)| v.name.clone())
            .collect();
        site.base.number_texts.extend(numeric);
        let name = site.name.clone();
        let pg = site.pg.get_mut().map_err(|e| anyhow!("{e}"))?;
        let (n, l) = at_site(name.as_deref(), attrition_counts(pg, &site.base))?;
        site.rows_read = n[0];
        total.resize(n.len(), 0);
        total.iter_mut().zip(&n).for_each(|(t, k)| *t += k);
        labels = l;
    }
    Ok((total, labels))
}

/// Every column the study names is in the table, or an error that names the
/// config key naming it and the nearest column (as the loader says it of a
/// file).
pub(crate) fn check_columns(
    plan: &Plan,
    pg: &mut Postgres,
    table: &healthgap_sql::TableName,
) -> Result<()> {
    let names = pg.column_names(table)?;
    let (needed, _) = plan.cohort.column_roles()?;
    for (column, role) in needed {
        if plan.site_column.as_ref() == Some(&column) || names.contains(&column) {
            continue;
        }
        let suggestion = healthgap_cohort::error::nearest(&column, &names)
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        bail!("the warehouse table has no column `{column}`, which {role} names{suggestion}");
    }
    Ok(())
}

/// Outcomes and weights stored as text are numbers, as the loader parses
/// them on rows: every value (`na_values` missing) must be a finite decimal
/// number, counted in the engine, and every statement then reads the column
/// as a number ([`CohortQuery::number_texts`]); otherwise refused, naming
/// the least and greatest text that is not.
fn text_outcomes_and_weights(plan: &Plan, site: &mut Site) -> Result<()> {
    let spec = &plan.cohort;
    let roles = spec
        .outcomes
        .iter()
        .map(|o| (o.name.as_str(), "an outcome"))
        .chain(spec.weights.as_deref().map(|w| (w, "[design] weights")));
    for (name, role) in roles {
        if !matches!(site.type_of(name)?, Values::Text(_)) {
            continue;
        }
        let (present, numbers, others) = number_counts(site, name)?;
        if numbers < present {
            bail!(
                "column `{name}` ({role}): {} value(s) are not numbers: {}; if they mean \
                 \"missing\", list them in [data] na_values; otherwise correct the data",
                present - numbers,
                quoted(&others)
            );
        }
        site.base.number_texts.push(name.to_string());
    }
    Ok(())
}

/// A text column's values over the whole table (`na_values` missing): those
/// present, those that are finite decimal numbers, and the least and
/// greatest that are not ([`CohortQuery::number_texts_query`]).
fn number_counts(site: &mut Site, name: &str) -> Result<(usize, usize, Vec<String>)> {
    let pg = site.pg.get_mut().map_err(|e| anyhow!("{e}"))?;
    let rs = pg.query(&site.base.number_texts_query(D, name)?)?;
    let mut others: Vec<String> = Vec::new();
    for k in [2, 3] {
        if let Some(other) = text(&rs.columns[k].1, 0)
            && !others.contains(&other)
        {
            others.push(other);
        }
    }
    Ok((
        count(&rs.columns[0].1, 0),
        count(&rs.columns[1].1, 0),
        others,
    ))
}

/// Texts as a list for a message: `"a", "b"`.
fn quoted(texts: &[String]) -> String {
    texts
        .iter()
        .map(|t| format!("{t:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The share of a text column's values that must be numbers for the loader
/// to read an undeclared column as numeric (`cohort::typed`'s rule).
const NUMERIC_SHARE: f64 = 0.9;

/// Each variable's kind: as declared, else numeric for a numeric column and
/// for a text column whose values (over the whole table, `[data] na_values`
/// read as missing) are at least 90% finite decimal numbers, as the loader
/// decides on rows (the engine then casts the texts); categorical otherwise.
/// One counting query per text column and site decides it
/// ([`CohortQuery::number_texts_query`]). A text column read as numeric with
/// values that are not numbers is refused, naming the least and greatest.
fn variable_kinds(plan: &Plan, sites: &mut [Site]) -> Result<Vec<VarKind>> {
    let mut kinds = Vec::new();
    for v in &plan.cohort.variables {
        // Over the text sites: (present values, numbers, up to 3 others).
        let mut texts: Option<(usize, usize, Vec<String>)> = None;
        for s in sites.iter_mut() {
            let is_text = matches!(
                at_site(s.name.as_deref(), s.type_of(&v.name))?,
                Values::Text(_)
            );
            if !is_text || matches!(v.kind, Some(VarKind::Categorical { .. })) {
                continue;
            }
            if plan.site_column.as_deref() == Some(v.name.as_str()) {
                // The site's label: a text on every row, not in any table.
                if matches!(v.kind, Some(VarKind::Numeric)) {
                    bail!(
                        "[data] site_column `{}` holds each site's name: it cannot be declared \
                         numeric",
                        v.name
                    );
                }
                texts.get_or_insert_with(|| (1, 0, Vec::new()));
                continue;
            }
            let site_name = s.name.clone();
            let (present, numbers, others) =
                at_site(site_name.as_deref(), number_counts(s, &v.name))?;
            let t = texts.get_or_insert_with(|| (0, 0, Vec::new()));
            t.0 += present;
            t.1 += numbers;
            for other in others {
                if !t.2.contains(&other) {
                    t.2.push(other);
                }
            }
        }
        let numeric = match (&v.kind, &texts) {
            (Some(k), _) => matches!(k, VarKind::Numeric),
            (None, None) => true,
            (None, Some((present, numbers, _))) => {
                *present > 0 && *numbers as f64 >= NUMERIC_SHARE * *present as f64
            }
        };
        if let (true, Some((present, numbers, others))) = (numeric, &texts)
            && numbers < present
        {
            bail!(
                "column `{}`: {} value(s) are not numbers: {}; if they mean \"missing\", list \
                 them in [data] na_values; otherwise correct the data, or declare it type = \
                 \"categorical\"",
                v.name,
                present - numbers,
                quoted(others)
            );
        }
        kinds.push(match &v.kind {
            Some(k) => k.clone(),
            None if numeric => VarKind::Numeric,
            None => VarKind::Categorical {
                reference: None,
                absorb: false,
            },
        });
    }
    Ok(kinds)
}

/// What one site returned of the levels: the cluster's values, and each
/// categorical variable's level counts (`None` for a numeric one).
struct SiteLevelCounts {
    clusters: Vec<String>,
    variables: Vec<Option<Vec<(String, usize)>>>,
}

/// The levels of the cluster and of every categorical variable at one site
/// (the site column's: the site's name, on all its rows; after
/// [`group_counts`]).
fn site_levels(
    plan: &Plan,
    site: &mut Site,
    cluster_name: &str,
    kinds: &[VarKind],
) -> Result<SiteLevelCounts> {
    let spec = &plan.cohort;
    // The site column holds the site's name on its every row.
    let label = site.name.clone().unwrap_or_default();
    let own = |name: &str| plan.site_column.as_deref() == Some(name);
    let rows = site.group_counts.iter().sum();
    let pg = site.pg.get_mut().map_err(|e| anyhow!("{e}"))?;
    let mut clusters = Vec::new();
    // (A site without rows in the cohort has no level of its own.)
    if own(cluster_name) && rows > 0 {
        clusters.push(label.clone());
    }
    let cluster_levels = if own(cluster_name) {
        Vec::new()
    } else {
        levels_of(pg, &site.base, cluster_name)?
    };
    for (level, _) in cluster_levels {
        clusters.push(level.ok_or_else(|| {
            anyhow!(
                "the cluster column `{cluster_name}` has missing values; every row needs a cluster"
            )
        })?);
    }
    let mut variables = Vec::new();
    for (v, kind) in spec.variables.iter().zip(kinds) {
        variables.push(match kind {
            VarKind::Numeric => None,
            VarKind::Categorical { .. } if own(&v.name) => Some(
                (rows > 0)
                    .then(|| (label.clone(), rows))
                    .into_iter()
                    .collect(),
            ),
            VarKind::Categorical { .. } => Some(
                levels_of(pg, &site.base, &v.name)?
                    .into_iter()
                    .filter_map(|(l, n)| l.map(|l| (l, n)))
                    .collect(),
            ),
        });
    }
    Ok(SiteLevelCounts {
        clusters,
        variables,
    })
}

/// The loader's warning for text levels that look like missing-value codes
/// (`.`, `N/A`, `unknown`, …; not in `[data] na_values`), over the levels of
/// the text categorical variables and of a text cluster at every site.
/// (The loader looks at the whole column; here the levels are those among
/// the cohort's rows.)
fn missing_like_warnings(plan: &Plan, sites: &[Site], levels: &[SiteLevelCounts]) -> Vec<String> {
    let spec = &plan.cohort;
    let text = |name: &str| {
        plan.site_column.as_deref() != Some(name) && sites.iter().any(|s| s.holds_text(name))
    };
    let mut warnings = Vec::new();
    for (k, v) in spec.variables.iter().enumerate() {
        let texts: Vec<Option<String>> = levels
            .iter()
            .filter_map(|l| l.variables[k].as_ref())
            .flatten()
            .map(|(level, _)| Some(level.clone()))
            .collect();
        if text(&v.name) && !texts.is_empty() {
            warnings.extend(healthgap_cohort::missing_like_levels(&v.name, &texts));
        }
    }
    if let Some(c) = spec.cluster.as_deref().filter(|c| text(c)) {
        let texts: Vec<Option<String>> = levels
            .iter()
            .flat_map(|l| l.clusters.iter().map(|x| Some(x.clone())))
            .collect();
        warnings.extend(healthgap_cohort::missing_like_levels(c, &texts));
    }
    warnings
}

fn load_inner(plan: &Plan) -> Result<WarehouseCohort> {
    let spec = &plan.cohort;
    let mut group_values = vec![spec.reference.clone()];
    group_values.extend(spec.compare.iter().cloned());
    let mut sites = Vec::new();
    for (name, w) in warehouses(plan)? {
        sites.push(at_site(name, open_site(plan, name, w, &group_values))?);
    }
    let cluster_name = spec
        .cluster
        .clone()
        .ok_or_else(|| anyhow!("[design] cluster is required in the warehouse"))?;
    let kinds = variable_kinds(plan, &mut sites)?;
    let (attrition_n, step_labels) = site_attrition(plan, &mut sites, &kinds)?;
    let attrition = attrition_steps(plan, &attrition_n, step_labels)?;
    let mut levels = Vec::new();
    let mut counts = GroupCounts::default();
    let finite = finite_columns(plan, &kinds);
    for site in &mut sites {
        let name = site.name.clone();
        let pg = site.pg.get_mut().map_err(|e| anyhow!("{e}"))?;
        let site_counts = at_site(
            name.as_deref(),
            group_counts(pg, &site.base, plan, &group_values, &finite),
        )?;
        site.group_counts = site_counts.rows.clone();
        if site.group_counts.iter().sum::<usize>() >= JIT_ROWS {
            at_site(name.as_deref(), pg.with_jit().map_err(anyhow::Error::from))?;
        }
        counts.add(site_counts);
        if let Some(w) = &spec.weights {
            let weight = Expr::col(w.as_str());
            at_site(name.as_deref(), check_weights(pg, &site.base, w, &weight))?;
            site.base.weight = Some(weight);
        }
        let l = at_site(
            name.as_deref(),
            site_levels(plan, site, &cluster_name, &kinds),
        )?;
        levels.push(l);
    }
    for o in spec.outcomes.iter().filter(|o| o.event.is_some()) {
        let mut values = BTreeSet::new();
        for site in &mut sites {
            let name = site.name.clone();
            let pg = site.pg.get_mut().map_err(|e| anyhow!("{e}"))?;
            let levels = at_site(name.as_deref(), levels_of(pg, &site.base, &o.name))?;
            values.extend(levels.into_iter().filter_map(|(l, _)| l));
        }
        check_event_values(o, &values)?;
    }
    let missing = std::mem::take(&mut counts.missing);
    if let Some(g) = counts.rows.iter().position(|n| *n == 0) {
        bail!(
            "group `{}` has no rows after the filters ({}); relax [cohort] filters or drop it \
             from [groups]",
            group_values[g],
            spec.filters.join("; ")
        );
    }
    let names: Vec<String> = sites
        .iter()
        .map(|s| s.name.clone().unwrap_or_default())
        .collect();
    let clusters = cluster_levels(&levels, &names);
    let (variables, merge_warnings) = combined_kinds(plan, &kinds, &levels, &names)?;
    let mut warnings = missing_like_warnings(plan, &sites, &levels);
    warnings.extend(merge_warnings);
    let labels = display_labels(plan, &group_values);
    let facts = CohortFacts {
        source: "warehouse".into(),
        files: Vec::new(),
        rows_read: attrition.0,
        warehouse: None,
        clusters: Some((cluster_name.clone(), clusters.len())),
        group_labels: labels.clone(),
        group_counts: counts.rows.clone(),
        attrition: attrition.1,
        table1: Vec::new(),
        table1_complete: None,
        disclosure: Disclosure {
            group_labels: labels,
            group_counts: counts.rows,
            outcome_counts: counts.events,
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
    let together = outcomes_together(plan, &missing);
    Ok(WarehouseCohort {
        sites,
        group_values,
        clusters,
        cluster_name,
        variables,
        site_column: plan.site_column.clone(),
        facts,
        min_cell: plan.min_cell,
        missing,
        warnings,
        together,
        outcomes: spec.outcomes.clone(),
        pulled: Mutex::new(Vec::new()),
        counted: Mutex::new(Vec::new()),
    })
}

/// The outcomes some analysis uses that have no missing value (indices into
/// `[outcomes]`): with the same complete cases over any variables, one
/// moment set holds all of them, and the products of the design columns,
/// most of a pass's work, are computed once.
fn outcomes_together(plan: &Plan, missing: &[(String, Vec<usize>)]) -> Vec<usize> {
    plan.cohort
        .outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| plan.analyses.iter().any(|a| a.outcomes.contains(&o.name)))
        .filter(|(_, o)| missing.iter().all(|(m, _)| *m != o.name))
        .map(|(k, _)| k)
        .collect()
}

/// The clusters keyed per site, in natural order of the value, then the
/// sites' order.
fn cluster_levels(levels: &[SiteLevelCounts], names: &[String]) -> SiteLevels {
    let at: Vec<HashSet<String>> = levels
        .iter()
        .map(|l| l.clusters.iter().cloned().collect())
        .collect();
    // The union in byte order, then natural order (a stable sort: values
    // that natural order ties, such as `01` and `1`, keep a fixed order).
    let mut values: Vec<String> = at
        .iter()
        .flatten()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    values.sort_by(|a, b| natural_cmp(a, b));
    SiteLevels::new(&values, &at, names)
}

/// Each variable's coding from the union of its levels over the sites (the
/// counts summed): the loader's level order ([`categorical_levels`]) and
/// absorption rule (declared, or more than [`ABSORB_THRESHOLD`] levels); an
/// absorbed variable's levels keyed per site.
fn combined_kinds(
    plan: &Plan,
    kinds: &[VarKind],
    levels: &[SiteLevelCounts],
    names: &[String],
) -> Result<(Variables, Vec<String>)> {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for (k, (v, kind)) in plan.cohort.variables.iter().zip(kinds).enumerate() {
        let VarKind::Categorical { reference, absorb } = kind else {
            out.push((v.name.clone(), v.block.clone(), Kind::Numeric));
            continue;
        };
        let per_site: Vec<&Vec<(String, usize)>> = levels
            .iter()
            .filter_map(|l| l.variables[k].as_ref())
            .collect();
        let mut observed: Vec<(String, usize)> = Vec::new();
        for (level, n) in per_site.iter().copied().flatten() {
            match observed.iter_mut().find(|(l, _)| l == level) {
                Some((_, total)) => *total += n,
                None => observed.push((level.clone(), *n)),
            }
        }
        // `min_count`: rare levels merged into `other`, as the loader merges.
        let originals: Vec<String> = observed.iter().map(|(l, _)| l.clone()).collect();
        let (observed, joins, merge_warning) = match v.min_count {
            Some(min) => merge_rare_level_counts(&observed, min, reference.as_deref(), &v.name),
            None => {
                let joins = observed.iter().map(|(l, _)| l.clone()).collect();
                (observed, joins, None)
            }
        };
        let ordered = categorical_levels(&observed, reference.clone())
            .map_err(|message| anyhow!("column `{}`: {message}", v.name))?;
        let kind = if *absorb || ordered.len() > ABSORB_THRESHOLD {
            if merge_warning.is_some() {
                bail!(
                    "[variables] {}: min_count merges levels of a variable absorbed as fixed \
                     effects (declared absorb = true or more than {ABSORB_THRESHOLD} levels), \
                     which the warehouse path keys per site and does not merge; drop min_count or \
                     {}",
                    v.name,
                    export(plan)
                );
            }
            let at: Vec<HashSet<String>> = per_site
                .iter()
                .map(|l| l.iter().map(|(level, _)| level.clone()).collect())
                .collect();
            Kind::Absorbed(SiteLevels::new(&ordered, &at, names))
        } else {
            let counts = ordered
                .iter()
                .map(|l| observed.iter().find(|(o, _)| o == l).map_or(0, |(_, n)| *n))
                .collect();
            let merged = if merge_warning.is_some() {
                originals
                    .iter()
                    .zip(&joins)
                    .filter_map(|(o, j)| {
                        ordered.iter().position(|l| l == j).map(|k| (o.clone(), k))
                    })
                    .collect()
            } else {
                Vec::new()
            };
            Kind::Categorical {
                levels: ordered,
                counts,
                merged,
            }
        };
        warnings.extend(merge_warning);
        out.push((v.name.clone(), v.block.clone(), kind));
    }
    Ok((out, warnings))
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
        if let Kind::Categorical { levels, counts, .. } = kind {
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

/// One site's attrition counts (rows read, then remaining after each filter
/// and the groups) and the steps' labels, from one counting query. An empty
/// table is an error.
fn attrition_counts(pg: &mut Postgres, base: &CohortQuery) -> Result<(Vec<usize>, Vec<String>)> {
    let q = base.attrition_query(D)?;
    let rs = pg.query(&q.sql)?;
    if rs.rows() != 1 {
        bail!("the attrition query returned {} rows", rs.rows());
    }
    let n: Vec<usize> = rs.columns.iter().map(|(_, v)| count(v, 0)).collect();
    if n.first().is_none_or(|n| *n == 0) {
        bail!("the data have no rows: the warehouse table is empty");
    }
    let labels = q.columns.iter().skip(1).map(|c| c.label.clone()).collect();
    Ok((n, labels))
}

/// Rows read and the attrition steps (each filter, then the groups) from
/// the counts of every site summed.
fn attrition_steps(
    plan: &Plan,
    n: &[usize],
    mut labels: Vec<String>,
) -> Result<(usize, Vec<AttritionStep>)> {
    if n.last().is_none_or(|n| *n == 0) {
        bail!(
            "the data have no rows after the filters and the groups ({}): relax [cohort] filters \
             or check [groups]",
            plan.cohort.filters.join("; ")
        );
    }
    let spec = &plan.cohort;
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

/// Refuses a weight that is missing or not positive, as the loader does:
/// one counting query.
fn check_weights(pg: &mut Postgres, base: &CohortQuery, name: &str, weight: &Expr) -> Result<()> {
    let bad = weight
        .clone()
        .is_null(false)
        .or(weight.clone().cmp(healthgap_sql::CmpOp::Le, Expr::num(0.0)));
    let rs = pg.query(&base.count_query(D, &[bad])?)?;
    let found: usize = (0..rs.rows()).map(|r| count(&rs.columns[2].1, r)).sum();
    if found > 0 {
        bail!(
            "column `{name}` ([design] weights): weights must be positive numbers; {found} row(s) \
             hold a missing value, zero or a negative number; correct them, or leave those rows \
             out with a [cohort] filter (e.g. \"{name} > 0\")"
        );
    }
    Ok(())
}

/// The row of each group (in `group_values`' order) in a result whose first
/// column is the group's value (a group may have no row at a site).
fn group_rows(rs: &ResultSet, group_values: &[String]) -> Vec<Option<usize>> {
    group_values
        .iter()
        .map(|g| (0..rs.rows()).find(|&r| text(&rs.columns[0].1, r).as_deref() == Some(g)))
        .collect()
}

/// `outcome = 1`, or `outcome = v` for a binary outcome declared with
/// `event = v`.
fn event_condition(column: Expr, o: &OutcomeSpec) -> Expr {
    column.cmp(healthgap_sql::CmpOp::Eq, Expr::num(o.event.unwrap_or(1.0)))
}

/// The outcome's value in the moments: the column, or for `event = v` the
/// column recoded to 1 (the event), 0 (the other value) and NULL (missing),
/// as the loader recodes it.
fn outcome_value(column: Expr, o: &OutcomeSpec) -> Expr {
    if o.event.is_none() {
        return column;
    }
    Expr::Case {
        whens: vec![
            (event_condition(column.clone(), o), Expr::num(1.0)),
            (column.is_null(true), Expr::num(0.0)),
        ],
        otherwise: None,
    }
}

/// A binary outcome declared with `event = v` holds at most two values, one
/// of them `v` (the loader's check), over every site's levels of it.
fn check_event_values(o: &OutcomeSpec, values: &BTreeSet<String>) -> Result<()> {
    let Some(e) = o.event else {
        return Ok(());
    };
    let numbers: Vec<f64> = values.iter().filter_map(|v| v.parse().ok()).collect();
    if values.len() > 2 || (!values.is_empty() && !numbers.contains(&e)) {
        let shown: Vec<&str> = values.iter().take(3).map(String::as_str).collect();
        bail!(
            "outcome `{}`: declared binary with event = {e}, but its values are {}{}; a binary \
             outcome has two values, one of them the event",
            o.name,
            shown.join(", "),
            if values.len() > 3 { ", …" } else { "" }
        );
    }
    Ok(())
}

/// The numeric columns whose values must be finite: the continuous outcomes,
/// the numeric variables (not the site column) and the weights.
fn finite_columns(plan: &Plan, kinds: &[VarKind]) -> Vec<String> {
    let spec = &plan.cohort;
    let outcomes = spec
        .outcomes
        .iter()
        .filter(|o| o.kind != OutcomeKind::Binary)
        .map(|o| o.name.clone());
    let variables = spec
        .variables
        .iter()
        .zip(kinds)
        .filter(|(v, k)| {
            matches!(k, VarKind::Numeric) && plan.site_column.as_deref() != Some(v.name.as_str())
        })
        .map(|(v, _)| v.name.clone());
    outcomes
        .chain(variables)
        .chain(spec.weights.iter().cloned())
        .collect()
}

/// One site's rows per group, (events, rows with the outcome) per group of
/// each binary outcome and the missing rows per group of every outcome and
/// variable that has some (a group may have no rows at a site; each analysis
/// takes its complete cases, [`complete_cases`]). Refuses binary outcomes
/// not coded 0/1, and NaN or infinite values in the `finite` columns (as the
/// loader refuses them among the analysed rows).
fn group_counts(
    pg: &mut Postgres,
    base: &CohortQuery,
    plan: &Plan,
    group_values: &[String],
    finite: &[String],
) -> Result<GroupCounts> {
    let spec = &plan.cohort;
    let mut columns: Vec<&str> = spec.outcomes.iter().map(|o| o.name.as_str()).collect();
    columns.extend(
        spec.variables
            .iter()
            .map(|v| v.name.as_str())
            .filter(|v| plan.site_column.as_deref() != Some(*v)),
    );
    let mut conditions: Vec<Expr> = columns
        .iter()
        .map(|c| Expr::col(*c).is_null(false))
        .collect();
    let binary: Vec<&OutcomeSpec> = spec
        .outcomes
        .iter()
        .filter(|o| o.kind == OutcomeKind::Binary)
        .collect();
    conditions.extend(
        binary
            .iter()
            .map(|o| event_condition(Expr::col(o.name.as_str()), o)),
    );
    // Coded 0/1 (an `event` value's outcome is checked by its levels).
    let coded: Vec<&str> = binary
        .iter()
        .filter(|o| o.event.is_none())
        .map(|o| o.name.as_str())
        .collect();
    conditions.extend(coded.iter().map(|name| {
        Expr::col(*name)
            .in_list(vec![Literal::Number(0.0), Literal::Number(1.0)])
            .not()
    }));
    let first_finite = 2 + conditions.len();
    // c·0 ≠ 0 holds for NaN and ±∞ only (NaN ≠ 0 in every engine's order).
    conditions.extend(finite.iter().map(|c| {
        Expr::col(c.as_str())
            .arith(ArithOp::Mul, Expr::num(0.0))
            .cmp(CmpOp::Ne, Expr::num(0.0))
    }));
    let rs = pg.query(&base.count_query(D, &conditions)?)?;
    let at = |r: Option<usize>, k: usize| r.map_or(0, |r| count(&rs.columns[k].1, r));
    let rows = group_rows(&rs, group_values);
    let counts: Vec<usize> = rows.iter().map(|r| at(*r, 1)).collect();
    let mut missing = Vec::new();
    for (k, c) in columns.iter().enumerate() {
        let per_group: Vec<usize> = rows.iter().map(|r| at(*r, 2 + k)).collect();
        if per_group.iter().any(|m| *m > 0) {
            missing.push((c.to_string(), per_group));
        }
    }
    for (j, c) in finite.iter().enumerate() {
        let n: usize = rows.iter().map(|r| at(*r, first_finite + j)).sum();
        if n > 0 {
            bail!(
                "column `{c}`: {n} non-finite value(s) (NaN or infinite) among the analysed rows; \
                 replace them by numbers or leave them empty (missing)"
            );
        }
    }
    let first_event = 2 + columns.len();
    let first_check = first_event + binary.len();
    for (b, name) in coded.iter().enumerate() {
        if rows.iter().any(|r| at(*r, first_check + b) > 0) {
            bail!("outcome `{name}`: declared binary but holds values other than 0 and 1");
        }
    }
    let mut events = Vec::new();
    for (b, o) in binary.iter().enumerate() {
        let name = o.name.as_str();
        let k = first_event + b;
        // The rows with the outcome (as the loader counts finite values).
        let absent = missing.iter().find(|(c, _)| *c == name).map(|(_, m)| m);
        let per_group = rows
            .iter()
            .zip(&counts)
            .enumerate()
            .map(|(g, (r, n))| (at(*r, k), n - absent.map_or(0, |m| m[g])))
            .collect();
        events.push((name.to_string(), per_group));
    }
    Ok(GroupCounts {
        rows: counts,
        events,
        missing,
    })
}

impl WarehouseCohort {
    /// The cohort's facts, with the statements run so far: a federated
    /// study's in each site's record, with its counts suppressed as parts of
    /// the shown totals ([`suppress::parts`]).
    pub fn facts(&self) -> CohortFacts {
        let mut facts = self.facts.clone();
        let statements = |s: &Site| {
            s.pg.lock()
                .map(|pg| (pg.target().to_string(), pg.statements().to_vec()))
                .unwrap_or_default()
        };
        let [single] = self.sites.as_slice() else {
            facts.warehouse = Some(self.sites_info(&statements));
            return facts;
        };
        if single.name.is_none() {
            let (server, queries) = statements(single);
            facts.warehouse = Some(WarehouseInfo {
                engine: "postgres".into(),
                server,
                row_export: false,
                queries,
                sites: Vec::new(),
            });
        } else {
            facts.warehouse = Some(self.sites_info(&statements));
        }
        facts
    }

    /// results.json `data.warehouse` of a federated study.
    fn sites_info(&self, statements: &dyn Fn(&Site) -> (String, Vec<String>)) -> WarehouseInfo {
        let m = self.min_cell;
        let rows_read = suppress::parts(
            &self.sites.iter().map(|s| s.rows_read).collect::<Vec<_>>(),
            m,
        );
        let per_group: Vec<Vec<Option<usize>>> = (0..self.group_values.len())
            .map(|g| {
                let n: Vec<usize> = self.sites.iter().map(|s| s.group_counts[g]).collect();
                suppress::parts(&n, m)
            })
            .collect();
        let sites = self
            .sites
            .iter()
            .enumerate()
            .map(|(k, s)| {
                let (server, queries) = statements(s);
                SiteInfo {
                    name: s.name.clone().unwrap_or_default(),
                    engine: "postgres".into(),
                    server,
                    rows_read: rows_read[k],
                    groups: self
                        .facts
                        .group_labels
                        .iter()
                        .zip(&per_group)
                        .map(|(label, n)| GroupCount {
                            label: label.clone(),
                            n: n[k],
                        })
                        .collect(),
                    queries,
                }
            })
            .collect::<Vec<_>>();
        let names: Vec<&str> = sites.iter().map(|s| s.name.as_str()).collect();
        WarehouseInfo {
            engine: "postgres".into(),
            server: format!("{} sites: {}", sites.len(), names.join(", ")),
            row_export: false,
            queries: Vec::new(),
            sites,
        }
    }

    /// The layout of `variables` and, per site, the covariates of the
    /// moment queries (the dummies' literals of the site's column types).
    /// With `absorb`, that categorical variable is the absorbed one
    /// ([`WarehouseCohort::forced_absorbed`]).
    fn layout(
        &self,
        variables: &[String],
        absorb: Option<&str>,
    ) -> Result<(Covariates, Vec<Vec<Covariate>>), DecomposeError> {
        let mut cov = Covariates::default();
        let mut sql = vec![Vec::new(); self.sites.len()];
        let mut absorbed: Vec<Absorbed> = Vec::new();
        for name in variables {
            let Some((_, block, kind)) = self.variables.iter().find(|(n, _, _)| n == name) else {
                continue;
            };
            if absorb.is_some() && matches!(kind, Kind::Absorbed(_)) {
                return Err(DecomposeError::AbsorbedInAdjust {
                    variable: name.clone(),
                });
            }
            match kind {
                Kind::Numeric => {
                    cov.columns.push(Column {
                        name: name.clone(),
                        factor: block.clone(),
                        values: Vec::new(),
                    });
                    for (site, s) in self.sites.iter().zip(&mut sql) {
                        s.push(Covariate::Numeric {
                            name: name.clone(),
                            expr: self.column(site, name),
                        });
                    }
                }
                Kind::Absorbed(levels) => absorbed.push(Absorbed {
                    variable: name.clone(),
                    factor: block.clone(),
                    codes: Vec::new(),
                    levels: levels.len(),
                    labels: levels.labels.clone(),
                }),
                Kind::Categorical { levels, merged, .. } => {
                    let Some(reference) = levels.first() else {
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
                    for (site, s) in self.sites.iter().zip(&mut sql) {
                        let expr = self.column(site, name);
                        s.push(dummies(site, name, expr, levels, merged)?);
                    }
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
        cov.absorbed = match absorb {
            Some(name) => Some(self.forced_absorbed(name)?),
            None => absorbed.pop(),
        };
        Ok((cov, sql))
    }

    /// The categorical `name` as an absorbed variable whatever its number
    /// of levels (as [`healthgap_cohort::design::absorbed`] on rows), in the
    /// care-site block.
    fn forced_absorbed(&self, name: &str) -> Result<Absorbed, DecomposeError> {
        let labels = match self.variables.iter().find(|(n, _, _)| n == name) {
            Some((_, _, Kind::Absorbed(levels))) => levels.labels.clone(),
            Some((_, _, Kind::Categorical { levels, .. })) => levels.clone(),
            _ => {
                return Err(DecomposeError::NotCategorical {
                    variable: name.to_string(),
                });
            }
        };
        Ok(Absorbed {
            variable: name.to_string(),
            factor: "care_site".into(),
            codes: Vec::new(),
            levels: labels.len(),
            labels,
        })
    }

    /// The cells of every group over `variables` and outcome `outcome`, per
    /// site (pulled once, then shared by the comparisons and analyses: see
    /// [`WarehouseCohort::pull`]). An outcome without missing values is
    /// pulled with the others of [`WarehouseCohort::together`] and its own
    /// moments are selected from the set.
    fn moments(
        &self,
        outcome: usize,
        variables: &[String],
        cov: &Covariates,
        sql: Vec<Vec<Covariate>>,
    ) -> Result<SiteCells, DecomposeError> {
        let failed = |e: String| DecomposeError::Design(format!("warehouse moments: {e}"));
        let pulled = if self.together.contains(&outcome) {
            self.together.clone()
        } else {
            vec![outcome]
        };
        let mut statements = Vec::new();
        let mut design = 0;
        for (site, covariates) in self.sites.iter().zip(sql) {
            let mut q = site.base.clone();
            let value = |k: usize| {
                let o = &self.outcomes[k];
                outcome_value(self.column(site, &o.name), o)
            };
            q.outcomes = vec![Outcome {
                name: self.outcomes[pulled[0]].name.clone(),
                expr: value(pulled[0]),
            }];
            q.cluster = Some(self.column(site, &self.cluster_name));
            q.hospital = cov
                .absorbed
                .as_ref()
                .map(|a| self.column(site, &a.variable));
            q.covariates = covariates;
            let columns = q
                .design_columns()
                .map_err(|e| failed(format!("{}{e}", site.prefix())))?
                .len();
            // Every site has the same layout (the selection below relies on it).
            if statements.is_empty() {
                design = columns;
            } else if columns != design {
                return Err(failed(format!(
                    "{}{columns} design columns where the first site has {design}",
                    site.prefix()
                )));
            }
            // The other outcomes as design columns after the covariates.
            q.covariates
                .extend(pulled[1..].iter().map(|&k| Covariate::Numeric {
                    name: self.outcomes[k].name.clone(),
                    expr: value(k),
                }));
            let mut names: Vec<&str> = variables.iter().map(String::as_str).collect();
            names.extend(cov.absorbed.as_ref().map(|a| a.variable.as_str()));
            if let Some(step) = self.complete_step(site, &names) {
                q.steps.push(step);
            }
            let mut keys = vec![Key::Group];
            if q.hospital.is_some() {
                keys.push(Key::Hospital);
            }
            keys.push(Key::Cluster);
            let spec = MomentSpec::all(&q, keys, Some(0))
                .map_err(|e| failed(format!("{}{e}", site.prefix())))?;
            statements.push((q, spec));
        }
        let cells = self.pull(statements)?;
        if pulled.len() == 1 {
            return Ok(cells);
        }
        // v = (x_1, …, x_p, the other outcomes, the first outcome).
        let at = match pulled.iter().position(|&k| k == outcome) {
            Some(0) | None => design + pulled.len() - 1,
            Some(i) => design + i - 1,
        };
        let vars: Vec<usize> = (0..design).chain([at]).collect();
        Ok(Arc::new(
            cells
                .iter()
                .map(|site| {
                    site.iter()
                        .map(|c| Cell {
                            keys: c.keys.clone(),
                            moments: c.moments.select(&vars),
                        })
                        .collect()
                })
                .collect(),
        ))
    }

    /// The cells of each site's (cohort query, moment spec), pulled unless
    /// the same statements were pulled before.
    fn pull(
        &self,
        statements: Vec<(CohortQuery, MomentSpec)>,
    ) -> Result<SiteCells, DecomposeError> {
        let failed = |e: String| DecomposeError::Design(format!("warehouse moments: {e}"));
        if let Some((_, cells)) = self
            .pulled
            .lock()
            .map_err(|e| failed(e.to_string()))?
            .iter()
            .find(|(k, _)| *k == statements)
        {
            return Ok(Arc::clone(cells));
        }
        let mut per_site = Vec::new();
        for (site, (q, spec)) in self.sites.iter().zip(&statements) {
            let in_site = |e: String| failed(format!("{}{e}", site.prefix()));
            let mut pg = site.pg.lock().map_err(|e| in_site(e.to_string()))?;
            per_site.push(cell_moments(&mut pg, q, spec).map_err(|e| in_site(e.to_string()))?);
        }
        let cells = Arc::new(per_site);
        self.pulled
            .lock()
            .map_err(|e| failed(e.to_string()))?
            .push((statements, Arc::clone(&cells)));
        Ok(cells)
    }

    /// The SQL value of column `name` at `site`: the column, or the site's
    /// name as a constant for `[data] site_column`.
    fn column(&self, site: &Site, name: &str) -> Expr {
        match (&site.name, &self.site_column) {
            (Some(label), Some(c)) if c == name => Expr::text(label.as_str()),
            _ => Expr::col(name),
        }
    }

    /// The code of level `value` at site `site` of the absorbed `variable`:
    /// keyed per site when it is absorbed by its kind, the position among the
    /// levels of a categorical one (a forced absorption, coded as its
    /// dummies are).
    fn absorbed_code(&self, variable: &str, site: usize, value: &str) -> Option<u32> {
        self.variables.iter().find_map(|(n, _, k)| match k {
            _ if n != variable => None,
            Kind::Absorbed(levels) => levels.code(site, value),
            Kind::Categorical { merged, .. } if !merged.is_empty() => merged
                .iter()
                .find(|(o, _)| o == value)
                .map(|(_, k)| *k as u32),
            Kind::Categorical { levels, .. } => {
                levels.iter().position(|l| l == value).map(|p| p as u32)
            }
            Kind::Numeric => None,
        })
    }
}

/// A categorical covariate's dummies at one site: `CASE` on its levels as
/// literals of the site's column type.
fn dummies(
    site: &Site,
    name: &str,
    expr: Expr,
    levels: &[String],
    merged: &[(String, usize)],
) -> Result<Covariate, DecomposeError> {
    let failed = |e: anyhow::Error| {
        let at = site.prefix();
        DecomposeError::Design(format!("warehouse moments: {at}column `{name}`: {e:#}"))
    };
    let ty = site.type_of(name).map_err(failed)?;
    if !merged.is_empty() {
        return merged_dummies(name, expr, ty, levels, merged).map_err(failed);
    }
    let literals = levels
        .iter()
        .map(|l| literal(ty, l))
        .collect::<Result<Vec<_>>>()
        .map_err(failed)?;
    let reference = literals
        .first()
        .cloned()
        .ok_or_else(|| DecomposeError::Design(format!("`{name}` has no levels")))?;
    Ok(Covariate::Categorical {
        name: name.to_string(),
        expr,
        reference,
        levels: literals,
    })
}

/// The dummies of a categorical whose rare levels `min_count` merged: the
/// column mapped by `CASE` to the position of the level each value joins
/// (NULL stays NULL), with a dummy per position but the reference's (0).
fn merged_dummies(
    name: &str,
    expr: Expr,
    ty: &Values,
    levels: &[String],
    merged: &[(String, usize)],
) -> Result<Covariate> {
    let whens = merged
        .iter()
        .map(|(value, k)| {
            Ok((
                expr.clone()
                    .cmp(healthgap_sql::CmpOp::Eq, Expr::Lit(literal(ty, value)?)),
                Expr::num(*k as f64),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Covariate::Categorical {
        name: name.to_string(),
        expr: Expr::Case {
            whens,
            otherwise: None,
        },
        reference: Literal::Number(0.0),
        levels: (0..levels.len())
            .map(|k| Literal::Number(k as f64))
            .collect(),
    })
}

/// Raw moments over (x_1, …, x_p, y) as a cell's moments over (1, x_j for
/// j in `keep`) and y: the intercept's are Σw, Σwx and Σwy.
fn cluster_moments(m: &CellMoments, keep: &[usize]) -> ClusterMoments {
    let k = keep.len() + 1;
    let y = m.sums.len() - 1;
    let at = |i: usize| if i == 0 { None } else { Some(keep[i - 1]) };
    let mut out = ClusterMoments {
        w: m.sum_w,
        x: vec![0.0; k],
        xx: vec![0.0; k * k],
        xy: vec![0.0; k],
        y: m.sums[y],
        yy: m.product(y, y),
    };
    for i in 0..k {
        out.x[i] = at(i).map_or(m.sum_w, |a| m.sums[a]);
        out.xy[i] = at(i).map_or(m.sums[y], |a| m.product(a, y));
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
        self.cells_absorbing(variables, None)
    }

    fn absorbed_cells(
        &self,
        variables: &[String],
        absorbed: &str,
    ) -> Result<(Arc<Covariates>, Cells), DecomposeError> {
        self.cells_absorbing(variables, Some(absorbed))
    }
}

impl Source<'_> {
    /// The cells over `variables`, with `absorb` absorbed when given.
    fn cells_absorbing(
        &self,
        variables: &[String],
        absorb: Option<&str>,
    ) -> Result<(Arc<Covariates>, Cells), DecomposeError> {
        let wc = self.cohort;
        let (mut cov, sql) = wc.layout(variables, absorb)?;
        let per_site = wc.moments(self.outcome, variables, &cov, sql)?;
        let coded = self.coded(
            &per_site,
            cov.absorbed.as_ref().map(|a| a.variable.as_str()),
        )?;
        // Coded over what occurs among the complete cases of every group.
        let occurring = Occurring::of(&coded, wc.clusters.len(), &mut cov);
        let mut inputs = Vec::new();
        for c in &coded {
            let group = match c.group {
                0 => 0,
                g if g == self.comparison => 1,
                _ => continue,
            };
            let (Some(level), Some(cluster)) = (
                occurring.levels[c.level as usize],
                occurring.clusters[c.cluster as usize],
            ) else {
                continue;
            };
            inputs.push(CellInput {
                group,
                level,
                cluster,
                rows: c.cell.moments.count.round() as usize,
                moments: cluster_moments(&c.cell.moments, &occurring.columns),
            });
        }
        let mut names = vec![INTERCEPT.to_string()];
        names.extend(cov.columns.iter().map(|c| c.name.clone()));
        let levels = cov.absorbed.as_ref().map_or(1, |a| a.levels);
        let cells = Cells::from_moments(names, levels, occurring.cluster_count, inputs)?;
        Ok((Arc::new(cov), cells))
    }

    /// Every site's cells with their group, absorbed level and cluster
    /// codes (an unknown key is an error that names it).
    fn coded<'c>(
        &self,
        per_site: &'c [Vec<Cell>],
        absorbed: Option<&str>,
    ) -> Result<Vec<Coded<'c>>, DecomposeError> {
        let wc = self.cohort;
        let mut out = Vec::new();
        for (s, cells) in per_site.iter().enumerate() {
            let unknown = |what: &str, v: &Option<String>| {
                let at = wc.sites[s].prefix();
                DecomposeError::Design(format!(
                    "warehouse moments: {at}a cell's {what} `{}` is not among the cohort's",
                    v.as_deref().unwrap_or("NULL")
                ))
            };
            for cell in cells {
                let key = |k: usize| cell.keys.get(k).cloned().flatten();
                let group = key(0);
                let Some(group_index) = wc
                    .group_values
                    .iter()
                    .position(|v| Some(v) == group.as_ref())
                else {
                    return Err(unknown("group", &group));
                };
                let (level, cluster) = if absorbed.is_some() {
                    (key(1), key(2))
                } else {
                    (None, key(1))
                };
                let level = match absorbed {
                    Some(variable) => level
                        .as_deref()
                        .and_then(|l| wc.absorbed_code(variable, s, l))
                        .ok_or_else(|| unknown("level", &level))?,
                    None => 0,
                };
                let cluster = cluster
                    .as_deref()
                    .and_then(|c| wc.clusters.code(s, c))
                    .ok_or_else(|| unknown("cluster", &cluster))?;
                out.push(Coded {
                    group: group_index,
                    level,
                    cluster,
                    cell,
                });
            }
        }
        Ok(out)
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
    let variables = analysis_variables(plan, a);
    let mut out = Vec::new();
    let mut failures = Vec::new();
    for outcome in &a.outcomes {
        let Some(o) = facts.outcomes.iter().position(|x| &x.name == outcome) else {
            bail!("outcome `{outcome}` is not in [outcomes]");
        };
        let binary = facts.outcomes[o].binary;
        // This outcome's complete cases over the analysis's variables.
        let complete = wc
            .complete_cases(o, &variables)
            .with_context(|| format!("counting the complete cases of `{outcome}`"))?;
        let empty = EmptyGroups::of(outcome, &complete.steps, &facts.group_labels);
        if empty.all(&mut failures) {
            continue;
        }
        for k in 1..facts.group_labels.len() {
            if empty.comparison(k, &mut failures) {
                continue;
            }
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
            // The two groups' complete cases.
            let sample_counts = [0, k].map(|g| {
                let events = complete.events.as_ref().map(|e| e[g]);
                (complete.rows[g], binary.then_some(events.unwrap_or(0)))
            });
            let (attrition, missing_warnings) = complete_case_report(
                &complete.steps,
                &facts.group_counts,
                &facts.group_labels,
                [0, k],
                plan.min_cell,
            );
            let comparison = Comparison {
                analysis: a,
                outcome,
                labels,
                binary,
                weighted: plan.cohort.weights.is_some(),
                sample_counts,
                attrition,
                missing_warnings,
            };
            match comparison.result(ran) {
                Ok(result) => out.push(result),
                Err(reason) => failures.push(reason),
            }
        }
    }
    AnalysisRun::finish(a, observer, out, failures)
}

/// Every analysis with its inference, from the warehouse's moments; the
/// study as [`crate::study::run_study`] gives it on rows.
pub fn run_study(plan: &Plan, wc: &WarehouseCohort, observer: &dyn Observer) -> Result<Study> {
    let run = |a: &AnalysisPlan| run_analysis(plan, wc, a, observer);
    let mut warnings = wc.warnings.clone();
    warnings.push(
        "Table 1 is not computed in a warehouse study without row export (only the moments of \
         the analyses left the warehouse)"
            .to_string(),
    );
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

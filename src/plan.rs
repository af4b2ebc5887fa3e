//! The validated plan: everything the run needs, checked against the config's
//! own consistency (the data are checked by the loader).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use indexmap::IndexMap;

use healthgap_cohort::{
    CohortSpec, MissingPolicy, OutcomeKind, OutcomeSpec, Source, VarKind, VariableSpec,
};
use healthgap_decompose::MethodSpec;
use healthgap_decompose::inference::Vce;
use healthgap_decompose::spec::RoleKind;
use healthgap_synth::Params;

use crate::config::{
    RawAnalysis, RawAnalysisMissing, RawClusterTerm, RawConfig, RawData, RawEngine, RawFallback,
    RawFormat, RawImputationInference, RawImputationMethod, RawInference, RawInferenceMethod,
    RawInterval, RawMissing, RawOmop, RawOutcomeType, RawVariableType, RawVce, RawWarehouse,
};

/// Inference settings of one analysis.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct InferencePlan {
    /// Delta or bootstrap.
    pub method: RawInferenceMethod,
    /// Replicates.
    pub replicates: usize,
    /// Interval.
    pub interval: RawInterval,
    /// Level.
    pub level: f64,
    /// Stratified resampling.
    pub stratify: bool,
    /// One-step bootstrap replicates.
    pub one_step: bool,
    /// What to do when the bootstrap's intervals are withheld.
    pub fallback: RawFallback,
}

/// One analysis.
#[derive(Debug, Clone)]
pub struct AnalysisPlan {
    /// Id.
    pub id: String,
    /// The method and its options.
    pub spec: MethodSpec,
    /// Outcomes.
    pub outcomes: Vec<String>,
    /// Inference.
    pub inference: InferencePlan,
    /// Runs on the study's imputations (pooled), not on complete cases.
    pub imputed: bool,
}

/// `[imputation]`, checked.
#[derive(Debug, Clone)]
pub struct ImputationPlan {
    /// Imputations.
    pub m: usize,
    /// Iterations of the chained equations.
    pub iterations: usize,
    /// Seed of the imputation streams.
    pub seed: u64,
    /// Donors of predictive mean matching.
    pub donors: usize,
    /// Impute within each group.
    pub by_group: bool,
    /// Models by variable (the others `auto`).
    pub methods: IndexMap<String, healthgap_impute::Method>,
    /// Predictors; None: every analysis variable and every outcome.
    pub predictors: Option<Vec<String>>,
    /// Variables left as they are.
    pub leave: Vec<String>,
    /// The visit sequence (these first, in this order; then `[factors]` order).
    pub visit: Vec<String>,
    /// How the cluster enters the models.
    pub cluster: healthgap_impute::ClusterTerm,
    /// Rubin's rules or bootstrap-then-impute.
    pub inference: RawImputationInference,
    /// Bootstrap-then-impute replicates.
    pub replicates: usize,
    /// Imputations per bootstrap replicate.
    pub per_replicate: usize,
}

/// The plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The config file.
    pub config_path: PathBuf,
    /// SHA-256 of the config's bytes.
    pub config_sha256: String,
    /// Study name.
    pub study_name: String,
    /// Study seed.
    pub seed: u64,
    /// What the loader needs.
    pub cohort: CohortSpec,
    /// Factor blocks in order.
    pub blocks: IndexMap<String, Vec<String>>,
    /// Analyses.
    pub analyses: Vec<AnalysisPlan>,
    /// Output folder.
    pub out_dir: PathBuf,
    /// Formats.
    pub formats: Vec<RawFormat>,
    /// Small-cell threshold.
    pub min_cell: usize,
    /// Variance of the delta method.
    pub vce: RawVce,
    /// Multiple imputation (`[cohort] missing = "multiple_imputation"`).
    pub imputation: Option<ImputationPlan>,
    /// A warehouse source.
    pub warehouse: Option<WarehousePlan>,
    /// The sites of a federated study (`[[data.site]]`; empty otherwise).
    pub sites: Vec<SitePlan>,
    /// `[data] site_column`: in a federated study, the name of a column that
    /// holds each site's `name` (no table has it; the warehouse path codes it
    /// as a constant per site).
    pub site_column: Option<String>,
}

/// Where a warehouse source is and how to reach it.
#[derive(Debug, Clone)]
pub struct WarehousePlan {
    /// The connection string (no password).
    pub url: String,
    /// The cohort table.
    pub table: healthgap_sql::TableName,
    /// The environment variable that holds the password.
    pub password_env: Option<String>,
    /// `[data] allow_row_export`: the analysis columns are pulled and
    /// analysed here; otherwise only per-cell moments leave the warehouse
    /// ([`crate::in_warehouse`]).
    pub row_export: bool,
}

/// One site of a federated study (`[[data.site]]`): its name and its
/// warehouse (always without row export).
#[derive(Debug, Clone)]
pub struct SitePlan {
    /// `name`, unique among the sites.
    pub name: String,
    /// Its table and how to reach it.
    pub warehouse: WarehousePlan,
}

impl Plan {
    /// Whether the study runs on moments computed in the warehouses
    /// ([`crate::in_warehouse`]): `[[data.site]]`, or `[data] warehouse`
    /// without `allow_row_export`.
    pub fn moments_only(&self) -> bool {
        !self.sites.is_empty() || self.warehouse.as_ref().is_some_and(|w| !w.row_export)
    }
}

/// `[data] warehouse`: PostgreSQL; with `allow_row_export = true` the
/// analysis columns are pulled, otherwise the moment-based analyses run on
/// per-cell moments computed in the warehouse (the others are refused when
/// the plan is built, [`crate::in_warehouse::refusals`]).
fn warehouse_plan(d: &RawData) -> Result<Option<WarehousePlan>> {
    let Some(w) = &d.warehouse else {
        if d.allow_row_export && d.sites.is_empty() {
            bail!("[data] allow_row_export is set but there is no [data] warehouse");
        }
        return Ok(None);
    };
    warehouse_of(w, d.allow_row_export, "[data] warehouse").map(Some)
}

/// One warehouse table as configured (`[data] warehouse` or a site's
/// `warehouse`; `what` names it in messages).
fn warehouse_of(w: &RawWarehouse, row_export: bool, what: &str) -> Result<WarehousePlan> {
    if w.engine == RawEngine::Spark {
        bail!(
            "{what}: engine = \"spark\" is not available in this build (the Spark Connect \
             transport is not built yet); use engine = \"postgres\""
        );
    }
    Ok(WarehousePlan {
        url: w.url.clone(),
        // `schema.table` in `table` is read as `healthgap synth --table` reads it.
        table: match &w.schema {
            Some(schema) => healthgap_sql::TableName::in_schema(schema.clone(), w.table.clone()),
            None => healthgap_sql::TableName::dotted(&w.table),
        },
        password_env: w.password_env.clone(),
        row_export,
    })
}

/// `[[data.site]]`: a federated study, each site a warehouse whose moments
/// are summed here. Names must be given and unique; rows never leave a site
/// (`allow_row_export` is refused).
fn site_plans(d: &RawData) -> Result<Vec<SitePlan>> {
    if d.sites.is_empty() {
        return Ok(Vec::new());
    }
    if d.allow_row_export {
        bail!(
            "[data] allow_row_export cannot be used with [[data.site]]: a federated study \
             pools the sites' aggregates, and pulling every site's rows into one place \
             defeats its purpose; remove allow_row_export (the moment-based analyses run \
             across the sites), or study one site's table alone with [data] warehouse"
        );
    }
    let mut sites: Vec<SitePlan> = Vec::new();
    for (k, site) in d.sites.iter().enumerate() {
        let name = site.name.trim();
        if name.is_empty() {
            bail!(
                "[[data.site]] number {}: `name` is empty; give every site a unique name",
                k + 1
            );
        }
        if sites.iter().any(|s| s.name == name) {
            bail!("[[data.site]] name `{name}` is given twice; every site needs a unique name");
        }
        let what = format!("[[data.site]] `{name}`: warehouse");
        sites.push(SitePlan {
            name: name.to_string(),
            warehouse: warehouse_of(&site.warehouse, false, &what)?,
        });
    }
    Ok(sites)
}

/// `[data] site_column`: only with `[[data.site]]`, and not the group
/// column.
fn site_column(raw: &RawConfig) -> Result<Option<String>> {
    let Some(name) = &raw.data.site_column else {
        return Ok(None);
    };
    if raw.data.sites.is_empty() {
        bail!(
            "[data] site_column = \"{name}\" names the site label of a federated study, and \
             there is no [[data.site]]; remove it"
        );
    }
    if name.trim().is_empty() || *name == raw.groups.column {
        bail!(
            "[data] site_column = \"{name}\" must be a new, non-empty name (not the group \
             column)"
        );
    }
    Ok(Some(name.clone()))
}

/// The names the analyses absorb as fixed effects (the hospital column and
/// `absorb`): loaded as categorical columns even when in no block.
fn absorbed_names(analyses: &[RawAnalysis]) -> Vec<String> {
    analyses
        .iter()
        .flat_map(|a| a.spec.spec().roles())
        .filter(|r| r.kind == RoleKind::Absorbed)
        .flat_map(|r| r.names)
        .collect()
}

/// The decompose crate's name for `[design] vce`.
pub fn vce_for_methods(vce: RawVce) -> Vce {
    match vce {
        RawVce::Robust => Vce::Robust,
        RawVce::Model => Vce::Model,
        RawVce::Cluster => Vce::Cluster,
    }
}

/// `[design] vce` checked against `cluster`: cluster (required) with a
/// cluster column, robust (default) or model without.
fn vce_of(raw: &RawConfig) -> Result<RawVce> {
    let cluster = raw.design.cluster.as_deref();
    match (raw.design.vce, cluster) {
        (None, Some(_)) | (Some(RawVce::Cluster), Some(_)) => Ok(RawVce::Cluster),
        (None, None) => Ok(RawVce::Robust),
        (Some(RawVce::Cluster), None) => bail!(
            "[design] vce = \"cluster\" needs the cluster column: set [design] cluster = \"…\" \
             (e.g. the hospital id), or use vce = \"robust\""
        ),
        (Some(v), Some(c)) => bail!(
            "[design] vce = \"{}\" contradicts cluster = \"{c}\": with a cluster column the \
             delta method is clustered (vce = \"cluster\"); remove one of the two",
            if v == RawVce::Robust {
                "robust"
            } else {
                "model"
            }
        ),
        (Some(v), None) => Ok(v),
    }
}

fn text_of(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Resolves a path relative to the config's folder.
fn relative(config_dir: &Path, p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        config_dir.join(path)
    }
}

/// Reads, parses and validates a config file.
pub fn from_file(path: &Path) -> Result<Plan> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read config {}", path.display()))?;
    let text = String::from_utf8(bytes.clone())
        .map_err(|_| anyhow!("{}: not UTF-8 text", path.display()))?;
    let raw = crate::config::parse(&text).map_err(|e| anyhow!("{}:{e}", path.display()))?;
    let sha = crate::hash::sha256_hex(&bytes);
    validate(raw, path, sha).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// Checks the raw config and builds the plan.
pub fn validate(raw: RawConfig, path: &Path, config_sha256: String) -> Result<Plan> {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let source = data_source(&raw.data, &dir)?;
    let warehouse = warehouse_plan(&raw.data)?;
    let sites = site_plans(&raw.data)?;
    let site_column = site_column(&raw)?;
    let GroupPlan {
        labels: group_labels,
        reference,
        compare,
    } = groups(&raw)?;
    let block_of = block_of(&raw)?;
    let (analyses, vce) = analysis_plans(&raw, &block_of)?;
    let variables = loader_variables(&raw, &block_of)?;
    let outcomes = outcome_specs(&raw);
    let out_dir = output_dir(&raw, &dir)?;
    let imputation = imputation_plan(&raw, &block_of)?;
    let plan = Plan {
        config_path: path.to_path_buf(),
        config_sha256,
        study_name: raw.study.name.clone(),
        seed: raw.study.seed,
        cohort: CohortSpec {
            source,
            filters: raw.cohort.filters.clone(),
            missing: match raw.cohort.missing {
                RawMissing::CompleteCase => MissingPolicy::CompleteCase,
                RawMissing::Error => MissingPolicy::Error,
                RawMissing::MultipleImputation => MissingPolicy::MultipleImputation,
            },
            group_column: raw.groups.column.clone(),
            group_display: group_labels.into_iter().collect(),
            reference,
            compare,
            outcomes,
            variables,
            cluster: raw.design.cluster.clone(),
            weights: raw.design.weights.clone(),
            na_values: raw
                .data
                .na_values
                .clone()
                .unwrap_or_else(healthgap_cohort::default_na_values),
        },
        blocks: raw.factors.clone(),
        analyses,
        out_dir,
        formats: raw.report.formats.clone(),
        min_cell: raw.report.min_cell,
        vce,
        imputation,
        warehouse,
        sites,
        site_column,
    };
    if plan.moments_only() {
        crate::in_warehouse::refusals(&plan)?;
    }
    Ok(plan)
}

/// Data source: exactly one of `path`, `omop`, `synthetic`, `warehouse` or
/// `[[data.site]]`, paths relative to the config.
fn data_source(d: &RawData, dir: &Path) -> Result<Source> {
    let given = [
        d.path.is_some(),
        d.omop.is_some(),
        d.synthetic.is_some(),
        d.warehouse.is_some(),
        !d.sites.is_empty(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if given != 1 {
        bail!(
            "[data] needs exactly one of `path`, `omop`, `synthetic`, `warehouse` or \
             [[data.site]] (found {given})"
        );
    }
    let source = if !d.sites.is_empty() {
        let names: Vec<&str> = d.sites.iter().map(|s| s.name.as_str()).collect();
        Source::Warehouse {
            label: format!("{} warehouse sites ({})", names.len(), names.join(", ")),
        }
    } else if let Some(w) = &d.warehouse {
        Source::Warehouse {
            label: format!("warehouse table `{}`", w.table),
        }
    } else if let Some(p) = &d.path {
        Source::Flat {
            path: relative(dir, p),
        }
    } else if let Some(o) = &d.omop {
        let (p, concepts) = match o {
            RawOmop::Path(p) => (p.clone(), Default::default()),
            RawOmop::Table(t) => (t.path.clone(), t.concepts.clone()),
        };
        Source::Omop {
            dir: relative(dir, &p),
            concepts: Box::new(concepts),
        }
    } else {
        let mut params = Params::default();
        // Dotted keys (`missing.adi = 0.1`) arrive as nested tables.
        let mut pairs: Vec<(String, &toml::Value)> = Vec::new();
        for (k, v) in d.synthetic.iter().flatten() {
            match v {
                toml::Value::Table(t) => {
                    pairs.extend(t.iter().map(|(s, v)| (format!("{k}.{s}"), v)))
                }
                v => pairs.push((k.clone(), v)),
            }
        }
        for (k, v) in pairs {
            let value = match v {
                toml::Value::Integer(i) => *i as f64,
                toml::Value::Float(f) => *f,
                other => bail!("[data] synthetic: `{k}` must be a number, not {other}"),
            };
            params
                .set(&k, value)
                .map_err(|e| anyhow!("[data] synthetic: {e}"))?;
        }
        params
            .validate()
            .map_err(|e| anyhow!("[data] synthetic: {e}"))?;
        Source::Synthetic {
            params: Box::new(params),
        }
    };
    Ok(source)
}

/// The compared groups, as values of the group column.
struct GroupPlan {
    /// Display labels by value.
    labels: IndexMap<String, String>,
    /// The reference group.
    reference: String,
    /// The comparison groups.
    compare: Vec<String>,
}

/// Groups: the reference and comparison values (named by value or label), one label each.
fn groups(raw: &RawConfig) -> Result<GroupPlan> {
    // A group named by its label stands for its value.
    let group_labels = raw.groups.labels.clone().unwrap_or_default();
    let value_of = |v: &toml::Value| {
        let t = text_of(v);
        group_labels
            .iter()
            .find(|(_, label)| **label == t)
            .map_or(t, |(value, _)| value.clone())
    };
    let reference = value_of(&raw.groups.reference);
    let compare: Vec<String> = raw.groups.compare.iter().map(value_of).collect();
    for (value, label) in &group_labels {
        if group_labels.values().filter(|l| *l == label).count() > 1 {
            bail!(
                "[groups] labels: the label `{label}` is given to more than one value; each group needs its own label"
            );
        }
        if *value != reference && !compare.contains(value) {
            bail!(
                "[groups] labels: `{value}` is neither the reference (`{reference}`) nor a \
                 comparison group ({}); label only the analysed values",
                compare.join(", ")
            );
        }
    }
    if compare.is_empty() {
        bail!("[groups] compare needs at least one comparison group");
    }
    if compare.contains(&reference) {
        bail!("[groups] the reference `{reference}` is also listed in compare");
    }
    Ok(GroupPlan {
        labels: group_labels,
        reference,
        compare,
    })
}

/// Blocks: each variable in one block, none named like an outcome; each variable's block.
fn block_of(raw: &RawConfig) -> Result<IndexMap<String, String>> {
    let mut block_of: IndexMap<String, String> = IndexMap::new();
    for (block, vars) in &raw.factors {
        for v in vars {
            if let Some(other) = block_of.insert(v.clone(), block.clone()) {
                bail!(
                    "[factors] variable `{v}` is listed in two blocks, `{other}` and `{block}`; a variable belongs to one block"
                );
            }
        }
        if raw.outcomes.contains_key(block) {
            bail!("[factors] block `{block}` has the name of an outcome; rename it");
        }
    }
    for v in block_of.keys() {
        if raw.outcomes.contains_key(v) {
            bail!("`{v}` is both an outcome and a covariate in [factors]");
        }
    }
    Ok(block_of)
}

/// Analyses: ids, outcomes, covariates, inference and method options; and `[design] vce`.
fn analysis_plans(
    raw: &RawConfig,
    block_of: &IndexMap<String, String>,
) -> Result<(Vec<AnalysisPlan>, RawVce)> {
    let outcome_names: Vec<String> = raw.outcomes.keys().cloned().collect();
    // Variables named in lists may be variables or block names.
    let known: Vec<String> = block_of
        .keys()
        .cloned()
        .chain(raw.factors.keys().cloned())
        .collect();
    let check_names = |what: &str, names: &[String]| -> Result<()> {
        for n in names {
            if !known.contains(n) {
                bail!(
                    "{what}: `{n}` is neither a variable of [factors] nor a block{}",
                    healthgap_synth::params::nearest(n, &known)
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default()
                );
            }
        }
        Ok(())
    };
    if raw.analyses.is_empty() {
        bail!(
            "the config has no [[analysis]]; add at least one, e.g.\n[[analysis]]\nmethod = \
             \"crude\"\noutcomes = [\"<an [outcomes] column>\"]"
        );
    }
    let mut analyses = Vec::new();
    let mut ids = Vec::new();
    let vce = vce_of(raw)?;
    for (i, a) in raw.analyses.iter().enumerate() {
        let RawAnalysis {
            id,
            outcomes,
            inference,
            missing,
            spec,
        } = a;
        let id = id.clone().unwrap_or_else(|| spec.name().to_string());
        if ids.contains(&id) {
            bail!(
                "[[analysis]] #{}: id `{id}` is used twice; give one of them `id = \"...\"`",
                i + 1
            );
        }
        ids.push(id.clone());
        if outcomes.is_empty() {
            bail!("[[analysis]] `{id}`: list at least one outcome");
        }
        for o in outcomes {
            if !raw.outcomes.contains_key(o) {
                bail!(
                    "[[analysis]] `{id}`: outcome `{o}` is not in [outcomes]{}",
                    healthgap_synth::params::nearest(o, &outcome_names)
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default()
                );
            }
        }
        for role in spec.spec().roles() {
            if role.kind == RoleKind::Covariates {
                check_names(&format!("[[analysis]] `{id}` {}", role.key), &role.names)?;
            }
        }
        let inference = inference_plan(
            &raw.inference,
            inference.as_ref(),
            raw.design.cluster.is_some() && !spec.spec().prefers_delta(),
        )
        .map_err(|e| anyhow!("[[analysis]] `{id}`: {e}"))?;
        spec.spec()
            .check(vce_for_methods(vce))
            .map_err(|e| anyhow!("[[analysis]] `{id}`: {e}"))?;
        let study_imputes = raw.cohort.missing == RawMissing::MultipleImputation;
        if *missing == Some(RawAnalysisMissing::MultipleImputation) && !study_imputes {
            bail!(
                "[[analysis]] `{id}`: missing = \"multiple_imputation\" needs [cohort] missing = \
                 \"multiple_imputation\" (the imputations are the study's)"
            );
        }
        analyses.push(AnalysisPlan {
            id,
            spec: spec.clone(),
            outcomes: outcomes.clone(),
            inference,
            imputed: study_imputes && *missing != Some(RawAnalysisMissing::CompleteCase),
        });
    }
    inference_plan(&raw.inference, None, raw.design.cluster.is_some())
        .map_err(|e| anyhow!("[inference]: {e}"))?;
    Ok((analyses, vce))
}

/// `[imputation]` checked against `[cohort] missing` and the variables.
fn imputation_plan(
    raw: &RawConfig,
    block_of: &IndexMap<String, String>,
) -> Result<Option<ImputationPlan>> {
    if raw.cohort.missing != RawMissing::MultipleImputation {
        if raw.imputation.is_some() {
            bail!(
                "[imputation] is set but [cohort] missing = \"{}\"; set missing = \
                 \"multiple_imputation\" to impute, or remove [imputation]",
                match raw.cohort.missing {
                    RawMissing::Error => "error",
                    _ => "complete_case",
                }
            );
        }
        return Ok(None);
    }
    let r = match &raw.imputation {
        Some(r) => r.clone(),
        None => crate::config::parse_imputation_defaults(),
    };
    if r.m < 2 {
        bail!(
            "[imputation] m = {}: multiple imputation needs m ≥ 2, because the pooled standard \
             errors rest on the variance between imputations (the default is 20)",
            r.m
        );
    }
    if r.iterations == 0 || r.donors == 0 {
        bail!("[imputation] iterations and donors must be at least 1");
    }
    if r.inference == RawImputationInference::Bootstrap && (r.replicates < 2 || r.per_replicate < 2)
    {
        bail!(
            "[imputation] inference = \"bootstrap\" needs replicates ≥ 2 and per_replicate ≥ 2 \
             (each replicate's point estimate is the mean over its own imputations)"
        );
    }
    let variables: Vec<String> = block_of.keys().cloned().collect();
    let known = |what: &str, name: &str, also: &[String]| -> Result<()> {
        if variables.iter().chain(also).any(|v| v == name) {
            return Ok(());
        }
        let all: Vec<String> = variables.iter().chain(also).cloned().collect();
        bail!(
            "[imputation] {what}: `{name}` is not a variable of [factors]{}",
            healthgap_synth::params::nearest(name, &all)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default()
        )
    };
    for name in r.method.keys() {
        known("method", name, &[])?;
    }
    for name in &r.leave {
        known("leave", name, &[])?;
    }
    for name in &r.visit {
        known("visit", name, &[])?;
    }
    let outcomes: Vec<String> = raw.outcomes.keys().cloned().collect();
    for name in r.predictors.iter().flatten() {
        known("predictors", name, &outcomes)?;
    }
    use healthgap_impute::{ClusterTerm, Method};
    Ok(Some(ImputationPlan {
        m: r.m,
        iterations: r.iterations,
        seed: r.seed.unwrap_or(raw.study.seed),
        donors: r.donors,
        by_group: r.by_group,
        methods: r
            .method
            .iter()
            .map(|(k, m)| {
                let method = match m {
                    RawImputationMethod::Auto => Method::Auto,
                    RawImputationMethod::Pmm => Method::Pmm,
                    RawImputationMethod::Norm => Method::Norm,
                    RawImputationMethod::Logistic => Method::Logistic,
                    RawImputationMethod::Multinomial => Method::Multinomial,
                };
                (k.clone(), method)
            })
            .collect(),
        predictors: r.predictors.clone(),
        leave: r.leave.clone(),
        visit: r.visit.clone(),
        cluster: match r.cluster {
            RawClusterTerm::Means => ClusterTerm::Means,
            RawClusterTerm::FixedEffect => ClusterTerm::FixedEffect,
            RawClusterTerm::None => ClusterTerm::None,
        },
        inference: r.inference,
        replicates: r.replicates,
        per_replicate: r.per_replicate,
    }))
}

/// Variables for the loader, in block order, then the absorbed columns in no block.
fn loader_variables(
    raw: &RawConfig,
    block_of: &IndexMap<String, String>,
) -> Result<Vec<VariableSpec>> {
    for name in raw.variables.keys() {
        if !block_of.contains_key(name)
            && raw.design.cluster.as_deref() != Some(name)
            && !absorbed_names(&raw.analyses).contains(name)
        {
            bail!(
                "[variables] `{name}` is not used: it is in no block of [factors]{}",
                healthgap_synth::params::nearest(
                    name,
                    &block_of.keys().cloned().collect::<Vec<_>>()
                )
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default()
            );
        }
    }
    let kind_of = |name: &str| -> Option<VarKind> {
        raw.variables.get(name).map(|v| match v.kind {
            RawVariableType::Numeric | RawVariableType::Binary => VarKind::Numeric,
            RawVariableType::Categorical => VarKind::Categorical {
                reference: v.reference.as_ref().map(text_of),
                absorb: v.absorb.unwrap_or(false),
            },
        })
    };
    let mut variables: Vec<VariableSpec> = block_of
        .iter()
        .map(|(v, b)| VariableSpec {
            name: v.clone(),
            kind: kind_of(v),
            block: b.clone(),
            min_count: raw.variables.get(v).and_then(|r| r.min_count),
        })
        .collect();
    for name in absorbed_names(&raw.analyses) {
        if block_of.contains_key(&name) || variables.iter().any(|v| v.name == name) {
            continue;
        }
        variables.push(VariableSpec {
            name: name.clone(),
            kind: Some(VarKind::Categorical {
                reference: None,
                absorb: true,
            }),
            block: "care_site".into(),
            min_count: None,
        });
    }
    Ok(variables)
}

/// Outcomes for the loader: type, label and event value.
fn outcome_specs(raw: &RawConfig) -> Vec<OutcomeSpec> {
    raw.outcomes
        .iter()
        .map(|(name, o)| OutcomeSpec {
            name: name.clone(),
            kind: match o.kind {
                RawOutcomeType::Binary => OutcomeKind::Binary,
                RawOutcomeType::Continuous => OutcomeKind::Continuous,
            },
            label: o.label.clone().unwrap_or_else(|| name.clone()),
            event: o.event,
        })
        .collect()
}

/// Report and output: `min_cell` at least 1; the output folder, relative to the config.
fn output_dir(raw: &RawConfig, dir: &Path) -> Result<PathBuf> {
    if raw.report.min_cell == 0 {
        bail!("[report] min_cell must be at least 1 (default 11)");
    }
    Ok(relative(
        dir,
        raw.report.out_dir.as_deref().unwrap_or("report"),
    ))
}

fn inference_plan(
    base: &RawInference,
    over: Option<&RawInference>,
    clustered: bool,
) -> Result<InferencePlan> {
    let method = over
        .and_then(|i| i.method)
        .or(base.method)
        .unwrap_or(if clustered {
            RawInferenceMethod::Bootstrap
        } else {
            RawInferenceMethod::Delta
        });
    let replicates = over
        .and_then(|i| i.replicates)
        .or(base.replicates)
        .unwrap_or(500);
    let interval = over
        .and_then(|i| i.interval)
        .or(base.interval)
        .unwrap_or(RawInterval::Percentile);
    let level = over.and_then(|i| i.level).or(base.level).unwrap_or(0.95);
    let stratify = over
        .and_then(|i| i.stratify)
        .or(base.stratify)
        .unwrap_or(false);
    let one_step = over
        .and_then(|i| i.one_step)
        .or(base.one_step)
        .unwrap_or(false);
    let fallback = over
        .and_then(|i| i.fallback)
        .or(base.fallback)
        .unwrap_or_default();
    if !(level > 0.5 && level < 1.0) {
        bail!("level must lie between 0.5 and 1 (e.g. 0.95), got {level}");
    }
    if method == RawInferenceMethod::Bootstrap && replicates < 2 {
        bail!("replicates must be at least 2 (500 or more is usual), got {replicates}");
    }
    Ok(InferencePlan {
        method,
        replicates,
        interval,
        level,
        stratify,
        one_step,
        fallback,
    })
}

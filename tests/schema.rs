//! results.json against the JSON Schema that ships in the repository
//! (schema/results.schema.json), with a small validator for the keywords the
//! schema uses: type, const, enum, required, properties,
//! additionalProperties, items, minimum, maximum, pattern and local $ref.

use serde_json::Value;

use crate::util::Dir;

pub(crate) fn schema() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/results.schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn type_ok(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.as_i64().is_some() || v.as_u64().is_some(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    }
}

/// Errors of `v` against `s` (paths in `at`).
pub(crate) fn validate(root: &Value, s: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/$defs/");
        return validate(root, &root["$defs"][name], v, at, errors);
    }
    if let Some(t) = s.get("type") {
        let ok = match t {
            Value::String(t) => type_ok(v, t),
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).any(|t| type_ok(v, t)),
            _ => true,
        };
        if !ok {
            errors.push(format!("{at}: {v} is not of type {t}"));
            return;
        }
    }
    if let Some(c) = s.get("const")
        && c != v
    {
        errors.push(format!("{at}: {v} is not {c}"));
    }
    if let Some(Value::Array(options)) = s.get("enum")
        && !options.contains(v)
    {
        errors.push(format!("{at}: {v} not in {options:?}"));
    }
    if let (Some(min), Some(x)) = (s.get("minimum").and_then(Value::as_f64), v.as_f64())
        && x < min
    {
        errors.push(format!("{at}: {x} < {min}"));
    }
    if let (Some(max), Some(x)) = (s.get("maximum").and_then(Value::as_f64), v.as_f64())
        && x > max
    {
        errors.push(format!("{at}: {x} > {max}"));
    }
    if let (Some(p), Some(text)) = (s.get("pattern").and_then(Value::as_str), v.as_str())
        && !regex::Regex::new(p).unwrap().is_match(text)
    {
        errors.push(format!("{at}: {text:?} does not match {p}"));
    }
    if let Value::Object(map) = v {
        for r in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let r = r.as_str().unwrap();
            if !map.contains_key(r) {
                errors.push(format!("{at}: missing `{r}`"));
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        for (k, x) in map {
            match props.and_then(|p| p.get(k)) {
                Some(ps) => validate(root, ps, x, &format!("{at}.{k}"), errors),
                None => match s.get("additionalProperties") {
                    Some(Value::Bool(false)) => errors.push(format!("{at}: unexpected `{k}`")),
                    Some(extra @ Value::Object(_)) => {
                        validate(root, extra, x, &format!("{at}.{k}"), errors)
                    }
                    _ => {}
                },
            }
        }
    }
    if let (Value::Array(items), Some(is)) = (v, s.get("items")) {
        for (i, x) in items.iter().enumerate() {
            validate(root, is, x, &format!("{at}[{i}]"), errors);
        }
    }
}

#[test]
fn real_results_validate_against_the_shipped_schema() {
    let root = schema();
    let dir = Dir::new();
    // Every method on a small synthetic study (the canonical config, smaller).
    let canonical = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/analyses/cabg_synthetic.toml"
    ))
    .unwrap();
    let config = canonical
        .replace("patients = 200000", "patients = 20000")
        .replace("replicates = 500", "replicates = 20")
        .replace(
            "out_dir = \"../reports/cabg_synthetic\"",
            "out_dir = \"out\"",
        )
        .replace(
            "[[analysis]]\nmethod = \"mediation\"",
            // A cross-fitted super learner (small, for a debug build).
            "[[analysis]]\nid = \"dr_sl\"\nmethod = \"disparity_reduction\"\n\
             outcomes = [\"death_30d\"]\nallowable = [\"age\", \"female\"]\n\
             targets = [\"socioeconomic\"]\ndraws = 2\nlearner = \"super_learner\"\n\
             forest = { trees = 10, min_leaf = 50, max_depth = 8 }\n\
             super_learner = { library = [\"glm\", \"forest\"], folds = 2 }\n\
             inference = { method = \"delta\" }\n\n\
             [[analysis]]\nmethod = \"mediation\"",
        );
    std::fs::write(dir.join("study.toml"), config).unwrap();
    dir.ok(&["run", "study.toml", "--out", "out"]);
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/results.json")).unwrap())
            .unwrap();
    let methods: std::collections::BTreeSet<&str> = results["analyses"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["method"].as_str())
        .collect();
    assert_eq!(methods.len(), 6, "{methods:?}");
    let mut errors = Vec::new();
    validate(&root, &root, &results, "$", &mut errors);
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    // The cross-fitted analysis: influence-function rows and its diagnostics.
    let sl = results["analyses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "dr_sl")
        .expect("the super-learner analysis");
    assert_eq!(sl["inference"]["method"], "influence_function");
    assert!(
        sl["inference"]["note"]
            .as_str()
            .unwrap()
            .contains("super_learner learner")
    );
    assert_eq!(sl["estimates"][0]["se_method"], "influence-function");
    let nuisances = sl["learners"]["nuisances"].as_array().unwrap();
    assert_eq!(nuisances.len(), 2, "outcome and one density ratio");
    let weights: f64 = nuisances[0]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["weight"].as_f64().unwrap())
        .sum();
    assert!((weights - 1.0).abs() < 1e-9, "{weights}");
    assert!(
        sl["learners"]["overlap"][0]["effective_sample_size"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert_eq!(sl["learners"]["ratio_min_leaf_sqrt"], 1.0);
    // The report shows the diagnostics (not only results.json): the
    // nuisances' cross-validated losses with the super learner's weights, and
    // the density ratios' overlap, in the HTML page and the Markdown report.
    let html = std::fs::read_to_string(dir.join("out/index.html")).unwrap();
    let md = std::fs::read_to_string(dir.join("out/report.md")).unwrap();
    for page in [&html, &md] {
        assert!(page.contains("cross-validated loss"), "nuisance table");
        assert!(page.contains("super learner: member CV loss (weight)"));
        assert!(page.contains("density_ratio:socioeconomic"));
        assert!(page.contains("effective sample size"), "overlap table");
        assert!(page.contains("(weight "), "member weights");
    }
    // The validator rejects what it should.
    let mut bad = results.clone();
    bad["analyses"][0]["estimates"][0]["se"] = Value::String("0.1".into());
    bad["surprise"] = Value::Bool(true);
    let mut errors = Vec::new();
    validate(&root, &root, &bad, "$", &mut errors);
    assert_eq!(errors.len(), 2, "{errors:?}");
}

//! A matrix of bad configs and bad data, each through the binary: `check` and
//! `run` both fail with the same message (so that `check` OK implies `run`
//! does not fail on the config), no panic, nothing written. Where the
//! problem sits on a config line, the message names that line.

use crate::util::{Dir, stderr};

const BASE: &str = r#"[study]
name = "matrix"
seed = 1

[data]
path = "data/cohort.csv"

[groups]
column = "race"
reference = "White"
compare = ["Black"]

[outcomes]
los_days = { type = "continuous" }
death_30d = { type = "binary" }

[factors]
biological = ["age", "female", "status"]
socioeconomic = ["adi", "insurance"]

[variables]
insurance = { type = "categorical", reference = "private" }

[design]
cluster = "hospital_id"

[[analysis]]
method = "oaxaca_blinder"
outcomes = ["los_days"]

[report]
out_dir = "out"
formats = ["json"]
"#;

/// The cohort extract once, shared by the cases (copied per case).
fn extract() -> &'static str {
    static CSV: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CSV.get_or_init(|| {
        let dir = Dir::new();
        crate::cli_run::fixture(&dir);
        std::fs::read_to_string(dir.join("data/cohort.csv")).unwrap()
    })
}

/// `csv` with `f(row, column, value)` applied to every field.
fn edit(csv: &str, f: impl Fn(usize, &str, &str) -> String) -> String {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut out = format!("{}\n", header.join(","));
    for (i, line) in lines.enumerate() {
        let fields: Vec<String> = line
            .split(',')
            .zip(&header)
            .map(|(v, c)| f(i, c, v))
            .collect();
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// The value of `column` in every row.
pub(crate) fn column(csv: &str, name: &str) -> Vec<String> {
    let mut lines = csv.lines();
    let k = lines
        .next()
        .unwrap()
        .split(',')
        .position(|c| c == name)
        .unwrap();
    lines
        .map(|l| l.split(',').nth(k).unwrap().to_string())
        .collect()
}

struct Case {
    name: &'static str,
    config: String,
    data: Option<String>,
    /// Texts the message must hold.
    needles: Vec<&'static str>,
}

fn case(name: &'static str, config: String, needles: &[&'static str]) -> Case {
    Case {
        name,
        config,
        data: None,
        needles: needles.to_vec(),
    }
}

fn with_data(name: &'static str, data: String, needles: &[&'static str]) -> Case {
    Case {
        name,
        config: BASE.to_string(),
        data: Some(data),
        needles: needles.to_vec(),
    }
}

/// The base config with multiple imputation (`imputation` the
/// `[imputation]` table's body).
fn imputed(imputation: &str) -> String {
    replaced(
        "[groups]",
        &format!(
            "[cohort]\nmissing = \"multiple_imputation\"\n\n[imputation]\n{imputation}\n\n[groups]"
        ),
    )
}

fn replaced(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from}");
    BASE.replacen(from, to, 1)
}

fn analysis(text: &str) -> String {
    replaced("[report]", &format!("{text}\n\n[report]"))
}

/// `text` as the only analysis (so that its failure fails the whole run).
fn only_analysis(text: &str) -> String {
    replaced(
        "[[analysis]]\nmethod = \"oaxaca_blinder\"\noutcomes = [\"los_days\"]\n",
        &format!("{text}\n"),
    )
}

/// The base config with `[[data.site]]` tables (`sites`, each `(name, extra
/// keys)`) instead of the file, and `data` more `[data]` keys.
fn sites(data: &str, sites: &[(&str, &str)]) -> String {
    sites_in(BASE, data, sites)
}

/// [`sites`] on `config` (the base config edited).
fn sites_in(config: &str, data: &str, sites: &[(&str, &str)]) -> String {
    let mut text = format!("[data]\n{data}\n");
    for (name, extra) in sites {
        text.push_str(&format!(
            "\n[[data.site]]\n{name}warehouse = {{ engine = \"postgres\", url = \"postgresql://analyst@%2Ftmp%2Fnowhere/x\", table = \"cabg\"{extra} }}\n"
        ));
    }
    config.replacen("[data]\npath = \"data/cohort.csv\"\n", &text, 1)
}

fn cases() -> Vec<Case> {
    let csv = extract();
    let race = column(csv, "race");
    let mut black = 0;
    let five_black: Vec<bool> = race
        .iter()
        .map(|r| {
            black += usize::from(r == "Black");
            r != "Black" || black <= 5
        })
        .collect();
    vec![
        case(
            "no analyses",
            replaced(
                "[[analysis]]\nmethod = \"oaxaca_blinder\"\noutcomes = [\"los_days\"]\n",
                "",
            ),
            &["no [[analysis]]"],
        ),
        case(
            "unknown section",
            replaced("[study]", "[studdy]"),
            &["line 1", "did you mean `study`"],
        ),
        case(
            "unknown key in [data]",
            replaced("path = ", "pth = "),
            &["line 6", "unknown key `pth`"],
        ),
        case(
            "misspelt outcome type",
            replaced("\"continuous\" }", "\"continous\" }"),
            &["line 14", "did you mean `continuous`"],
        ),
        case(
            "outcome given as a string",
            replaced(
                "los_days = { type = \"continuous\" }",
                "los_days = \"continuous\"",
            ),
            &["line 14", "expected a table"],
        ),
        case(
            "unknown method",
            replaced("method = \"oaxaca_blinder\"", "method = \"oaxaca\""),
            &["line 28", "did you mean `oaxaca_blinder`"],
        ),
        case(
            "a missing key names the analysis",
            analysis(
                "[[analysis]]\nid = \"g\"\nmethod = \"gelbach\"\noutcomes = [\"los_days\"]\nbase = [\"biological\"]",
            ),
            &[
                "line 31",
                "[[analysis]] number 2 (id `g`, gelbach)",
                "missing key `added`",
            ],
        ),
        case(
            "a key valid in another analysis names the right one",
            analysis(
                "[[analysis]]\nid = \"dr\"\nmethod = \"disparity_reduction\"\noutcomes = [\"los_days\"]\n\
                 allowable = [\"biological\"]\ntargets = [\"socioeconomic\"]\n\n\
                 [[analysis]]\nid = \"ob2\"\nmethod = \"oaxaca_blinder\"\noutcomes = [\"los_days\"]\n\
                 targets = [\"socioeconomic\"]",
            ),
            &["line 42", "number 3 (id `ob2`", "unknown key `targets`"],
        ),
        case(
            "a list given as a string, no internal type names",
            analysis("[[analysis]]\nid = \"c\"\nmethod = \"crude\"\noutcomes = \"los_days\""),
            &["line 34", "`outcomes`", "expected a list"],
        ),
        case(
            "a misspelt value inside an analysis names its line",
            analysis(
                "[[analysis]]\nid = \"dr\"\nmethod = \"disparity_reduction\"\noutcomes = [\"los_days\"]\n\
                 allowable = [\"biological\"]\ntargets = [\"socioeconomic\"]\nestimator = \"g-computation\"",
            ),
            &[
                "line 37",
                "number 2 (id `dr`",
                "`estimator`",
                "did you mean `gcomputation`",
            ],
        ),
        case(
            "a misspelt learner",
            analysis(
                "[[analysis]]\nid = \"dr\"\nmethod = \"disparity_reduction\"\noutcomes = [\"los_days\"]\n\
                 allowable = [\"biological\"]\ntargets = [\"socioeconomic\"]\nlearner = \"forrest\"",
            ),
            &["`learner`", "did you mean `forest`"],
        ),
        case(
            "an unknown learner setting",
            analysis(
                "[[analysis]]\nid = \"dr\"\nmethod = \"disparity_reduction\"\noutcomes = [\"los_days\"]\n\
                 allowable = [\"biological\"]\ntargets = [\"socioeconomic\"]\nlearner = \"forest\"\n\
                 forest = { tress = 10 }",
            ),
            &["unknown key `tress`", "did you mean `trees`"],
        ),
        case(
            "a bad learner setting",
            analysis(
                "[[analysis]]\nid = \"dr\"\nmethod = \"disparity_reduction\"\noutcomes = [\"los_days\"]\n\
                 allowable = [\"biological\"]\ntargets = [\"socioeconomic\"]\nlearner = \"forest\"\n\
                 forest = { trees = 0 }",
            ),
            &["`dr`", "learner = \"forest\"", "trees"],
        ),
        case(
            "a misspelt hospital_effects value",
            analysis(
                "[[analysis]]\nid = \"dr\"\nmethod = \"disparity_reduction\"\noutcomes = [\"los_days\"]\n\
                 allowable = [\"biological\"]\ntargets = [\"socioeconomic\"]\nhospital_effects = \"randon\"",
            ),
            &["`hospital_effects`", "did you mean `random`"],
        ),
        case(
            "a negative whole number",
            replaced("seed = 1", "seed = -1"),
            &["line 3", "`seed`", "a whole number, 0 or more"],
        ),
        case(
            "an outcome not in [outcomes]",
            replaced("outcomes = [\"los_days\"]", "outcomes = [\"los_dayz\"]"),
            &[
                "outcome `los_dayz` is not in [outcomes]",
                "did you mean `los_days`",
            ],
        ),
        case(
            "no outcomes in an analysis",
            replaced("outcomes = [\"los_days\"]", "outcomes = []"),
            &["list at least one outcome"],
        ),
        case(
            "an id used twice",
            analysis("[[analysis]]\nmethod = \"oaxaca_blinder\"\noutcomes = [\"los_days\"]"),
            &["is used twice"],
        ),
        case(
            "a variable without a column",
            replaced("\"adi\", \"insurance\"", "\"adi\", \"insurence\"").replacen(
                "insurance = { type = \"categorical\", reference = \"private\" }\n",
                "",
                1,
            ),
            &["no column `insurence`", "did you mean `insurance`"],
        ),
        case(
            "a group level that does not occur",
            replaced("compare = [\"Black\"]", "compare = [\"Blak\"]"),
            &["group level `Blak` does not occur", "did you mean `Black`"],
        ),
        case(
            "two groups with one label",
            replaced(
                "compare = [\"Black\"]",
                "compare = [\"Black\"]\nlabels = { White = \"A\", Black = \"A\" }",
            ),
            &["given to more than one value"],
        ),
        case(
            "a label for a value not analysed",
            replaced(
                "compare = [\"Black\"]",
                "compare = [\"Black\"]\nlabels = { White = \"W\", Asian = \"A\" }",
            ),
            &["`Asian` is neither the reference"],
        ),
        case(
            "the reference among the comparisons",
            replaced("compare = [\"Black\"]", "compare = [\"White\"]"),
            &["also listed in compare"],
        ),
        case(
            "a missing data file",
            replaced("data/cohort.csv", "data/nope.csv"),
            &["nope.csv", "no such file"],
        ),
        case(
            "min_cell 0",
            replaced("formats = [\"json\"]", "formats = [\"json\"]\nmin_cell = 0"),
            &["min_cell must be at least 1"],
        ),
        case(
            "model variances for pooled coefficients",
            replaced("cluster = \"hospital_id\"", "vce = \"model\""),
            &["vce = \"model\" is not derived"],
        ),
        case(
            "a whole number in quotes",
            replaced("[design]", "[inference]\nreplicates = \"200\"\n\n[design]"),
            &["`replicates`", "expected a whole number without quotes"],
        ),
        case(
            "a block as a single mediator",
            only_analysis(
                "[[analysis]]\nid = \"m\"\nmethod = \"mediation\"\noutcomes = [\"los_days\"]\n\
                 mediators = [\"socioeconomic\"]\nconfounders = [\"biological\"]",
            ),
            &["mediation needs one mediator column"],
        ),
        case(
            "a Gelbach base holding the absorbed hospital",
            replaced(
                "\"adi\", \"insurance\"]",
                "\"adi\", \"insurance\"]\ncare_site = [\"hospital_id\"]",
            )
            .replacen(
                "[[analysis]]\nmethod = \"oaxaca_blinder\"\noutcomes = [\"los_days\"]\n",
                "[[analysis]]\nid = \"g\"\nmethod = \"gelbach\"\noutcomes = [\"los_days\"]\n\
                 base = [\"care_site\"]\nadded = [\"socioeconomic\"]\n",
                1,
            )
            .replacen(
                "[variables]",
                "[variables]\nhospital_id = { type = \"categorical\", absorb = true }",
                1,
            ),
            &["`hospital_id` is absorbed (many levels) and cannot be in `base`"],
        ),
        with_data(
            "a Stata \".\" in a numeric column",
            edit(csv, |i, c, v| {
                if c == "adi" && i == 4 {
                    ".".into()
                } else {
                    v.into()
                }
            }),
            &["column `adi`", "row 5: \".\"", "na_values"],
        ),
        with_data(
            "one \"unknown\" in age",
            edit(csv, |i, c, v| {
                if c == "age" && i == 8 {
                    "unknown".into()
                } else {
                    v.into()
                }
            }),
            &[
                "column `age`",
                "row 9: \"unknown\"",
                "type = \"categorical\"",
            ],
        ),
        with_data(
            "a semicolon-separated file",
            csv.replace(',', ";"),
            &["separated by ';'", "comma-separated"],
        ),
        with_data(
            "a binary outcome coded 1/2",
            edit(csv, |_, c, v| {
                if c == "death_30d" {
                    if v == "1" { "2".into() } else { "1".into() }
                } else {
                    v.into()
                }
            }),
            &["column `death_30d`", "coded 1/2", "event = 2"],
        ),
        with_data(
            "a five-person group",
            {
                let mut keep = five_black.iter();
                let mut lines = csv.lines();
                let mut out = format!("{}\n", lines.next().unwrap());
                for l in lines {
                    if *keep.next().unwrap() {
                        out.push_str(l);
                        out.push('\n');
                    }
                }
                out
            },
            &["group `Black` has fewer than 11 rows for", "coefficients"],
        ),
        with_data(
            "a one-person rare level",
            edit(csv, |i, c, v| {
                if c == "insurance" && i == 10 {
                    "vip".into()
                } else {
                    v.into()
                }
            }),
            &["insurance=vip", "min_count"],
        ),
        with_data(
            "a missing cluster",
            edit(csv, |i, c, v| {
                if c == "hospital_id" && i == 3 {
                    String::new()
                } else {
                    v.into()
                }
            }),
            &["hospital_id", "every row needs a cluster"],
        ),
        case(
            "one imputation",
            imputed("m = 1"),
            &["m = 1", "m ≥ 2", "between imputations"],
        ),
        case(
            "[imputation] without multiple imputation",
            replaced("[groups]", "[imputation]\nm = 5\n\n[groups]"),
            &["[imputation] is set", "missing = \"multiple_imputation\""],
        ),
        case(
            "an analysis asks for the imputations the study does not make",
            replaced(
                "outcomes = [\"los_days\"]",
                "outcomes = [\"los_days\"]\nmissing = \"multiple_imputation\"",
            ),
            &["needs [cohort] missing = \"multiple_imputation\""],
        ),
        case(
            "an imputation model for an unknown variable",
            imputed("method = { adii = \"pmm\" }"),
            &["[imputation] method", "`adii`", "did you mean `adi`"],
        ),
        case(
            "an unknown variable in the visit sequence",
            imputed("visit = [\"insurence\"]"),
            &["[imputation] visit", "did you mean `insurance`"],
        ),
        case(
            "an unknown imputation model",
            imputed("method = { adi = \"pmmm\" }"),
            &["pmmm", "pmm"],
        ),
        Case {
            name: "a logistic model for a continuous variable",
            config: imputed("method = { adi = \"logistic\" }"),
            data: Some(edit(csv, |i, c, v| {
                if c == "adi" && i % 7 == 0 {
                    String::new()
                } else {
                    v.into()
                }
            })),
            needles: vec!["adi = \"logistic\"", "0/1 variables only"],
        },
        Case {
            name: "a variable missing for every patient of a group",
            config: imputed("m = 2"),
            data: Some(edit(csv, |i, c, v| {
                if c == "adi" && race[i] == "Black" {
                    String::new()
                } else {
                    v.into()
                }
            })),
            needles: vec![
                "`adi` is missing for every patient in group `Black`",
                "by_group = false",
            ],
        },
        case(
            "hierarchical keys without the hierarchical model",
            analysis(
                "[[analysis]]\nmethod = \"hospital\"\noutcomes = [\"death_30d\"]\nhospital = \"hospital_id\"\nrandom_slope = true",
            ),
            &[
                "random_slope, quadrature, link and replicates set the hierarchical model",
                "model = \"hierarchical\"",
            ],
        ),
        case(
            "quadrature with a random slope",
            analysis(
                "[[analysis]]\nmethod = \"hospital\"\noutcomes = [\"death_30d\"]\nhospital = \"hospital_id\"\nmodel = \"hierarchical\"\nrandom_slope = true\nquadrature = 7",
            ),
            &[
                "quadrature = 7 is for the random-intercept model",
                "quadrature = 1",
            ],
        ),
        case(
            "an unknown hospital model",
            analysis(
                "[[analysis]]\nmethod = \"hospital\"\noutcomes = [\"death_30d\"]\nhospital = \"hospital_id\"\nmodel = \"random\"",
            ),
            &[
                "`model`: unknown value `random`",
                "valid: fixed_effects, hierarchical",
            ],
        ),
        case(
            "sites beside a file",
            sites("path = \"data/cohort.csv\"", &[("name = \"north\"\n", "")]),
            &["[data] needs exactly one of", "[[data.site]] (found 2)"],
        ),
        case(
            "a site without a name",
            sites("", &[("name = \"north\"\n", ""), ("", "")]),
            &["line 12: [[data.site]]: missing key `name`"],
        ),
        case(
            "a site with an empty name",
            sites("", &[("name = \" \"\n", "")]),
            &["[[data.site]] number 1: `name` is empty"],
        ),
        case(
            "two sites of one name",
            sites(
                "",
                &[("name = \"north\"\n", ""), ("name = \"north\"\n", "")],
            ),
            &["[[data.site]] name `north` is given twice"],
        ),
        case(
            "sites with row export",
            sites("allow_row_export = true", &[("name = \"north\"\n", "")]),
            &[
                "allow_row_export cannot be used with [[data.site]]",
                "defeats its purpose",
            ],
        ),
        case(
            "a site column without sites",
            replaced(
                "[data]\npath = \"data/cohort.csv\"\n",
                "[data]\npath = \"data/cohort.csv\"\nsite_column = \"site\"\n",
            ),
            &["[data] site_column = \"site\" names the site label of a federated study"],
        ),
        case(
            "a site on spark",
            replaced(
                "[data]\npath = \"data/cohort.csv\"\n",
                "[data]\n\n[[data.site]]\nname = \"south\"\nwarehouse = { engine = \"spark\", url = \"sc://h:15002\", table = \"cabg\" }\n",
            ),
            &["[[data.site]] `south`: warehouse: engine = \"spark\" is not available"],
        ),
        case(
            "a site with an unknown key",
            sites("", &[("name = \"north\"\nhost = \"x\"\n", "")]),
            &["[[data.site]]: unknown key `host`; valid: name, warehouse"],
        ),
        case(
            "a federated study with a method that needs rows",
            sites_in(
                &analysis(
                    "[[analysis]]\nid = \"dr\"\nmethod = \"disparity_reduction\"\noutcomes = [\"death_30d\"]\nallowable = [\"biological\"]\ntargets = [\"socioeconomic\"]",
                ),
                "",
                &[("name = \"north\"\n", "")],
            ),
            &[
                "[[data.site]] (a federated study) runs only moment-based analyses",
                "analysis `dr`",
                "study one site's table alone",
            ],
        ),
    ]
}

#[test]
fn check_and_run_fail_alike_on_every_bad_input() {
    let cases = cases();
    assert!(cases.len() >= 25, "{} cases", cases.len());
    let mut failures = Vec::new();
    for c in cases {
        let dir = Dir::new();
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(
            dir.join("data/cohort.csv"),
            c.data.as_deref().unwrap_or(extract()),
        )
        .unwrap();
        std::fs::write(dir.join("study.toml"), &c.config).unwrap();
        let checked = dir.run(&["check", "study.toml"]);
        let ran = dir.run(&["run", "study.toml"]);
        let (ce, re) = (stderr(&checked), stderr(&ran));
        let mut problems = Vec::new();
        if checked.status.code() != Some(1) {
            problems.push(format!("check exit {:?}", checked.status.code()));
        }
        if ran.status.code() != Some(1) {
            problems.push(format!("run exit {:?}", ran.status.code()));
        }
        for n in &c.needles {
            if !ce.contains(n) {
                problems.push(format!("check lacks `{n}`"));
            }
            if !re.contains(n) {
                problems.push(format!("run lacks `{n}`"));
            }
        }
        if ce.contains("panicked") || re.contains("panicked") {
            problems.push("panicked".into());
        }
        if ce.contains("Raw") || re.contains("Raw") {
            problems.push("an internal type name".into());
        }
        if dir.join("out").exists() {
            problems.push("output written".into());
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}\n  check: {ce}\n  run: {re}",
                c.name,
                problems.join("; ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

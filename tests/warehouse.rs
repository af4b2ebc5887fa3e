//! A warehouse study end to end against a throwaway PostgreSQL server:
//! `healthgap synth --to` loads the cohort with COPY, `[data] warehouse`
//! pulls the analysis columns (`allow_row_export = true`), and every estimate
//! and SE equals the same study on the file; credentials never reach the
//! output; refusals are clear.

use std::process::Output;

use healthgap_warehouse::testing::TestServer;

use crate::oaxaca::results;
use crate::util::{Dir, stderr};

/// The password's environment variable in these tests.
const VAR: &str = "HEALTHGAP_TEST_PG_PASSWORD";

fn run_with_password(dir: &Dir, server: &TestServer, args: &[&str]) -> Output {
    dir.command(args)
        .env(VAR, &server.password)
        .output()
        .expect("the binary runs")
}

fn study(data: &str) -> String {
    format!(
        r#"[study]
name = "warehouse"
seed = 5

[data]
{data}

[cohort]
filters = ["age >= 40"]

[groups]
column = "race"
reference = "White"
compare = ["Black"]

[outcomes]
death_30d = {{ type = "binary" }}
los_days = {{ type = "continuous" }}

[factors]
demographics = ["age", "female"]
socioeconomic = ["adi", "insurance"]
clinical = ["diabetes", "dialysis", "ejection_fraction", "status"]
care_site = ["hospital_id"]

[variables]
insurance = {{ type = "categorical", reference = "private" }}
status = {{ type = "categorical", reference = "elective" }}
hospital_id = {{ type = "categorical" }}

[design]
cluster = "hospital_id"

[inference]
replicates = 30

[[analysis]]
method = "oaxaca_blinder"
outcomes = ["los_days", "death_30d"]

[[analysis]]
method = "gelbach"
outcomes = ["los_days"]
base = ["demographics"]
added = ["socioeconomic", "clinical"]

[[analysis]]
id = "dr"
method = "disparity_reduction"
outcomes = ["death_30d"]
allowable = ["demographics"]
targets = ["socioeconomic", "care_site"]
inference = {{ method = "bootstrap" }}

[report]
out_dir = "out"
formats = ["json"]
"#
    )
}

/// Every analysis's estimates (quantity, factor, term, estimate, se, CI).
fn estimates(r: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for a in r["analyses"].as_array().unwrap() {
        for e in a["estimates"].as_array().unwrap() {
            out.push(format!(
                "{} {} {} {} {} {} {} {} {}",
                a["id"],
                a["outcome"],
                e["quantity"],
                e["factor"],
                e["term"],
                e["estimate"],
                e["se"],
                e["ci_low"],
                e["ci_high"]
            ));
        }
    }
    out
}

#[test]
fn a_warehouse_study_equals_the_file_study() {
    let server = TestServer::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = Dir::new();
    let url = server.url();
    let out = run_with_password(
        &dir,
        &server,
        &[
            "synth",
            "--patients",
            "4000",
            "--seed",
            "11",
            "--out",
            "synth",
            "--to",
            &url,
            "--table",
            "public.cabg",
            "--password-env",
            VAR,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("loaded 4000 patients"),
        "{}",
        stderr(&out)
    );
    std::fs::write(
        dir.join("file.toml"),
        study("path = \"synth/cohort.parquet\""),
    )
    .unwrap();
    let warehouse = format!(
        "warehouse = {{ engine = \"postgres\", url = \"{url}\", schema = \"public\", table = \"cabg\", password_env = \"{VAR}\" }}\nallow_row_export = true"
    );
    std::fs::write(dir.join("wh.toml"), study(&warehouse)).unwrap();
    dir.ok(&["run", "file.toml", "--out", "file_out"]);
    let ran = run_with_password(&dir, &server, &["run", "wh.toml", "--out", "wh_out"]);
    assert!(ran.status.success(), "{}", stderr(&ran));
    let (f, w) = (results(&dir, "file_out"), results(&dir, "wh_out"));
    let (fe, we) = (estimates(&f), estimates(&w));
    assert!(fe.len() > 50, "{} estimates", fe.len());
    assert_eq!(fe, we);
    assert_eq!(f["cohort"]["attrition"], w["cohort"]["attrition"]);
    assert_eq!(w["data"]["source"], "warehouse");
    let queries = w["data"]["warehouse"]["queries"].as_array().unwrap();
    assert!(
        queries
            .iter()
            .any(|q| q.as_str().unwrap().contains("FROM \"public\".\"cabg\"")),
        "{queries:?}"
    );
    assert_eq!(w["data"]["warehouse"]["row_export"], true);
    // The password is nowhere in what was written or printed.
    for entry in std::fs::read_dir(dir.join("wh_out")).unwrap() {
        let text = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!String::from_utf8_lossy(&text).contains(&server.password));
    }
    assert!(!stderr(&ran).contains(&server.password));
}

/// A wrong password, a password in the URL, no allow_row_export: exit 1, a
/// message that says what to do, nothing written, the password not shown.
#[test]
fn warehouse_refusals_are_clear() {
    let server = TestServer::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = Dir::new();
    let url = server.url();
    let config = |extra: &str, url: &str| {
        study(&format!(
            "warehouse = {{ engine = \"postgres\", url = \"{url}\", table = \"cabg\", password_env = \"{VAR}\" }}\n{extra}"
        ))
    };
    let cases = [
        (
            config("allow_row_export = true", &url),
            "wrong-password-123",
            "cannot connect",
        ),
        (
            config(
                "allow_row_export = true",
                &format!("{url} password=hunter2"),
            ),
            "x",
            "holds a password",
        ),
        (config("", &url), "x", "allow_row_export = true"),
        (
            study(
                "warehouse = { engine = \"spark\", url = \"sc://localhost:15002\", table = \"cabg\" }\nallow_row_export = true",
            ),
            "x",
            "not available in this build",
        ),
    ];
    for (config, password, needle) in cases {
        std::fs::write(dir.join("study.toml"), &config).unwrap();
        let out = dir
            .command(&["run", "study.toml"])
            .env(VAR, password)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(needle), "{needle}: {err}");
        assert!(!err.contains("hunter2"), "{err}");
        assert!(password == "x" || !err.contains(password), "{err}");
        assert!(!dir.join("out").exists());
    }
}

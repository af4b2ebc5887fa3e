//! docs/CONFIG.md is complete: every key the parser accepts, in every table
//! and for every method, appears in it (as `key`). The parser itself says
//! which keys it accepts: an unknown key `zzz` in a table is refused with the
//! list of valid ones, which this test reads through the binary.

use crate::util::{Dir, stderr};

const BASE: &str = r#"[study]
name = "reference"

[data]
synthetic = { patients = 500, seed = 1 }

[cohort]

[groups]
column = "race"
reference = "White"
compare = ["Black"]

[outcomes]
los_days = { type = "continuous" }

[factors]
biological = ["age"]

[variables]
age = { type = "numeric" }

[design]

[inference]

[[analysis]]
method = "crude"
outcomes = ["los_days"]

[report]
"#;

/// The keys the parser accepts where `zzz = 1` is put after `anchor`
/// (`replace` edits the anchor line first).
fn valid_keys(anchor: &str, replace: &str) -> Vec<String> {
    assert!(BASE.contains(anchor), "{anchor}");
    let config = BASE.replacen(anchor, &format!("{replace}\nzzz = 1"), 1);
    let dir = Dir::new();
    std::fs::write(dir.join("c.toml"), config).unwrap();
    let out = dir.run(&["check", "c.toml"]);
    let err = stderr(&out);
    let list = err
        .split("valid: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no list of valid keys after `{anchor}`: {err}"));
    list.trim()
        .split(", ")
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
        .collect()
}

#[test]
fn every_key_the_parser_accepts_is_documented() {
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/CONFIG.md")).unwrap();
    let mut tables: Vec<(String, Vec<String>)> = vec![(
        "top level".into(),
        valid_keys("name = \"reference\"", "name = \"reference\"\n[zz]")
            .into_iter()
            .filter(|k| k != "zz")
            .collect(),
    )];
    // The top-level list comes from an unknown section; the others from an
    // unknown key in each table.
    for (table, anchor) in [
        ("[study]", "[study]"),
        ("[data]", "[data]"),
        ("[cohort]", "[cohort]"),
        ("[groups]", "[groups]"),
        ("[design]", "[design]"),
        ("[inference]", "[inference]"),
        ("[report]", "[report]"),
    ] {
        tables.push((table.into(), valid_keys(anchor, anchor)));
    }
    tables.push((
        "[outcomes] entry".into(),
        valid_keys(
            "los_days = { type = \"continuous\" }",
            "[outcomes.los_days]\ntype = \"continuous\"",
        ),
    ));
    tables.push((
        "[variables] entry".into(),
        valid_keys(
            "age = { type = \"numeric\" }",
            "[variables.age]\ntype = \"numeric\"",
        ),
    ));
    for method in [
        "crude",
        "oaxaca_blinder",
        "gelbach",
        "disparity_reduction",
        "mediation",
        "hospital",
    ] {
        tables.push((
            format!("[[analysis]] method = \"{method}\""),
            valid_keys("method = \"crude\"", &format!("method = \"{method}\"")),
        ));
    }
    let mut missing = Vec::new();
    for (table, keys) in &tables {
        assert!(!keys.is_empty(), "{table}: no keys read");
        for k in keys {
            let documented = if table == "top level" {
                docs.contains(&format!("`[{k}]`")) || docs.contains(&format!("`[[{k}]]`"))
            } else {
                docs.contains(&format!("`{k}`"))
            };
            if !documented {
                missing.push(format!("{table}: `{k}`"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "keys accepted by the parser but not in docs/CONFIG.md:\n{}",
        missing.join("\n")
    );
}

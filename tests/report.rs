//! report.md: structure, escaping of strings from the config, suppression.

use crate::util::Dir;

fn study(name: &str, min_cell: usize) -> String {
    format!(
        r#"
[study]
name = '{name}'
seed = 9

[data]
synthetic = {{ patients = 20000, seed = 4 }}

[groups]
column = "race"
reference = "White"
compare = ["Black"]

[outcomes]
death_30d = {{ type = "binary" }}

[factors]
biological = ["age", "female", "diabetes"]
socioeconomic = ["adi"]

[design]
cluster = "hospital_id"

[inference]
method = "delta"

[[analysis]]
method = "crude"
outcomes = ["death_30d"]

[[analysis]]
method = "oaxaca_blinder"
outcomes = ["death_30d"]

[report]
out_dir = "out"
formats = ["json", "markdown"]
min_cell = {min_cell}
"#
    )
}

#[test]
fn markdown_report_has_its_sections_escapes_strings_and_suppresses_counts() {
    let dir = Dir::new();
    let name = r#"<script>alert(1)</script> "Gap" & | study"#;
    std::fs::write(dir.join("a.toml"), study(name, 11)).unwrap();
    dir.ok(&["run", "a.toml", "--out", "a"]);
    let md = std::fs::read_to_string(dir.join("a/report.md")).unwrap();
    for heading in [
        "## Findings",
        "## Data",
        "## Cohort",
        "## Attrition",
        "## Table 1",
        "## Analyses",
        "### oaxaca_blinder (oaxaca_blinder): death_30d, Black vs White",
    ] {
        assert!(md.contains(heading), "{heading} missing:\n{md}");
    }
    assert!(
        !md.contains(" <script>") && !md.contains("# <script>"),
        "{md}"
    );
    assert!(
        md.starts_with("# \\<script\\>alert(1)\\</script\\> \"Gap\" \\& \\| study"),
        "{md}"
    );
    // Findings come first.
    assert!(md.find("## Findings").unwrap() < md.find("## Data").unwrap());
    assert!(md.contains("| explained | biological |"));
    // The Black group's count, shown at min_cell 11, is hidden at min_cell 5000.
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("a/results.json")).unwrap())
            .unwrap();
    let n_black = r["cohort"]["groups"][1]["n"].as_u64().unwrap();
    assert!(n_black < 5000 && md.contains(&format!("| Black | {n_black} |")));
    std::fs::write(dir.join("b.toml"), study("plain", 5000)).unwrap();
    dir.ok(&["run", "b.toml", "--out", "b"]);
    let md = std::fs::read_to_string(dir.join("b/report.md")).unwrap();
    assert!(md.contains("| Black | \\<5000 |"), "{md}");
    assert!(!md.contains(&format!("| {n_black} |")), "{md}");
    // With fewer than 5000 deaths in a group every estimate of the gap would
    // give the count back: the outcome's analyses are withheld, with a warning.
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("b/results.json")).unwrap())
            .unwrap();
    assert!(r["analyses"].as_array().unwrap().is_empty());
    assert!(
        r["warnings"].as_array().unwrap().iter().any(|w| w
            .as_str()
            .unwrap()
            .contains("fewer than 5000 events or non-events")),
        "{}",
        r["warnings"]
    );
}

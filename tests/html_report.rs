//! The study report end to end: index.html and report.md structure (golden),
//! escaping of strings from data and config, small-cell suppression in every
//! file, interrupted runs, the real-data chicago config, and index.html in a
//! real headless browser.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{Dir, stderr};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A small study that exercises every method and figure (a continuous
/// outcome for the ρ curve, a hospital analysis for the caterpillar and the
/// concentration curve).
fn small_study(name: &str, data: &str, formats: &str) -> String {
    format!(
        r#"
[study]
name = {name:?}
seed = 5

[data]
{data}

[groups]
column = "race"
reference = "White"
compare = ["Black"]

[outcomes]
death_30d = {{ type = "binary", label = "30-day mortality" }}
los_days = {{ type = "continuous", label = "Length of stay (days)" }}

[factors]
clinical = ["age", "female", "diabetes"]
socioeconomic = ["adi", "insurance"]
care_site = ["hospital_id"]

[variables]
insurance = {{ type = "categorical", reference = "private" }}
hospital_id = {{ type = "categorical", absorb = true }}

[design]
cluster = "hospital_id"

[inference]
method = "bootstrap"
replicates = 20

[[analysis]]
method = "crude"
outcomes = ["death_30d", "los_days"]

[[analysis]]
method = "oaxaca_blinder"
outcomes = ["death_30d"]
threefold = true

[[analysis]]
method = "gelbach"
outcomes = ["death_30d"]
base = ["age", "female"]
added = ["clinical", "socioeconomic", "care_site"]

[[analysis]]
method = "disparity_reduction"
outcomes = ["death_30d"]
allowable = ["age", "female"]
targets = ["socioeconomic", "care_site"]
draws = 2

[[analysis]]
method = "mediation"
outcomes = ["los_days"]
mediators = ["adi"]
confounders = ["age", "female"]
inference = {{ method = "delta" }}

[[analysis]]
method = "hospital"
outcomes = ["death_30d"]
hospital = "hospital_id"
adjust = ["clinical"]

[report]
out_dir = "out"
formats = {formats}
min_cell = 11
"#
    )
}

const ALL_FORMATS: &str = r#"["html", "json", "csv", "markdown"]"#;

/// The structure of index.html: headings, figure ids, and each table row's
/// text cells (numbers and provenance values left out).
fn html_structure(html: &str) -> Vec<String> {
    let heading = regex::Regex::new(r"<h([1-4])[^>]*>(.*?)</h[1-4]>").unwrap();
    let figure = regex::Regex::new(r#"<figure id="([^"]+)">"#).unwrap();
    let row = regex::Regex::new(r"<tr>(.*?)</tr>").unwrap();
    let cell = regex::Regex::new(r#"<t[hd]( class="([^"]*)")?>(.*?)</t[hd]>"#).unwrap();
    let mut out = Vec::new();
    for line in html.lines() {
        if let Some(c) = heading.captures(line) {
            out.push(format!("h{} {}", &c[1], &c[2]));
        }
        if let Some(c) = figure.captures(line) {
            out.push(format!("figure {}", &c[1]));
        }
        for r in row.captures_iter(line) {
            let cells: Vec<&str> = cell
                .captures_iter(&r[1])
                .filter(|c| {
                    c.get(2)
                        .is_none_or(|k| k.as_str() != "num" && k.as_str() != "value")
                })
                .map(|c| c.get(3).map_or("", |m| m.as_str()))
                .collect();
            out.push(format!("  row {}", cells.join(" | ")));
        }
    }
    out
}

/// The structure of report.md: headings, figure files, and each table row's
/// first cell.
fn markdown_structure(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in md.lines() {
        if line.starts_with('#') {
            out.push(line.to_string());
        } else if let Some(rest) = line.strip_prefix("![") {
            if let Some(i) = rest.find("](") {
                out.push(format!("figure {}", rest[i + 2..].trim_end_matches(')')));
            }
        } else if let Some(rest) = line.strip_prefix("| ") {
            out.push(format!("  row {}", rest.split(" | ").next().unwrap_or("")));
        }
    }
    out
}

/// Compares with tests/golden/report/NAME, or rewrites it when
/// HEALTHGAP_BLESS=1 (after checking the change is intended).
fn golden(name: &str, lines: &[String]) {
    let path = root().join("tests/golden/report").join(name);
    let text = lines.join("\n") + "\n";
    if std::env::var("HEALTHGAP_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing; run with HEALTHGAP_BLESS=1", path.display()));
    if expected != text {
        let first = expected
            .lines()
            .zip(text.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(text.lines().count()));
        panic!(
            "{name} changed at line {}:\n  expected: {:?}\n  got:      {:?}\n(HEALTHGAP_BLESS=1 rewrites it)",
            first + 1,
            expected.lines().nth(first),
            text.lines().nth(first)
        );
    }
}

fn read(p: PathBuf) -> String {
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn html_and_markdown_structure_is_stable() {
    let dir = Dir::new();
    let data = "synthetic = { patients = 12000, seed = 3, hospitals = 12 }";
    std::fs::write(
        dir.join("s.toml"),
        small_study("Structure study", data, ALL_FORMATS),
    )
    .unwrap();
    dir.ok(&["run", "s.toml"]);
    let html = read(dir.join("out/index.html"));
    let md = read(dir.join("out/report.md"));
    let html_lines = html_structure(&html);
    // Every numbered section of the issue is there, in order.
    let sections: Vec<&String> = html_lines.iter().filter(|l| l.starts_with("h2 ")).collect();
    assert_eq!(
        sections,
        [
            "h2 1. Findings",
            "h2 2. Study and data",
            "h2 3. Attrition",
            "h2 4. Table 1",
            "h2 5. Method details",
            "h2 6. Hospitals",
            "h2 7. Sensitivity",
            "h2 8. Warnings",
            "h2 9. Methods",
            "h2 10. Appendix: fitted models",
        ]
    );
    for kind in [
        "shares",
        "waterfall",
        "forest",
        "caterpillar",
        "concentration",
        "rho",
    ] {
        assert!(
            html_lines
                .iter()
                .any(|l| l.starts_with(&format!("figure fig-{kind}_"))),
            "no {kind} figure"
        );
    }
    golden("index.structure.txt", &html_lines);
    golden("report.structure.txt", &markdown_structure(&md));
    // report.md's figures are SVG files beside it.
    for l in markdown_structure(&md) {
        if let Some(f) = l.strip_prefix("figure ") {
            let svg = read(dir.join("out").join(f));
            assert!(svg.starts_with("<svg"), "{f}");
        }
    }
    // One self-contained page: no scripts, nothing loaded from elsewhere.
    // (The SVG namespace is a name, not an address.)
    let without_namespaces = html.replace(r#"xmlns="http://www.w3.org/2000/svg""#, "");
    for needle in [
        "<script", "http://", "https://", "<link", "<img", "@import", "url(",
    ] {
        assert!(
            !without_namespaces.contains(needle),
            "index.html contains {needle}"
        );
    }
}

/// Reads a CSV's rows as string fields (no quoting in these files).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

/// Writes a synthetic CSV cohort with 20 hospitals, one of them ("H_small")
/// holding exactly 7 patients, and one insurance level renamed to a script tag.
fn hostile_cohort(dir: &Dir) -> (usize, Vec<usize>) {
    dir.ok(&[
        "synth",
        "--patients",
        "4000",
        "--seed",
        "8",
        "--format",
        "csv",
        "--no-truth",
        "--set",
        "hospitals=20",
        "--out",
        "data",
    ]);
    let text = read(dir.join("data/cohort.csv"));
    let mut rows = csv_rows(&text);
    let head = rows[0].clone();
    let col = |name: &str| head.iter().position(|h| h == name).unwrap();
    let (h, ins, race) = (col("hospital_id"), col("insurance"), col("race"));
    let mut moved = 0;
    for r in rows.iter_mut().skip(1) {
        if moved < 7 && (r[race] == "White" || r[race] == "Black") {
            r[h] = "H_small".into();
            moved += 1;
        }
        if r[ins] == "medicaid" {
            r[ins] = "<script>alert(1)</script>".into();
        }
    }
    let out: Vec<String> = rows.iter().map(|r| r.join(",")).collect();
    std::fs::write(dir.join("data/cohort.csv"), out.join("\n") + "\n").unwrap();
    // True per-hospital counts of the White and Black patients.
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for r in rows.iter().skip(1) {
        if r[race] == "White" || r[race] == "Black" {
            *counts.entry(r[h].clone()).or_default() += 1;
        }
    }
    (counts["H_small"], counts.values().copied().collect())
}

#[test]
fn strings_from_data_and_config_are_escaped_everywhere() {
    let dir = Dir::new();
    hostile_cohort(&dir);
    let name = r#"Gaps "after" CABG & <b>friends</b>'s study"#;
    std::fs::write(
        dir.join("s.toml"),
        small_study(name, r#"path = "data/cohort.csv""#, ALL_FORMATS),
    )
    .unwrap();
    dir.ok(&["run", "s.toml"]);
    let html = read(dir.join("out/index.html"));
    assert!(!html.contains("<script"), "a script tag reached index.html");
    assert!(
        !html.contains("<b>friends"),
        "markup from the study name reached index.html"
    );
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;")
            || html.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
    );
    assert!(
        html.contains("<title>Gaps &quot;after&quot; CABG &amp; &lt;b&gt;friends&lt;&#x2f;b&gt;&#x27;s study</title>"),
        "{}",
        &html[..html.find("</title>").unwrap_or(0) + 8]
    );
    let md = read(dir.join("out/report.md"));
    // Markdown escapes by backslashes (readable raw, no HTML entities).
    assert!(
        md.matches("<script").count() == md.matches("\\<script").count()
            && md.contains("\\<script\\>alert(1)\\</script\\>"),
        "{md}"
    );
    assert!(md.starts_with("# Gaps \"after\" CABG \\& \\<b\\>friends\\</b\\>'s study"));
    assert!(!md.contains("&lt;") && !md.contains("&gt;") && !md.contains("&amp;"));
    for entry in std::fs::read_dir(dir.join("out/figures")).unwrap() {
        let svg = read(entry.unwrap().path());
        assert!(!svg.contains("<script") && !svg.contains("<b>"));
    }
}

#[test]
fn a_hospital_of_seven_patients_shows_as_fewer_than_eleven_in_every_file() {
    let dir = Dir::new();
    let (small, counts) = hostile_cohort(&dir);
    assert_eq!(small, 7);
    std::fs::write(
        dir.join("s.toml"),
        small_study("Suppression", r#"path = "data/cohort.csv""#, ALL_FORMATS),
    )
    .unwrap();
    dir.ok(&["run", "s.toml"]);
    let seven = regex::Regex::new(r"(^|[^0-9.])7([^0-9.]|$)").unwrap();
    let mut files = vec![];
    for entry in std::fs::read_dir(dir.join("out")).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            files.push(p);
        }
    }
    assert!(files.len() >= 8, "{files:?}");
    for f in &files {
        for line in read(f.clone()).lines().filter(|l| l.contains("H_small")) {
            assert!(!seven.is_match(line), "{}: {line}", f.display());
        }
    }
    let hospitals = csv_rows(&read(dir.join("out/hospitals.csv")));
    let head = &hospitals[0];
    let col = |name: &str| head.iter().position(|h| h == name).unwrap();
    let row = hospitals
        .iter()
        .find(|r| r[col("hospital")] == "H_small")
        .expect("H_small is listed");
    assert_eq!(row[col("n")], "<11");
    assert_eq!(row[col("n_comparison")], "<11");
    assert_eq!(row[col("risk_standardized")], "");
    // Complementary suppression: the hidden counts add up to at least 11 and
    // are at least two, so the total minus the shown ones reveals no hospital.
    let shown: usize = hospitals[1..]
        .iter()
        .filter_map(|r| r[col("n")].parse::<usize>().ok())
        .sum();
    let hidden_rows = hospitals[1..]
        .iter()
        .filter(|r| r[col("n")] == "<11" || r[col("n")] == "suppressed")
        .count();
    // The hospital hidden only to protect H_small says so instead of `<11`.
    assert!(hospitals[1..].iter().any(|r| r[col("n")] == "suppressed"));
    let total: usize = counts.iter().sum();
    assert!(hidden_rows >= 2, "only {hidden_rows} hidden");
    assert!(
        total - shown >= 11,
        "hidden cells add up to {}",
        total - shown
    );
    // Rates: shown rate × shown n gives a hospital's deaths and Table 1 gives
    // the total, so the hospitals with hidden rates must hold at least 11
    // deaths and 11 survivors together (or none).
    let data = csv_rows(&read(dir.join("data/cohort.csv")));
    let dcol = |name: &str| data[0].iter().position(|h| h == name).unwrap();
    let (dh, dr, dy) = (dcol("hospital_id"), dcol("race"), dcol("death_30d"));
    let hidden_rate: Vec<&str> = hospitals[1..]
        .iter()
        .filter(|r| r[col("analysis")] == "hospital" && r[col("risk_standardized")].is_empty())
        .map(|r| r[col("hospital")].as_str())
        .collect();
    let (mut deaths, mut survivors) = (0usize, 0usize);
    for r in &data[1..] {
        if (r[dr] == "White" || r[dr] == "Black") && hidden_rate.contains(&r[dh].as_str()) {
            if r[dy] == "1" {
                deaths += 1;
            } else {
                survivors += 1;
            }
        }
    }
    assert!(
        hidden_rate.is_empty() || (hidden_rate.len() >= 2 && deaths >= 11 && survivors >= 11),
        "{} hospitals with hidden rates hold {deaths} deaths and {survivors} survivors",
        hidden_rate.len()
    );
    // The concentration curve is rounded to multiples of max(1%, 11 / n), so
    // that no step gives a hospital's counts back.
    let r: serde_json::Value = serde_json::from_str(&read(dir.join("out/results.json"))).unwrap();
    let n_black = r["cohort"]["groups"][1]["n"].as_f64().unwrap();
    let q = (11.0 / n_black).max(0.01);
    let hospital = r["analyses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["method"] == "hospital")
        .unwrap();
    let curve: Vec<f64> = hospital["estimates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["quantity"] == "concentration_curve")
        .map(|e| e["estimate"].as_f64().unwrap())
        .collect();
    assert_eq!(curve.len(), 20);
    for v in curve {
        let k = v / q;
        assert!(
            (k - k.round()).abs() < 1e-6 || (v - 1.0).abs() < 1e-12,
            "{v} is not a multiple of {q}"
        );
    }
    // Table 1: no SMD next to a hidden cell (it would give the cell back);
    // at min_cell 60 the Black column has hidden cells.
    std::fs::write(
        dir.join("s60.toml"),
        small_study("Suppression", r#"path = "data/cohort.csv""#, ALL_FORMATS)
            .replace("min_cell = 11", "min_cell = 60"),
    )
    .unwrap();
    dir.ok(&["run", "s60.toml", "--out", "out60"]);
    let r60: serde_json::Value =
        serde_json::from_str(&read(dir.join("out60/results.json"))).unwrap();
    let mut hidden_cells = 0;
    for row in r60["cohort"]["table1"].as_array().unwrap() {
        let hidden = |l: &str| {
            let c = row[l].as_str().unwrap_or("");
            c.starts_with('<') || c == "suppressed"
        };
        if hidden("White") || hidden("Black") {
            hidden_cells += 1;
            assert!(row["smd_by_group"]["Black"].is_null(), "{row}");
            assert!(row["smd"].is_null(), "{row}");
        }
    }
    assert!(hidden_cells > 0, "no hidden Table 1 cell at min_cell 60");
    // The HTML never lists hospitals by count; with so few hospitals showing
    // a rate it draws no caterpillar plot and says why.
    let html = read(dir.join("out/index.html"));
    assert!(
        html.contains("no caterpillar plot of death_30d"),
        "caterpillar note missing"
    );
}

#[test]
fn the_chicago_config_reproduces_the_r_oaxaca_vignette_through_the_cli() {
    let dir = Dir::new();
    let config = root().join("analyses/chicago_wage_gap.toml");
    dir.ok(&["run", config.to_str().unwrap(), "--out", "chicago"]);
    let r: serde_json::Value =
        serde_json::from_str(&read(dir.join("chicago/results.json"))).unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(&read(root().join("tests/golden/oaxaca/expected.json"))).unwrap();
    let e = &expected["chicago_wage"];
    let get = |id: &str, q: &str| -> f64 {
        r["analyses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .unwrap()["estimates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["quantity"] == q && x["factor"].is_null() && x["term"].is_null())
            .unwrap()["estimate"]
            .as_f64()
            .unwrap()
    };
    let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    close(get("crude", "gap"), e["gap"].as_f64().unwrap());
    close(get("oaxaca_blinder", "gap"), e["gap"].as_f64().unwrap());
    for q in ["endowments", "coefficients", "interaction"] {
        close(
            get("oaxaca_blinder", q),
            e["threefold"][q].as_f64().unwrap(),
        );
    }
    close(
        get("oaxaca_blinder", "explained"),
        e["twofold"]["pooled"][0].as_f64().unwrap(),
    );
    close(
        get("oaxaca_blinder", "unexplained"),
        e["twofold"]["pooled"][1].as_f64().unwrap(),
    );
    close(
        get("oaxaca_blinder_reference", "explained"),
        e["twofold"]["reference"][0].as_f64().unwrap(),
    );
    close(
        get("oaxaca_blinder_reference", "unexplained"),
        e["twofold"]["reference"][1].as_f64().unwrap(),
    );
    assert_eq!(r["analyses"][0]["n"], 666);
}

/// Waits until `cond` holds (or panics after `secs`).
fn wait_for(secs: u64, what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn staging_entries(dir: &Dir) -> Vec<String> {
    dir.entries()
        .into_iter()
        .filter(|e| e.contains(".partial-"))
        .collect()
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[test]
fn an_interrupted_run_leaves_the_previous_report_intact_and_no_temporary_folder() {
    let dir = Dir::new();
    let quick = "synthetic = { patients = 6000, seed = 3, hospitals = 40 }";
    std::fs::write(
        dir.join("quick.toml"),
        small_study("Quick", quick, ALL_FORMATS),
    )
    .unwrap();
    let slow = "synthetic = { patients = 400000, seed = 1 }";
    std::fs::write(
        dir.join("slow.toml"),
        small_study("Slow", slow, ALL_FORMATS),
    )
    .unwrap();
    dir.ok(&["run", "quick.toml", "--out", "report"]);
    let before = read(dir.join("report/results.json"));
    let before_html = read(dir.join("report/index.html"));
    for sig in ["-INT", "-TERM", "-KILL"] {
        let child = dir
            .command(&["run", "slow.toml", "--out", "report"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for(60, "the staging folder", || {
            !staging_entries(&dir).is_empty()
        });
        std::thread::sleep(Duration::from_millis(300));
        signal(child.id(), sig);
        let out = child.wait_with_output().unwrap();
        assert!(
            !out.status.success(),
            "{sig}: the run finished before the signal"
        );
        // The earlier report is untouched.
        assert_eq!(read(dir.join("report/results.json")), before, "{sig}");
        assert_eq!(read(dir.join("report/index.html")), before_html, "{sig}");
        if sig == "-KILL" {
            // SIGKILL cannot be caught: the folder stays until the next run
            // into the same place removes it.
            assert_eq!(staging_entries(&dir).len(), 1);
            dir.ok(&["run", "quick.toml", "--out", "report"]);
        } else {
            assert_eq!(
                out.status.code(),
                Some(if sig == "-INT" { 130 } else { 143 }),
                "{}",
                stderr(&out)
            );
            assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
        }
        assert!(
            staging_entries(&dir).is_empty(),
            "{sig}: {:?}",
            dir.entries()
        );
        assert_eq!(dir.entries(), ["quick.toml", "report", "slow.toml"]);
    }
}

/// Headless Chromium with the flags that keep it from reaching the network
/// on its own (the page must not need it either).
fn chromium() -> PathBuf {
    for c in [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ] {
        if Path::new(c).is_file() {
            return PathBuf::from(c);
        }
    }
    panic!(
        "the browser test needs Chromium: install Debian's package (apt-get install chromium); \
         .ci/run does this"
    );
}

struct Browsed {
    png: Vec<u8>,
    console: Vec<String>,
    requests: Vec<String>,
}

/// Loads `page` in headless Chromium: a screenshot, the console messages and
/// every URL the page requested (from Chromium's net log).
fn browse(dir: &Dir, page: &Path) -> Browsed {
    let shot = dir.join("shot.png");
    let netlog = dir.join("net.json");
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1200,2400",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--log-net-log={}", netlog.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(shot.is_file(), "no screenshot: {}", stderr(&out));
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let console = log
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    let mut requests = page_requests(&std::fs::read_to_string(&netlog).unwrap_or_default());
    requests.sort();
    requests.dedup();
    Browsed {
        png: std::fs::read(&shot).unwrap(),
        console,
        requests,
    }
}

/// URLs the page asked for, from Chromium's net log: URL_REQUEST_START_JOB
/// events whose initiator is the page (a file:// page's origin is "null");
/// Chromium's own requests (updates, accounts, time) have initiator "not an
/// origin". A net log cut short by the exit is closed before parsing.
fn page_requests(net: &str) -> Vec<String> {
    let trimmed = net.trim_end().trim_end_matches(',');
    let parsed: serde_json::Value = serde_json::from_str(trimmed)
        .or_else(|_| serde_json::from_str(&format!("{trimmed}]}}")))
        .unwrap_or_else(|e| panic!("unreadable net log: {e}"));
    let start_job = parsed["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"].clone();
    assert!(
        start_job.is_number(),
        "the net log has no URL_REQUEST_START_JOB type"
    );
    parsed["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter(|e| e["type"] == start_job)
                .filter(|e| e["params"]["initiator"] != "not an origin")
                .filter_map(|e| e["params"]["url"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Share of non-white pixels and whether the first palette colour (the
/// first block's bars) appears.
fn ink(png: &[u8]) -> (f64, bool) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let px = &buf[..info.buffer_size()];
    let (mut inked, mut blue, mut total) = (0usize, false, 0usize);
    for p in px.chunks(channels) {
        total += 1;
        if p[0] < 245 || p[1] < 245 || p[2] < 245 {
            inked += 1;
        }
        if (p[0] as i32 - 31).abs() < 6
            && (p[1] as i32 - 119).abs() < 6
            && (p[2] as i32 - 180).abs() < 6
        {
            blue = true;
        }
    }
    (inked as f64 / total as f64, blue)
}

fn outside(requests: &[String]) -> Vec<&String> {
    requests
        .iter()
        .filter(|u| !u.starts_with("file://") && !u.starts_with("data:"))
        .collect()
}

#[test]
fn index_html_renders_in_a_headless_browser_without_errors_or_network() {
    let dir = Dir::new();
    let data = "synthetic = { patients = 6000, seed = 3, hospitals = 40 }";
    std::fs::write(
        dir.join("s.toml"),
        small_study("Browser study", data, r#"["html"]"#),
    )
    .unwrap();
    dir.ok(&["run", "s.toml"]);
    let page = dir.join("out/index.html");
    // The report answers first: the Findings section is the first section.
    let html = read(page.clone());
    let first_h2 = html.find("<h2").unwrap();
    assert!(
        html[first_h2..].starts_with("<h2 id=\"findings\">1. Findings</h2>"),
        "{}",
        &html[first_h2..first_h2 + 60]
    );
    // Every figure's text is at least 11 px at 100% zoom: the SVGs are drawn
    // no wider than the page's 62rem column (so not scaled down), and every
    // font size in them is ≥ 11.
    let size = regex::Regex::new(r#"font-size="([0-9.]+)""#).unwrap();
    let width = regex::Regex::new(r#"<svg width="([0-9]+)""#).unwrap();
    let sizes: Vec<f64> = size
        .captures_iter(&html)
        .map(|c| c[1].parse().unwrap())
        .collect();
    assert!(!sizes.is_empty(), "no text in the figures");
    assert!(sizes.iter().all(|s| *s >= 11.0), "font sizes {sizes:?}");
    for w in width.captures_iter(&html) {
        assert!(
            w[1].parse::<u32>().unwrap() <= 992,
            "an SVG {} px wide",
            &w[1]
        );
    }
    assert!(!html.contains(">-0<") && !html.contains("-0.0<") && !html.contains(">-0%"));
    let b = browse(&dir, &page);
    let (share, blue) = ink(&b.png);
    assert!(
        share > 0.03,
        "the screenshot is blank ({share:.4} of pixels inked)"
    );
    assert!(blue, "no figure bars in the screenshot");
    assert!(b.console.is_empty(), "console messages: {:?}", b.console);
    assert!(
        outside(&b.requests).is_empty(),
        "network requests: {:?}",
        outside(&b.requests)
    );
    // The checks catch what they look for: a page with a console error and a
    // remote image fails both.
    let bad = dir.join("bad.html");
    std::fs::write(
        &bad,
        "<html><body><p>x</p><img src=\"http://192.0.2.1/x.png\">\
         <script>console.error('boom')</script></body></html>",
    )
    .unwrap();
    let b = browse(&dir, &bad);
    assert!(
        !b.console.is_empty(),
        "the console check missed console.error"
    );
    assert!(
        !outside(&b.requests).is_empty(),
        "the network check missed a remote image"
    );
    let (share, _) = ink(&b.png);
    assert!(
        share < 0.03,
        "a nearly empty page counted as inked ({share:.4})"
    );
}

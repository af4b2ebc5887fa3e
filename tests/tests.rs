//! End-to-end tests of the `healthgap` binary and its library entry. Each
//! module is one command or one concern; `util` runs the real binary in a
//! temporary folder. The methods' golden tests against published numbers and
//! peer tools run on the estimators directly, in
//! crates/decompose/tests/golden/.

#![allow(clippy::unwrap_used, clippy::type_complexity)]

// Shared: the binary in a temporary folder.
mod util;

// Commands end to end: `check` and `run` (and the library entry, and the
// regression fixture of every analyses/*.toml), `synth`.
mod cli_run;
mod synth;
mod warehouse;

// Bad input: every bad config and bad data fails `check` and `run` alike.
mod bad_configs;
mod config_reference;

// Inference: every method × model × inference path.
mod imputation;
mod inference_paths;

// Recovery of the generator's truth and coverage (most are #[ignore]d and run
// by bench/run.sh), and Oaxaca–Blinder's end-to-end identities.
mod gelbach;
mod hospital;
mod oaxaca;
mod reduction;

// Outputs: results.json against its schema, report.md and index.html.
mod html_report;
mod report;
mod schema;

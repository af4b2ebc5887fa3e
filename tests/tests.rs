//! End-to-end tests of the `healthgap` binary. Each module is one command or one
//! concern; `util` runs the real binary in a temporary folder.

#![allow(clippy::unwrap_used, clippy::type_complexity)]

mod bad_configs;
mod cli_run;
mod config_reference;
mod gelbach;
mod hospital;
mod html_report;
mod inference_paths;
mod mediation;
mod oaxaca;
mod reduction;
mod report;
mod schema;
mod synth;
mod util;
mod yun;

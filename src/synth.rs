//! `healthgap synth`: generate the synthetic cohort, its OMOP tables and its truth.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use healthgap_cohort::{TableFormat, write_table};
use healthgap_synth::{Params, Sample, omop, truth};
use indicatif::{ProgressBar, ProgressStyle};

use crate::output::StagedDir;

/// Output format of the flat extract and the OMOP tables.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// Apache Parquet.
    Parquet,
    /// CSV with a header row.
    Csv,
}

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Number of patients (index CABG procedures) to draw.
    #[arg(
        long,
        value_name = "N",
        default_value = "200000",
        allow_hyphen_values = true
    )]
    patients: String,
    /// Seed of the patient-level random streams.
    #[arg(
        long,
        value_name = "S",
        default_value = "7",
        allow_hyphen_values = true
    )]
    seed: String,
    /// Output folder (created; an existing one is replaced only when the run succeeds).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Also (or only) load the cohort into a PostgreSQL table: a
    /// `postgresql://user@host:port/db` URL or `host=… user=… dbname=…`
    /// string, without a password (see --password-env).
    #[arg(long, value_name = "URL")]
    to: Option<String>,
    /// The table --to replaces (optionally `schema.table`).
    #[arg(long, value_name = "NAME", default_value = "cohort", requires = "to")]
    table: String,
    /// The environment variable that holds the password for --to.
    #[arg(long, value_name = "VAR", requires = "to")]
    password_env: Option<String>,
    /// File format of the cohort and OMOP tables.
    #[arg(long, value_enum, default_value = "parquet")]
    format: Format,
    /// Also write the cohort as OMOP CDM v5.4 tables in DIR/omop/.
    #[arg(long, requires = "out")]
    omop: bool,
    /// Also write truth_patients (latent SES, position, hospital effect and the
    /// oracle probabilities of every patient).
    #[arg(long)]
    truth_patients: bool,
    /// Skip truth.json (faster for very large cohorts).
    #[arg(long)]
    no_truth: bool,
    /// Override a model parameter, e.g. --set black.ses_gap=0.9 (repeatable;
    /// `--set help` lists every key).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

fn parse_count(flag: &str, text: &str, min: i64) -> Result<i64> {
    let value: i64 = text
        .trim()
        .parse()
        .with_context(|| format!("{flag} must be a whole number (got `{text}`)"))?;
    if value < min {
        bail!("{flag} must be at least {min} (got {value})");
    }
    Ok(value)
}

/// Builds the parameters from the flags.
fn params(args: &SynthArgs) -> Result<Params> {
    let mut params = Params::default();
    if args.set.iter().any(|s| s == "help") {
        bail!("parameter keys: {}", Params::keys().join(", "));
    }
    params.patients = parse_count("--patients", &args.patients, 1)? as usize;
    params.seed = parse_count("--seed", &args.seed, 0)? as u64;
    for assignment in &args.set {
        params
            .set_assignment(assignment)
            .with_context(|| format!("--set {assignment}"))?;
    }
    params.validate()?;
    Ok(params)
}

fn progress(len: u64, message: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} ({eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message.to_string());
    bar
}

/// Runs `healthgap synth`.
pub fn run(args: &SynthArgs) -> Result<()> {
    let params = params(args)?;
    if args.out.is_none() && args.to.is_none() {
        bail!("give --out DIR (files) or --to URL (a PostgreSQL table), or both");
    }
    // Connect first: a wrong password fails before minutes of generation.
    let mut warehouse = match &args.to {
        Some(url) => Some(
            healthgap_warehouse::Postgres::connect(url, args.password_env.as_deref())
                .context("--to")?,
        ),
        None => None,
    };
    let bar = progress(params.patients as u64, "patients");
    let sample = Sample::generate(&params, &|k| bar.inc(k));
    bar.finish_and_clear();
    if let Some(pg) = &mut warehouse {
        let table = healthgap_sql::TableName::dotted(&args.table);
        let frame = healthgap_cohort::table_to_frame(&sample.flat_table())?;
        let data = healthgap_cohort::frame_to_result(&frame)?;
        pg.replace_table(&table, &data)
            .with_context(|| format!("loading the cohort into {}", pg.target()))?;
        eprintln!(
            "loaded {} patients into table `{}` at {}",
            params.patients,
            args.table,
            pg.target()
        );
    }
    match &args.out {
        Some(out) => write_folder(args, &params, &sample, out),
        None => Ok(()),
    }
}

/// The cohort, hospitals, OMOP tables and truth.json into the folder `out`.
fn write_folder(
    args: &SynthArgs,
    params: &Params,
    sample: &Sample,
    out: &std::path::Path,
) -> Result<()> {
    let staged = StagedDir::new(out)?;
    let format = match args.format {
        Format::Parquet => TableFormat::Parquet,
        Format::Csv => TableFormat::Csv,
    };
    let dir = staged.path();
    let file = |name: &str| dir.join(format!("{name}.{}", format.extension()));
    write_table(&sample.flat_table(), &file("cohort"), format).context("writing the cohort")?;
    write_table(
        &sample.hospitals_table(),
        &dir.join("hospitals.csv"),
        TableFormat::Csv,
    )
    .context("writing hospitals.csv")?;
    if args.truth_patients {
        write_table(
            &sample.truth_patients_table(),
            &file("truth_patients"),
            format,
        )
        .context("writing truth_patients")?;
    }
    if args.omop {
        let omop_dir = dir.join("omop");
        std::fs::create_dir(&omop_dir).context("creating omop/")?;
        for table in omop::tables(sample) {
            let path = omop_dir.join(format!("{}.{}", table.name, format.extension()));
            write_table(&table, &path, format)
                .with_context(|| format!("writing omop/{}", table.name))?;
        }
    }
    if !args.no_truth {
        let spinner = ProgressBar::new_spinner();
        spinner.set_message("computing truth.json");
        let truth = truth::compute(sample);
        spinner.finish_and_clear();
        let json = serde_json::to_string_pretty(&truth).context("serialising truth.json")?;
        std::fs::write(dir.join("truth.json"), json).context("writing truth.json")?;
    }
    let target = staged.commit()?;
    eprintln!(
        "wrote {} patients ({} hospitals) to {}",
        params.patients,
        sample.world.len(),
        target.display()
    );
    Ok(())
}

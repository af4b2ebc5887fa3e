//! The `healthgap` command line: `synth`, `check` and `run`.
//!
//! Exit codes: 0 success; 1 the command failed (bad input, unreadable data,
//! unwritable output: the message says which file, column or value, and how to
//! fix it); 2 the command line itself is malformed (clap's usage errors);
//! 3 the report was written, but an analysis failed (the others are kept;
//! results.json `failed`) or some intervals were withheld (too many failed
//! bootstrap replicates, or none derived: the terminal, results.json
//! `inference.withheld` and the report say which and why);
//! 128 + the signal (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP) when interrupted,
//! after removing the partial output (an earlier report is untouched).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `println!` that ignores a closed stdout (output piped into `head`, say)
/// instead of panicking.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// `print!` that ignores a closed stdout.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($t)*);
    }};
}

mod output;
mod run;
mod synth;
mod terminal;

/// healthgap explains why an outcome differs between patient groups: it
/// decomposes racial and ethnic gaps (e.g. 30-day mortality after cardiac
/// surgery) into biological/clinical, socioeconomic and care-site parts.
#[derive(Debug, Parser)]
#[command(name = "healthgap", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a synthetic CABG cohort whose causal truth is known.
    ///
    /// Writes DIR/cohort.parquet (or .csv), DIR/truth.json (the true value of
    /// every quantity healthgap estimates, for the population and for this
    /// sample), DIR/hospitals.csv and, with --omop, the same cohort as OMOP CDM
    /// v5.4 tables in DIR/omop/. The output is written to a temporary folder and
    /// renamed into place, so an interrupted run leaves nothing behind. The same
    /// seed gives byte-identical files whatever the number of threads.
    Synth(synth::SynthArgs),
    /// Validate an analysis config against its data: `check` OK means `run`
    /// will not fail on the config.
    ///
    /// Parses CONFIG (TOML schema v1, every key in docs/CONFIG.md; unknown keys
    /// are errors that name the key, its line and the nearest valid key), loads
    /// the cohort it names (flat file, OMOP folder or synthetic) with typed
    /// columns, applies the filters, prints the cohort summary (rows read, the
    /// attrition table, n per group and clusters; counts below [report]
    /// min_cell are shown as <11), and fits every analysis once on its complete
    /// cases without inference, so that a singular design, a group too small
    /// for its coefficients or a method-specific refusal fails here with the
    /// message `run` would give.
    Check {
        /// The analysis config (TOML).
        config: std::path::PathBuf,
    },
    /// Run every analysis of a config and write the results.
    ///
    /// Runs each [[analysis]] (crude, oaxaca_blinder, gelbach,
    /// disparity_reduction, mediation, hospital) for every outcome and
    /// comparison group, each on the complete cases of its own variables, and
    /// writes the [report] formats: results.json; estimates.csv, models.csv,
    /// table1.csv, attrition.csv (and hospitals.csv); index.html; report.md
    /// with figures/*.svg — to the config's [report] out_dir (or --out DIR),
    /// atomically: a failed run
    /// leaves an earlier report untouched. Every warning is printed, grouped
    /// by analysis. Exit code 3: written, but an analysis failed (the others
    /// are kept) or some intervals were withheld (both listed on the
    /// terminal); exit code 1 and nothing written when every analysis failed.
    Run {
        /// The analysis config (TOML).
        config: std::path::PathBuf,
        /// Output folder (overrides [report] out_dir).
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Synth(args) => synth::run(&args).map(|()| run::RunOutcome::default()),
        Command::Check { config } => run::check(&config).map(|()| run::RunOutcome::default()),
        Command::Run { config, out } => run::run(&config, out.as_deref()),
    };
    match result {
        Ok(outcome)
            if outcome.failed == 0
                && outcome.withheld == 0
                && outcome.fallbacks == 0
                && outcome.imputation_fallbacks == 0 =>
        {
            ExitCode::SUCCESS
        }
        Ok(outcome) => {
            eprintln!(
                "healthgap: the report is written, but {} analysis(es) failed, {} analysis \
                 result(s) have withheld intervals, {} use the delta-method fallback and {} \
                 imputation model(s) fell back (see above); exit code 3",
                outcome.failed, outcome.withheld, outcome.fallbacks, outcome.imputation_fallbacks
            );
            ExitCode::from(3)
        }
        Err(err) => {
            let mut message = format!("error: {err}");
            for cause in err.chain().skip(1) {
                message.push_str(&format!(": {cause}"));
            }
            eprintln!("{message}");
            ExitCode::from(1)
        }
    }
}

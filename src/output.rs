//! Atomic output folders: everything is written to a temporary sibling folder and
//! renamed into place at the end, so an interrupted or failed run never leaves a
//! half-written folder and never damages an earlier good one.
//!
//! Interrupts (Ctrl-C, SIGTERM, SIGHUP) remove the staging folder before the
//! process exits with 128 + the signal number; a folder left by a killed run
//! (SIGKILL cannot be caught) is removed by the next run into the same place.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

use anyhow::{Context, Result, bail};

/// A temporary folder that becomes `target` on [`StagedDir::commit`] and is
/// removed if dropped before that.
pub struct StagedDir {
    target: PathBuf,
    staging: PathBuf,
    committed: bool,
}

impl StagedDir {
    /// Creates the staging folder next to `target` (same file system, so the final
    /// rename is atomic), creating missing parent folders. Fails with a clear
    /// message if the parent cannot be created or written, or if `target` exists
    /// and is not a folder.
    pub fn new(target: &Path) -> Result<StagedDir> {
        let target = if target.is_absolute() {
            target.to_path_buf()
        } else {
            std::env::current_dir()
                .context("cannot read the current directory")?
                .join(target)
        };
        if target.exists() && !target.is_dir() {
            bail!(
                "--out {} exists and is not a folder; choose another path",
                target.display()
            );
        }
        let parent = target
            .parent()
            .context("the output folder has no parent folder")?;
        if !parent.is_dir() {
            std::fs::create_dir_all(parent).with_context(|| {
                format!(
                    "cannot write to {}: cannot create its parent folder {} (check the path and \
                     its permissions)",
                    target.display(),
                    parent.display()
                )
            })?;
        }
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out".into());
        remove_stale_staging(parent, &name);
        let staging = parent.join(format!(".{name}.partial-{}", std::process::id()));
        if staging.exists() {
            std::fs::remove_dir_all(&staging).ok();
        }
        // Registered before it exists, so that an interrupt at any moment
        // from here on removes it.
        watch_interrupts();
        if let Ok(mut live) = STAGING.lock() {
            live.push(staging.clone());
        }
        std::fs::create_dir(&staging).with_context(|| {
            format!(
                "cannot write to {}: cannot create a folder in {} (check its permissions)",
                target.display(),
                parent.display()
            )
        })?;
        Ok(StagedDir {
            target,
            staging,
            committed: false,
        })
    }

    /// Where to write files now.
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// Moves the staging folder into place, replacing an existing target folder.
    pub fn commit(mut self) -> Result<PathBuf> {
        // Holding the lock keeps an interrupt from exiting between the renames.
        let mut live = STAGING.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|p| p != &self.staging);
        if self.target.exists() {
            let old = self.staging.with_extension("old");
            std::fs::rename(&self.target, &old)
                .with_context(|| format!("cannot replace {}", self.target.display()))?;
            if let Err(e) = std::fs::rename(&self.staging, &self.target) {
                std::fs::rename(&old, &self.target).ok();
                return Err(e)
                    .with_context(|| format!("cannot move output into {}", self.target.display()));
            }
            std::fs::remove_dir_all(&old).ok();
        } else {
            std::fs::rename(&self.staging, &self.target)
                .with_context(|| format!("cannot move output into {}", self.target.display()))?;
        }
        self.committed = true;
        WRITTEN.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(self.target.clone())
    }
}

/// Removes staging folders of `name` left by runs that were killed (their
/// process no longer exists).
fn remove_stale_staging(parent: &Path, name: &str) {
    let prefix = format!(".{name}.partial-");
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file_name.strip_prefix(&prefix) else {
            continue;
        };
        let pid = rest.trim_end_matches(".old");
        let alive = pid
            .parse::<u32>()
            .map(|p| Path::new(&format!("/proc/{p}")).exists())
            .unwrap_or(true);
        if !alive {
            std::fs::remove_dir_all(entry.path()).ok();
        }
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.committed {
            let mut live = STAGING.lock().unwrap_or_else(|e| e.into_inner());
            live.retain(|p| p != &self.staging);
            std::fs::remove_dir_all(&self.staging).ok();
        }
    }
}

/// Staging folders of this process not yet committed or dropped.
static STAGING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Set once an output folder has been moved into place.
static WRITTEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Starts (once) a thread that, on SIGINT, SIGTERM or SIGHUP, removes the live
/// staging folders and exits with 128 + the signal.
fn watch_interrupts() {
    static START: Once = Once::new();
    START.call_once(|| {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            return;
        };
        std::thread::spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let live = STAGING.lock().unwrap_or_else(|e| e.into_inner());
                for p in live.iter() {
                    std::fs::remove_dir_all(p).ok();
                }
                if WRITTEN.load(std::sync::atomic::Ordering::SeqCst) {
                    eprintln!("\ninterrupted after the output was written (it is complete)");
                } else {
                    eprintln!(
                        "\ninterrupted: no output was written (an earlier one, if any, is untouched)"
                    );
                }
                std::process::exit(128 + sig);
            }
        });
    });
}

/// The current time in UTC as `YYYY-MM-DD HH:MM:SS UTC` (the civil calendar
/// of the Unix day count: the generator's `civil_from_days`, Hinnant's).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = healthgap_synth::table::civil_from_days(i32::try_from(days).unwrap_or(0));
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

//! Atomic output folders: everything is written to a temporary sibling folder and
//! renamed into place at the end, so an interrupted or failed run never leaves a
//! half-written folder and never damages an earlier good one.

use std::path::{Path, PathBuf};

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
    /// rename is atomic). Fails with a clear message if the parent is missing or
    /// not writable, or if `target` exists and is not a folder.
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
            bail!(
                "cannot write to {}: the parent folder {} does not exist; create it first",
                target.display(),
                parent.display()
            );
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
            std::fs::remove_dir_all(&self.staging).ok();
        }
    }
}

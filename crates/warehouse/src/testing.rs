//! A throwaway PostgreSQL server for tests: `initdb` into a temporary folder
//! (password authentication, SCRAM), `pg_ctl start` listening only on a Unix
//! socket in that folder, stopped and removed on drop. Needs Debian's
//! `postgresql` package (the server binaries under
//! /usr/lib/postgresql/<version>/bin); the README's test command installs
//! it. As root, the server runs as the `postgres` user (initdb refuses root).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running server.
pub struct TestServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
    /// The superuser's name.
    pub user: String,
    /// Its password (tests put it into an environment variable).
    pub password: String,
}

/// The folder of the server binaries (`initdb`, `pg_ctl`, `postgres`).
pub fn server_binaries() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
        .collect();
    found.sort();
    found.pop()
}

impl TestServer {
    /// Starts a server (an error names what is missing or what failed).
    pub fn start() -> Result<TestServer, String> {
        let bin = server_binaries().ok_or(
            "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin: install Debian's \
             `postgresql` package (the README's test command does)",
        )?;
        let dir = tempfile::Builder::new()
            .prefix("healthgap-pg")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let server = TestServer {
            dir,
            bin,
            as_postgres,
            user: "healthgap".into(),
            password: "s3cret-for-tests".into(),
        };
        server.init()?;
        server.pg_ctl(&["start", "-w", "-t", "60"])?;
        Ok(server)
    }

    /// The folder of the socket (the `host` of a connection string).
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A connection string for the `postgres` database (no password).
    pub fn url(&self) -> String {
        format!(
            "host={} port=5432 user={} dbname=postgres",
            self.socket_dir().display(),
            self.user
        )
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let path = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let out = cmd
            .args(args)
            .output()
            .map_err(|e| format!("{program}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn init(&self) -> Result<(), String> {
        let root = self.dir.path();
        let pwfile = root.join("pw");
        std::fs::write(&pwfile, &self.password).map_err(|e| e.to_string())?;
        if self.as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(root)
                .status()
                .map_err(|e| e.to_string())?;
            if !status.success() {
                return Err("chown to the postgres user failed".into());
            }
        }
        let data = root.join("data");
        self.run(
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-U",
                &self.user,
                "--pwfile",
                &pwfile.display().to_string(),
                "--auth",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--no-locale",
            ],
        )
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let root = self.dir.path();
        let options = format!(
            "-k {} -c listen_addresses='' -p 5432 -c fsync=off",
            root.display()
        );
        let data = root.join("data").display().to_string();
        let log = root.join("log").display().to_string();
        let mut all = vec!["-D", &data, "-l", &log, "-o", &options];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all)
    }

    /// Stops the server at once (as a crash would): for tests of a server
    /// that goes away mid-run.
    pub fn kill(&self) -> Result<(), String> {
        self.pg_ctl(&["stop", "-m", "immediate"])
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["stop", "-m", "immediate"]);
    }
}

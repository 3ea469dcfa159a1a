//! A throwaway PostgreSQL server for tests: its own cluster in a temporary directory, on a
//! loopback port, stopped and deleted on drop.
//!
//! Uses Debian's server binaries (`postgresql` package, which `make test` installs) from
//! `/usr/lib/postgresql/<version>/bin`, or from `$MOIP_PG_BIN`. PostgreSQL refuses to run as
//! root, so under root the cluster belongs to the `postgres` user the package creates and the
//! commands run through `runuser`.

use crate::free_port;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// A running PostgreSQL cluster.
pub struct TempPostgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MOIP_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.retain(|p| p.join("initdb").exists());
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        panic!("PostgreSQL server binaries not found: `make test` installs the postgresql package")
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl TempPostgres {
    /// Creates and starts a cluster with a `moip` superuser (trust authentication on
    /// loopback only).
    ///
    /// # Panics
    /// When PostgreSQL is not installed or does not start: a test cannot go on without it.
    pub fn start() -> TempPostgres {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "moip-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the cluster directory");
        let as_postgres = is_root();
        let mut pg = TempPostgres {
            dir,
            bin: bin_dir(),
            port: 0,
            as_postgres,
        };
        if as_postgres {
            let out = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&pg.dir)
                .output()
                .expect("chown");
            assert!(
                out.status.success(),
                "chown: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let data = pg.data();
        let out = pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().expect("utf8 path"),
                "-U",
                "moip",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // A free port can be taken between our check and the server's bind: try a few.
        for _ in 0..5 {
            pg.port = free_port();
            let options = format!(
                "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories={}",
                pg.port,
                pg.dir.display()
            );
            let log = pg.dir.join("server.log");
            let out = pg.run(
                "pg_ctl",
                &[
                    "-D",
                    data.to_str().expect("utf8 path"),
                    "-o",
                    &options,
                    "-l",
                    log.to_str().expect("utf8 path"),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
            );
            if out.status.success() {
                return pg;
            }
        }
        let log = std::fs::read_to_string(pg.dir.join("server.log")).unwrap_or_default();
        panic!("PostgreSQL did not start:\n{log}");
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        command
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", path.display()))
    }

    /// The connection string for the `postgres` database.
    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=moip dbname=postgres",
            self.port
        )
    }

    /// The cluster's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

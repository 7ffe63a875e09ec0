//! Test databases: a fresh PostgreSQL database or SQLite file per test, removed afterwards.
//!
//! PostgreSQL is found at `CARDINAL_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).
//! If it cannot be reached the test fails loudly: a suite that skips its database proves nothing.

#![allow(dead_code, reason = "each test binary uses a different part of the support")]

use sqlx::{Connection, Executor, PgConnection};

/// The two backends every suite runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// Runs each listed `async fn name(backend: Backend)` once per backend, as `postgres::name`
/// and `sqlite::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Backend::Postgres).await
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Backend::Sqlite).await
                }
            )*
        }
    };
}

pub fn admin_pg_url() -> String {
    std::env::var("CARDINAL_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// One test's database.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    pg_name: Option<String>,
    _dir: tempfile::TempDir,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        // reqwest is built without a default TLS provider; every test binary uses ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("a temporary directory");
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}/cardinal.db", dir.path().display());
                TestDb { backend, url, pg_name: None, _dir: dir }
            }
            Backend::Postgres => {
                let admin = admin_pg_url();
                let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
                    panic!("PostgreSQL is required for this test and is not reachable at {admin}: {e}. Start it (see .ci/run) or set CARDINAL_TEST_PG_URL.")
                });
                let name = format!("cardinal_test_{}", uuid::Uuid::new_v4().simple());
                conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.expect("CREATE DATABASE");
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
                let url = format!("{base}/{name}");
                TestDb { backend, url, pg_name: Some(name), _dir: dir }
            }
        }
    }

    /// A scratch directory that lives as long as the database.
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else { return };
        // Drop runs inside the test's runtime; a helper thread with its own runtime may block.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&admin_pg_url()).await {
                    let _ =
                        conn.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).await;
                }
            });
        })
        .join();
    }
}

/// A PostgreSQL cluster of the test's own, on a private port, that the test can stop and start
/// (initdb and pg_ctl of the installed PostgreSQL, run as the postgres user).
pub struct PgCluster {
    pub dir: std::path::PathBuf,
    pub port: u16,
    bin: std::path::PathBuf,
}

/// The installed PostgreSQL's server binaries (`initdb`, `pg_ctl`, `pg_dump`…).
pub fn pg_bin() -> std::path::PathBuf {
    std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server binaries are installed under /usr/lib/postgresql")
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .max()
        .expect("initdb is installed")
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A new directory the postgres user owns (PostgreSQL and PgBouncer refuse to run as root).
pub fn postgres_dir(kind: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cardinal-{kind}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    assert!(std::process::Command::new("chown").arg("postgres").arg(&dir).status().unwrap().success());
    dir
}

impl PgCluster {
    fn as_postgres(&self, program: &str, args: &[&str]) -> std::process::Output {
        let mut command = std::process::Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(self.bin.join(program)).args(args);
        command.output().expect("runuser runs")
    }

    /// Creates and starts a cluster.
    pub fn start_new() -> PgCluster {
        let cluster = PgCluster { dir: postgres_dir("pg"), port: free_port(), bin: pg_bin() };
        let data = cluster.dir.join("data");
        let out = cluster
            .as_postgres("initdb", &["-D", data.to_str().unwrap(), "-A", "trust", "-U", "postgres", "--no-sync"]);
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        cluster.start();
        cluster
    }

    /// A streaming replica of `primary` on a port of its own (`pg_basebackup -R`), started.
    pub fn replica_of(primary: &PgCluster) -> PgCluster {
        let replica = PgCluster { dir: postgres_dir("pg-replica"), port: free_port(), bin: pg_bin() };
        let data = replica.dir.join("data");
        let port = primary.port.to_string();
        let out = replica.as_postgres(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-D",
                data.to_str().unwrap(),
                "-R",
                "-X",
                "stream",
                "--no-sync",
                "-c",
                "fast",
            ],
        );
        assert!(out.status.success(), "pg_basebackup: {}", String::from_utf8_lossy(&out.stderr));
        replica.start();
        replica
    }

    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// The URL of one of its databases.
    pub fn url_of(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn start(&self) {
        let data = self.dir.join("data");
        let options = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.display());
        let log = self.dir.join("log");
        let out = self.as_postgres(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-o", &options, "-l", log.to_str().unwrap(), "-w", "start"],
        );
        assert!(out.status.success(), "pg_ctl start: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn stop(&self) {
        let data = self.dir.join("data");
        let out = self.as_postgres("pg_ctl", &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"]);
        assert!(out.status.success(), "pg_ctl stop: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = self.as_postgres("pg_ctl", &["-D", data.to_str().unwrap(), "-m", "immediate", "-w", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TestDb {
    /// A database someone else owns (a [`PgCluster`]): nothing is dropped.
    pub fn external(url: String) -> TestDb {
        let _ = rustls::crypto::ring::default_provider().install_default();
        TestDb {
            backend: Backend::Postgres,
            url,
            pg_name: None,
            _dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }
}

pub mod fleet;

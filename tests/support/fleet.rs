//! The parts of a fleet around PostgreSQL, real and on private ports: Debian's PgBouncer
//! configured from the README's own `pgbouncer.ini`, and a TCP relay that can go silent without
//! closing (what a stuck network path or a wedged pooler looks like to a client).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{free_port, postgres_dir};

/// A PgBouncer in transaction mode in front of a PostgreSQL on `127.0.0.1:<upstream>`,
/// killed when dropped.
pub struct PgBouncer {
    pub port: u16,
    dir: std::path::PathBuf,
    process: std::process::Child,
}

/// The README's `pgbouncer.ini` (the block under "Behind PgBouncer").
fn readme_ini() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("### Behind PgBouncer").nth(1).expect("README has a Behind PgBouncer section");
    let block = section.split("```ini\n").nth(1).expect("with an ini block");
    block.split("```").next().unwrap().to_owned()
}

/// `text` with `from` replaced by `to`; `from` must be there, so the README and the test agree.
fn replaced(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the README's pgbouncer.ini no longer has {from:?}");
    text.replace(from, to)
}

impl PgBouncer {
    /// Starts PgBouncer with the README's settings, except where it listens, where the database
    /// is (every database name on that server), trust authentication, and the pool size.
    pub fn start(upstream: u16, pool_size: u32) -> PgBouncer {
        let port = free_port();
        let dir = postgres_dir("pgbouncer");
        let mut ini = readme_ini();
        ini = replaced(
            &ini,
            "cardinal = host=db.internal port=5432 dbname=cardinal",
            &format!("* = host=127.0.0.1 port={upstream}"),
        );
        ini = replaced(&ini, "listen_port = 6432", &format!("listen_port = {port}"));
        ini = replaced(&ini, "auth_type = scram-sha-256", "auth_type = trust");
        ini = replaced(
            &ini,
            "auth_file = /etc/pgbouncer/userlist.txt",
            &format!("auth_file = {}/userlist.txt", dir.display()),
        );
        ini = replaced(&ini, "default_pool_size = 20", &format!("default_pool_size = {pool_size}"));
        ini.push_str("unix_socket_dir =\n");
        std::fs::write(dir.join("pgbouncer.ini"), ini).unwrap();
        std::fs::write(dir.join("userlist.txt"), "\"postgres\" \"\"\n").unwrap();
        // setpriv execs PgBouncer itself (runuser would stay as its parent), so killing the
        // child stops PgBouncer.
        let process = std::process::Command::new("setpriv")
            .args(["--reuid=postgres", "--regid=postgres", "--init-groups", "/usr/sbin/pgbouncer"])
            .arg(dir.join("pgbouncer.ini"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("log")).unwrap())
            .spawn()
            .expect("PgBouncer is installed (apt-get install pgbouncer)");
        let bouncer = PgBouncer { port, dir, process };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "PgBouncer did not listen: {}", bouncer.log());
            #[allow(
                clippy::disallowed_methods,
                reason = "called before the test's servers start, off any runtime's hot path"
            )]
            std::thread::sleep(Duration::from_millis(20));
        }
        bouncer
    }

    /// The URL of `database` through it.
    pub fn url_of(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP relay to `127.0.0.1:<upstream>` that forwards until told to go silent, and from then
/// on forwards nothing either way while keeping every connection open.
pub struct SilentableRelay {
    pub port: u16,
    silent: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl SilentableRelay {
    pub async fn start(upstream: u16) -> SilentableRelay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let silent = Arc::new(AtomicBool::new(false));
        let flag = silent.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else { continue };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, flag.clone()));
                tokio::spawn(pump(server_read, client_write, flag.clone()));
            }
        });
        SilentableRelay { port, silent, task }
    }

    /// From now on nothing gets through, and nothing is closed.
    pub fn go_silent(&self) {
        self.silent.store(true, Ordering::SeqCst);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    silent: Arc<AtomicBool>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        if silent.load(Ordering::SeqCst) {
            // Hold the connection open and deliver nothing, ever.
            std::future::pending::<()>().await;
        }
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        if silent.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

impl Drop for SilentableRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

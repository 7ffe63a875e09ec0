//! `cardinal witness serve`: a C2SP tlog-witness of our own, so that an operator can run an
//! independent witness on another machine with one command. It cosigns a log's checkpoint only
//! when it is consistent with the last one it cosigned for that origin, and remembers, in its
//! own SQLite file, what it cosigned: a log that forks or rolls back is refused (409/422).

use std::collections::HashMap;
use std::path::Path;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use cardinal_card::tlog::{self, COSIGNATURE_TYPE, Checkpoint, Hash, Note, VerifierKey};
use sha2::{Digest, Sha256};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};

/// Most bytes of an add-checkpoint request.
pub const MAX_BODY: usize = 64 * 1024;

/// A refusal, with the status tlog-witness gives it.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 400: malformed, too many proof lines, or old > size.
    BadRequest(String),
    /// 404: not a log this witness knows.
    UnknownLog,
    /// 403: no valid signature of the log's key.
    Unsigned,
    /// 409: the witness's last cosigned size differs from `old`.
    Conflict(u64),
    /// 422: the checkpoint is not consistent with what was cosigned.
    Inconsistent(String),
    /// 500.
    Internal(String),
}

impl Refusal {
    fn status(&self) -> StatusCode {
        match self {
            Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
            Refusal::UnknownLog => StatusCode::NOT_FOUND,
            Refusal::Unsigned => StatusCode::FORBIDDEN,
            Refusal::Conflict(_) => StatusCode::CONFLICT,
            Refusal::Inconsistent(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Refusal::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn response(&self) -> HttpResponse {
        match self {
            Refusal::Conflict(size) => {
                HttpResponse::Conflict().content_type("text/x.tlog.size").body(format!("{size}\n"))
            }
            other => {
                let detail = match other {
                    Refusal::BadRequest(d) | Refusal::Inconsistent(d) | Refusal::Internal(d) => d.clone(),
                    Refusal::UnknownLog => "unknown log".into(),
                    Refusal::Unsigned => "no valid signature of the log's key".into(),
                    Refusal::Conflict(_) => String::new(),
                };
                HttpResponse::build(other.status())
                    .content_type("text/plain; charset=utf-8")
                    .body(format!("{detail}\n"))
            }
        }
    }
}

fn internal(error: impl std::fmt::Display) -> Refusal {
    Refusal::Internal(error.to_string())
}

/// A witness: its name and key, the logs it witnesses, what it cosigned.
pub struct Witness {
    name: String,
    key: ed25519_dalek::SigningKey,
    logs: HashMap<String, VerifierKey>,
    pool: SqlitePool,
}

/// A parsed add-checkpoint request.
struct Submission {
    old: u64,
    proof: Vec<Hash>,
    note: String,
}

fn parse(body: &[u8]) -> Result<Submission, Refusal> {
    let malformed = |why: &str| Refusal::BadRequest(format!("malformed request: {why}"));
    let text = std::str::from_utf8(body).map_err(|_| malformed("not UTF-8"))?;
    let (first, mut rest) = text.split_once('\n').ok_or_else(|| malformed("no old line"))?;
    let old = first.strip_prefix("old ").ok_or_else(|| malformed("no old line"))?;
    if old.is_empty() || !old.bytes().all(|b| b.is_ascii_digit()) || (old.len() > 1 && old.starts_with('0')) {
        return Err(malformed("old is not a decimal"));
    }
    let old: u64 = old.parse().map_err(|_| malformed("old is not a decimal"))?;
    let mut proof = Vec::new();
    loop {
        let (line, after) = rest.split_once('\n').ok_or_else(|| malformed("no blank line before the note"))?;
        rest = after;
        if line.is_empty() {
            break;
        }
        if proof.len() == tlog::MAX_PROOF_HASHES {
            return Err(malformed("over 63 proof lines"));
        }
        proof.push(tlog::decode_hash(line).map_err(|_| malformed("a proof line is not a base64 hash"))?);
    }
    Ok(Submission { old, proof, note: rest.to_owned() })
}

impl Witness {
    /// Opens (or creates) the state file.
    pub async fn open(
        name: &str,
        key: ed25519_dalek::SigningKey,
        logs: Vec<VerifierKey>,
        state: &Path,
    ) -> anyhow::Result<Witness> {
        let options = SqliteConnectOptions::new().filename(state).create_if_missing(true);
        // One connection: every check-and-update runs alone, so two submissions for one log
        // can never both pass against the same old state.
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS witnessed (origin TEXT PRIMARY KEY, size INTEGER NOT NULL, \
             root BLOB NOT NULL, checkpoint TEXT NOT NULL)",
        )
        .execute(&pool)
        .await?;
        let logs = logs.into_iter().map(|vkey| (vkey.name.clone(), vkey)).collect();
        Ok(Witness { name: name.to_owned(), key, logs, pool })
    }

    /// The witness's cosignature verifier key.
    pub fn vkey(&self) -> VerifierKey {
        VerifierKey::new(&self.name, COSIGNATURE_TYPE, self.key.verifying_key())
    }

    /// tlog-witness `add-checkpoint`, checked in the specification's order; returns the
    /// cosignature line.
    pub async fn add_checkpoint(&self, body: &[u8], now: u64) -> Result<String, Refusal> {
        let submission = parse(body)?;
        let note = Note::parse(&submission.note).map_err(|e| Refusal::BadRequest(format!("malformed note: {e}")))?;
        let checkpoint = Checkpoint::parse_body(&note.text)
            .map_err(|e| Refusal::BadRequest(format!("malformed checkpoint: {e}")))?;
        let log = self.logs.get(&checkpoint.origin).ok_or(Refusal::UnknownLog)?;
        if !note.verify(log).map_err(|_| Refusal::Unsigned)? {
            return Err(Refusal::Unsigned);
        }
        if submission.old > checkpoint.size {
            return Err(Refusal::BadRequest("old is above the checkpoint's size".into()));
        }
        let mut tx = self.pool.begin().await.map_err(internal)?;
        let stored = sqlx::query("SELECT size, root FROM witnessed WHERE origin = ?1")
            .bind(&checkpoint.origin)
            .fetch_optional(&mut *tx)
            .await
            .map_err(internal)?;
        let (last, last_root) = match &stored {
            Some(row) => {
                let root: Vec<u8> = row.try_get("root").map_err(internal)?;
                let root: [u8; 32] = root.try_into().map_err(|_| internal("a stored root is not 32 bytes"))?;
                (row.try_get::<i64, _>("size").map_err(internal)? as u64, Some(Hash(root)))
            }
            None => (0, None),
        };
        if submission.old != last {
            return Err(Refusal::Conflict(last));
        }
        if checkpoint.size == 0 && checkpoint.root != tlog::EMPTY_HASH {
            return Err(Refusal::Inconsistent("an empty tree with another root than SHA-256(\"\")".into()));
        }
        if submission.old == 0 && !submission.proof.is_empty() {
            return Err(Refusal::Inconsistent("a proof from size 0".into()));
        }
        if let Some(last_root) = last_root {
            if submission.old == checkpoint.size && checkpoint.root != last_root {
                return Err(Refusal::Inconsistent("the same size with another root".into()));
            }
            if submission.old < checkpoint.size {
                tlog::verify_consistency(
                    &submission.proof,
                    submission.old,
                    last_root,
                    checkpoint.size,
                    checkpoint.root,
                )
                .map_err(|_| Refusal::Inconsistent("the consistency proof does not verify".into()))?;
            }
        }
        let line = tlog::cosign(&self.name, &self.key, now, &note.text);
        let log_lines: String = note
            .signatures
            .iter()
            .filter(|s| s.name == log.name && s.id == log.id)
            .map(tlog::SignatureLine::to_line)
            .collect();
        let served = format!("{}\n{log_lines}{}", note.text, line.to_line());
        sqlx::query(
            "INSERT INTO witnessed (origin, size, root, checkpoint) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (origin) DO UPDATE SET size = ?2, root = ?3, checkpoint = ?4",
        )
        .bind(&checkpoint.origin)
        .bind(checkpoint.size as i64)
        .bind(checkpoint.root.0.as_slice())
        .bind(&served)
        .execute(&mut *tx)
        .await
        .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        Ok(line.to_line())
    }

    /// The latest cosigned checkpoint of the log whose origin hashes to `hex`.
    pub async fn latest(&self, hex: &str) -> Result<Option<String>, Refusal> {
        let Some(origin) = self.logs.keys().find(|origin| hex::encode(Sha256::digest(origin.as_bytes())) == hex) else {
            return Ok(None);
        };
        let row = sqlx::query("SELECT checkpoint FROM witnessed WHERE origin = ?1")
            .bind(origin)
            .fetch_optional(&self.pool)
            .await
            .map_err(internal)?;
        row.map(|row| row.try_get("checkpoint").map_err(internal)).transpose()
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

async fn add_checkpoint(witness: web::Data<Witness>, body: web::Bytes) -> HttpResponse {
    match witness.add_checkpoint(&body, unix_now()).await {
        Ok(line) => HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(line),
        Err(refusal) => {
            tracing::info!(?refusal, "add-checkpoint refused");
            refusal.response()
        }
    }
}

async fn checkpoint(witness: web::Data<Witness>, hex: web::Path<String>) -> HttpResponse {
    match witness.latest(&hex).await {
        Ok(Some(note)) => HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(note),
        Ok(None) => HttpResponse::NotFound().finish(),
        Err(refusal) => refusal.response(),
    }
}

/// Serves the witness on `listen` until SIGTERM or SIGINT.
pub async fn serve(witness: Witness, listen: &str) -> anyhow::Result<()> {
    tracing::info!(vkey = %witness.vkey(), "witness vkey: {}", witness.vkey());
    let witness = web::Data::new(witness);
    let listener = std::net::TcpListener::bind(listen)?;
    let port = listener.local_addr()?.port();
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(witness.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY))
            .route("/add-checkpoint", web::post().to(add_checkpoint))
            .route("/{hash}/checkpoint", web::get().to(checkpoint))
    })
    .workers(1)
    .listen(listener)?
    .run();
    tracing::info!(port, "witness listening");
    server.await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cardinal_card::tlog::LogKey;

    fn log_key() -> LogKey {
        LogKey::new(ed25519_dalek::SigningKey::from_bytes(&[1; 32]))
    }

    async fn witness(dir: &Path) -> Witness {
        let key = ed25519_dalek::SigningKey::from_bytes(&[2; 32]);
        Witness::open("w.example/1", key, vec![log_key().vkey("o")], &dir.join("w.db")).await.unwrap()
    }

    /// A tree of `n` entries: its root, and a consistency proof from `m`.
    fn tree(n: u64, m: u64) -> (Hash, Vec<Hash>) {
        let entries: Vec<Vec<u8>> = (0..n).map(|i| format!("e{i}").into_bytes()).collect();
        let hashes = Hashes(
            tlog::append(0, &Hashes::default(), entries.iter().map(Vec::as_slice)).unwrap().into_iter().collect(),
        );
        (tlog::root(n, &hashes).unwrap(), tlog::consistency_proof(m, n, &hashes).unwrap())
    }
    use cardinal_card::tlog::Hashes;

    fn submission(old: u64, proof: &[Hash], note: &str) -> Vec<u8> {
        let mut body = format!("old {old}\n");
        for hash in proof {
            body.push_str(&tlog::encode_hash(hash));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(note);
        body.into_bytes()
    }

    fn signed(size: u64, root: Hash) -> String {
        log_key().sign(&Checkpoint { origin: "o".into(), size, root })
    }

    #[tokio::test]
    async fn a_witness_cosigns_consistent_checkpoints_and_refuses_the_rest_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let witness = witness(dir.path()).await;
        let (root5, _) = tree(5, 0);
        let line = witness.add_checkpoint(&submission(0, &[], &signed(5, root5)), 7).await.unwrap();
        let cosignature = tlog::SignatureLine::parse(line.trim_end()).unwrap();
        let body = Checkpoint { origin: "o".into(), size: 5, root: root5 }.body();
        assert_eq!(tlog::verify_cosignature(&witness.vkey(), &body, &cosignature.signature).unwrap(), 7);

        let (root9, proof) = tree(9, 5);
        assert_eq!(witness.add_checkpoint(&submission(0, &[], &signed(9, root9)), 8).await, Err(Refusal::Conflict(5)));
        witness.add_checkpoint(&submission(5, &proof, &signed(9, root9)), 8).await.unwrap();
        // A fork: size 9 again with another root; a rollback; a bad proof.
        let (other, _) = tree(10, 0);
        assert!(matches!(
            witness.add_checkpoint(&submission(9, &[], &signed(9, other)), 9).await,
            Err(Refusal::Inconsistent(_))
        ));
        assert_eq!(
            witness.add_checkpoint(&submission(5, &proof, &signed(9, root9)), 9).await,
            Err(Refusal::Conflict(9))
        );
        let (root12, _) = tree(12, 9);
        assert!(matches!(
            witness.add_checkpoint(&submission(9, &proof, &signed(12, root12)), 9).await,
            Err(Refusal::Inconsistent(_))
        ));
        assert!(matches!(
            witness.add_checkpoint(&submission(10, &[], &signed(9, root9)), 9).await,
            Err(Refusal::BadRequest(_))
        ));
        // Another key, another log, garbage.
        let forged = LogKey::new(ed25519_dalek::SigningKey::from_bytes(&[3; 32])).sign(&Checkpoint {
            origin: "o".into(),
            size: 12,
            root: root12,
        });
        assert_eq!(witness.add_checkpoint(&submission(9, &[], &forged), 9).await, Err(Refusal::Unsigned));
        let unknown = log_key().sign(&Checkpoint { origin: "p".into(), size: 1, root: root5 });
        assert_eq!(witness.add_checkpoint(&submission(0, &[], &unknown), 9).await, Err(Refusal::UnknownLog));
        assert!(matches!(witness.add_checkpoint(b"old x\n\n", 9).await, Err(Refusal::BadRequest(_))));
        let many = vec![root5; 64];
        assert!(matches!(
            witness.add_checkpoint(&submission(9, &many, &signed(12, root12)), 9).await,
            Err(Refusal::BadRequest(_))
        ));
        // Its state survives a restart, and it serves the latest cosigned checkpoint.
        drop(witness);
        let witness = super::tests::witness(dir.path()).await;
        assert_eq!(witness.add_checkpoint(&submission(0, &[], &signed(9, root9)), 9).await, Err(Refusal::Conflict(9)));
        let latest = witness.latest(&hex::encode(Sha256::digest(b"o"))).await.unwrap().unwrap();
        let note = Note::parse(&latest).unwrap();
        assert!(note.verify(&log_key().vkey("o")).unwrap() && note.verify(&witness.vkey()).unwrap());
        assert_eq!(witness.latest("00").await.unwrap(), None);
    }
}

//! A minimal HTTP/1.1 server for the SDK's tests: it answers what each test's handler says and
//! records every request with the time it arrived. Keep-alive is supported, so a client that
//! reuses its connection is served as it would be by Cardinal.

use std::sync::{Arc, Mutex};

use cardinal_card::card::countersign;
use cardinal_card::wire::{CardStatus, CardView, LookupResponse, Problem, ProblemCode};
use cardinal_card::{FormatLimits, Identity, ParsedCard, RawSignedModel, SigningKey, b64, card::CardBuilder};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::time::Instant;

/// One request as the server read it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Request {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The values of a repeated query parameter (test identities need no percent-decoding).
    pub fn query(&self, name: &str) -> Vec<String> {
        let query = self.target.split_once('?').map(|(_, q)| q).unwrap_or_default();
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.to_owned())
            .collect()
    }
}

/// What to answer.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Close the connection without answering.
    hang_up: bool,
}

impl Reply {
    pub fn json(status: u16, body: &impl Serialize) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec(body).unwrap(),
            hang_up: false,
        }
    }

    /// A problem, as Cardinal writes it.
    pub fn problem(status: u16, code: ProblemCode) -> Reply {
        let problem = Problem {
            type_: format!("https://cardinal.dev/problems/{}", code.as_str()),
            title: code.title().to_owned(),
            status,
            detail: format!("test server says {}", code.as_str()),
            code,
        };
        let mut reply = Reply::json(status, &problem);
        reply.headers[0].1 = "application/problem+json".into();
        reply
    }

    pub fn rate_limited() -> Reply {
        Reply::problem(429, ProblemCode::RateLimited)
    }

    pub fn unavailable() -> Reply {
        Reply::problem(503, ProblemCode::Unavailable)
    }

    pub fn not_modified(etag: &str) -> Reply {
        Reply { status: 304, headers: vec![("ETag".into(), etag.into())], body: Vec::new(), hang_up: false }
    }

    pub fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: body.as_bytes().to_vec(),
            hang_up: false,
        }
    }

    pub fn hang_up() -> Reply {
        Reply { status: 0, headers: Vec::new(), body: Vec::new(), hang_up: true }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// A running test server; it stops with the test's runtime.
pub struct TestServer {
    pub url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl TestServer {
    /// Listens on a free port of 127.0.0.1 before returning, so no test waits for it.
    pub async fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                tokio::spawn(serve(stream, handler.clone(), log.clone()));
            }
        });
        TestServer { url, requests }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

async fn serve(stream: tokio::net::TcpStream, handler: Arc<Handler>, log: Arc<Mutex<Vec<Request>>>) {
    let mut stream = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (Some(method), Some(target)) = (parts.next(), parts.next()) else { return };
        let (method, target) = (method.to_owned(), target.to_owned());
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
        let length = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let request = Request { method, target, headers, body, at: Instant::now() };
        log.lock().unwrap().push(request.clone());
        let reply = handler(&request);
        if reply.hang_up {
            return;
        }
        let mut head = format!("HTTP/1.1 {} Test\r\nContent-Length: {}\r\n", reply.status, reply.body.len());
        for (name, value) in &reply.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let stream = stream.get_mut();
        if stream.write_all(head.as_bytes()).await.is_err() || stream.write_all(&reply.body).await.is_err() {
            return;
        }
    }
}

/// The service's side of a directory: its key countersigns what it serves.
pub struct Service {
    pub key: SigningKey,
}

impl Service {
    pub fn new() -> Service {
        Service { key: SigningKey::generate() }
    }

    /// A card as the server returns it: the owner's model with the service countersignature.
    pub fn publish(&self, raw: RawSignedModel) -> CardView {
        let parsed = ParsedCard::parse(raw, &FormatLimits::default()).unwrap();
        let mut raw = parsed.raw.clone();
        countersign(&mut raw, &parsed.snapshot, &self.key);
        CardView {
            id: parsed.id.to_string(),
            identity: parsed.content.identity.as_str().to_owned(),
            public_key: parsed.content.public_key_base64.clone(),
            created_at: parsed.content.created_at,
            previous_card_id: None,
            status: CardStatus::Active,
            superseded_by: None,
            revoked_at: None,
            revocation_reason: None,
            raw,
        }
    }

    /// A fresh card of `identity`, served.
    pub fn card_of(&self, identity: &str) -> CardView {
        let owner = SigningKey::generate();
        let (_, raw) = CardBuilder::new(Identity::parse(identity).unwrap(), &owner, 1_700_000_000).build();
        self.publish(raw)
    }

    /// The answer to `GET /v1/cards?identity=…`: one card per identity, with an ETag that names
    /// the identities (the cards never change in these tests).
    pub fn lookup(&self, request: &Request) -> Reply {
        let identities = request.query("identity");
        let etag = format!("\"{}\"", b64::encode_url(identities.join(",").as_bytes()));
        if request.header("if-none-match") == Some(etag.as_str()) {
            return Reply::not_modified(&etag);
        }
        let body =
            LookupResponse { identities: identities.iter().map(|i| (i.clone(), vec![self.card_of(i)])).collect() };
        Reply::json(200, &body).header("ETag", &etag)
    }
}

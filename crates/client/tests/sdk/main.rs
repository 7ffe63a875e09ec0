//! The SDK against a local HTTP server that plays Cardinal: the bounded lookup cache, and the
//! retries of `429` and `503`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test fails by panicking")]

mod cache;
mod retry;
mod server;

use cardinal_client::{Client, ClientBuilder};

use crate::server::{Service, TestServer};

/// A client of `server` that trusts `service`'s key.
fn client(server: &TestServer, service: &Service) -> ClientBuilder {
    Client::builder(&server.url).token("test-token").service_key(service.key.public_key())
}

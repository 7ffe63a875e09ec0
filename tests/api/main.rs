//! API tests: the real server over a real database, on PostgreSQL and on SQLite.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test fails by panicking")]

#[path = "../support/mod.rs"]
mod support;

mod admin_reads;
mod answer_cache;
mod bootstrap;
mod caching;
mod compose;
mod concurrency;
mod contrib;
mod durability;
mod fleet;
mod helpers;
mod hostile;
mod keyknox;
mod lifecycle;
mod operations;
mod operator;
mod pythia;
mod rejections;
mod resilience;
mod sdk;
mod security;
mod tokens;
mod transparency;
mod virgil;

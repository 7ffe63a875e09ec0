//! API tests: the real server over a real database, on PostgreSQL and on SQLite.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test fails by panicking")]

#[path = "../support/mod.rs"]
mod support;

mod bootstrap;
mod caching;
mod compose;
mod concurrency;
mod durability;
mod fleet;
mod helpers;
mod hostile;
mod lifecycle;
mod operations;
mod rejections;
mod resilience;
mod sdk;
mod security;
mod tokens;
mod transparency;
mod virgil;

//! Cardinal: a self-hosted public-key directory.
//!
//! [`startup::Application`] builds the service from [`config::Settings`]; the rules live in
//! [`directory`], the persistence in [`storage`], and the card format in `cardinal-card`.

pub mod auth;
pub mod config;
pub mod directory;
pub mod error;
pub mod files;
pub mod manage;
pub mod metrics;
pub mod ratelimit;
pub mod routes;
pub mod startup;
pub mod storage;
pub mod telemetry;

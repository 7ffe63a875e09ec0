//! Cardinal: a self-hosted public-key directory.
//!
//! [`startup::Application`] builds the service from [`config::Settings`]; the vocabulary lives in
//! [`domain`], the rules in [`directory`] (cards) and [`apps`] (apps and their keys), the
//! persistence in [`storage`], and the card format in `cardinal-card`. See ARCHITECTURE.md.

pub mod admin;
pub mod apps;
pub mod auth;
pub mod backup;
pub mod clock;
pub mod config;
pub mod directory;
pub mod doctor;
pub mod domain;
pub mod error;
pub mod files;
pub mod keyknox;
pub mod manage;
pub mod metrics;
pub mod pythia;
pub mod ratelimit;
pub mod routes;
pub mod startup;
pub mod storage;
pub mod telemetry;
pub mod transparency;

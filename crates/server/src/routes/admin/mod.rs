//! `/v1/admin`: admin tokens only.

pub mod console_api;
pub mod events;
pub mod keyknox;
pub mod revoke;
pub mod tokens;

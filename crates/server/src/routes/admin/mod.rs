//! `/v1/admin`: admin tokens only.

pub mod events;
pub mod keyknox;
pub mod revoke;

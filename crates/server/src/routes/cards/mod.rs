//! `/v1/cards`: one file per action.

pub mod get;
pub mod lookup;
pub mod publish;
pub mod revoke;

//! The event log, for admins.

use super::{Directory, DirectoryError};
use crate::domain::{Caller, KeyRole};
use crate::storage::{EventRow, EventsQuery};

impl Directory {
    /// A page of the caller's app's event log; admins only.
    pub async fn events(&self, caller: &Caller, after: i64, limit: i64) -> Result<Vec<EventRow>, DirectoryError> {
        if caller.role != KeyRole::Admin {
            return Err(DirectoryError::Forbidden("the event log needs an admin token"));
        }
        if after < 0 {
            return Err(DirectoryError::InvalidPage("after must be 0 or more".into()));
        }
        if !(1..=self.rules.events_page_max).contains(&limit) {
            return Err(DirectoryError::InvalidPage(format!("limit must be 1 to {}", self.rules.events_page_max)));
        }
        let page = EventsQuery { app_id: &caller.app_id, after, limit, max_bytes: self.rules.answer_bytes };
        Ok(self.log.list_events(page).await?)
    }
}

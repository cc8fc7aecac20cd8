//! Housekeeping: deleting the rows that only grow and no longer matter (sign-in attempt
//! counters, one-time-code challenges, expired contact and staff sessions). A scheduler calls
//! [`Engine::purge_expired`] now and then; what goes is decided by
//! [`crate::storage::AuthRepo::purge_expired`].

use super::{Engine, ServiceResult};
use crate::storage::PurgeReport;

impl Engine {
    /// Deletes, across every tenant, what has expired at the engine's clock's `now` (see
    /// [`crate::storage::AuthRepo::purge_expired`]): counters last counted more than
    /// [`crate::auth::ATTEMPT_RETENTION`] ago, challenges expired for longer than that, contact and
    /// staff sessions that have expired. Safe to run from several processes at once.
    pub async fn purge_expired(&self) -> ServiceResult<PurgeReport> {
        Ok(self.storage.purge_expired(self.clock.now()).await?)
    }
}

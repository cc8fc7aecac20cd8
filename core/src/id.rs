//! Typed identifiers: one UUIDv7 newtype per entity, and the pure [`IdGen`] that makes them.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! ids {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps a UUID read back from storage or a request.
            #[must_use]
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID inside.
            #[must_use]
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }
    )*};
}

ids! {
    /// An MSP's workspace.
    TenantId;
    /// A staff user (MSP employee).
    StaffUserId;
    /// A named bundle of staff permissions.
    RoleId;
    /// A client company of the MSP.
    CompanyId;
    /// A site (location) of a company.
    SiteId;
    /// An onboarding template.
    TemplateId;
    /// A phase of a template.
    TemplatePhaseId;
    /// A task of a template.
    TemplateTaskId;
    /// An onboarding portal.
    PortalId;
    /// A phase of a portal.
    PhaseId;
    /// A task of a portal.
    TaskId;
    /// A checklist item of a task (portal or template).
    ChecklistItemId;
    /// A survey question of a task (portal or template).
    SurveyQuestionId;
    /// A client contact of a portal.
    ContactId;
    /// A comment on a task.
    CommentId;
    /// An activity event.
    EventId;
    /// A portal user of the self-service portal (defined now, used by later work).
    PortalUserId;
    /// A message queued in the outbox.
    MessageId;
    /// A contact's access link (CON-2).
    AccessLinkId;
    /// A one-time code challenge of forwarded-link protection (CON-5).
    ChallengeId;
    /// An item waiting for a contact's daily digest (BYD-5).
    DigestItemId;
}

/// Makes UUIDv7 ids (through [`IdGen::next_id`]) without a clock or RNG of its own.
///
/// The caller seeds it with the command's `now` and fresh random bytes; every id it yields carries
/// `now` as its millisecond timestamp and is distinct from the others it yields (a 64-bit counter
/// is mixed into the random part), so a command's ids sort after every earlier command's and
/// tests can reproduce them from the same seed.
#[derive(Debug, Clone)]
pub struct IdGen {
    millis: u64,
    seed: u64,
    counter: u64,
}

impl IdGen {
    /// A generator for one command run at `now` with 16 bytes of fresh entropy.
    #[must_use]
    pub fn new(now: DateTime<Utc>, entropy: [u8; 16]) -> Self {
        let (hi, lo) = entropy.split_at(8);
        let mut hi_bytes = [0u8; 8];
        hi_bytes.copy_from_slice(hi);
        let mut lo_bytes = [0u8; 8];
        lo_bytes.copy_from_slice(lo);
        Self {
            millis: u64::try_from(now.timestamp_millis()).unwrap_or(0),
            seed: u64::from_le_bytes(hi_bytes) ^ u64::from_le_bytes(lo_bytes).rotate_left(29),
            counter: 0,
        }
    }

    fn next_uuid(&mut self) -> Uuid {
        self.counter = self.counter.wrapping_add(1);
        // splitmix64 over (seed, counter): distinct counters give distinct outputs.
        let mut z = self.seed.wrapping_add(self.counter.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let mut random = [0u8; 10];
        // The counter's low 16 bits lead (the rand_a field) so ids of one command sort in the
        // order they were made; the mixed word fills the rest.
        random[..2].copy_from_slice(&(self.counter as u16).to_be_bytes());
        random[2..].copy_from_slice(&z.to_be_bytes());
        uuid::Builder::from_unix_timestamp_millis(self.millis, &random).into_uuid()
    }

    /// The next id of type `T`.
    pub fn next_id<T: FromUuid>(&mut self) -> T {
        T::from_uuid_value(self.next_uuid())
    }
}

/// Implemented by every id newtype so [`IdGen::next_id`] can make any of them.
pub trait FromUuid {
    /// Wraps the UUID.
    fn from_uuid_value(uuid: Uuid) -> Self;
}

macro_rules! from_uuid {
    ($($name:ident),*) => {$(
        impl FromUuid for $name {
            fn from_uuid_value(uuid: Uuid) -> Self { Self(uuid) }
        }
    )*};
}
from_uuid!(
    TenantId,
    StaffUserId,
    RoleId,
    CompanyId,
    SiteId,
    TemplateId,
    TemplatePhaseId,
    TemplateTaskId,
    PortalId,
    PhaseId,
    TaskId,
    ChecklistItemId,
    SurveyQuestionId,
    ContactId,
    CommentId,
    EventId,
    PortalUserId,
    MessageId,
    AccessLinkId,
    ChallengeId,
    DigestItemId
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_v7_distinct_and_ordered() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let mut g = IdGen::new(now, [7; 16]);
        let ids: Vec<TaskId> = (0..1000).map(|_| g.next_id()).collect();
        let set: HashSet<_> = ids.iter().collect();
        assert_eq!(set.len(), ids.len());
        assert!(ids.iter().all(|i| i.as_uuid().get_version_num() == 7));
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }
}

//! Storage traits, per aggregate, composed into one object-safe [`Storage`].
//!
//! # Guarantees every implementation gives
//!
//! - Every method takes the tenant first and touches only that tenant's rows: an id of another
//!   tenant is answered exactly like an id that does not exist.
//! - Not found is `None` or an empty list, never an error.
//! - Each method is one transaction. [`OutcomeRepo::commit_outcome`] writes an [`Outcome`]'s rows,
//!   events, messages and access effects all or nothing.
//! - Updates are compare-and-set on the aggregate's `version`: a stale write changes nothing and
//!   is returned as [`CommandError::Stale`] in the inner result, never as a [`StorageError`].
//! - [`PortalRepo::modify_portal`] serialises commands on one portal: it loads the portal inside
//!   the transaction with a write lock, runs the pure decision on that state and commits its
//!   outcome before the lock is released. Two commands on different tasks of one portal therefore
//!   both succeed and each sees the other's effect on shared dependents; a command whose own
//!   compare-and-set check fails (a stale task version) gets `Stale`.
//! - [`StorageError`] means the store itself failed (unreachable, corrupt, a bug); callers answer it
//!   with a 5xx and retry later.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::access::{AccessLink, ContactSession};
use crate::activity::{ActivityEvent, EventKind};
use crate::auth::{StaffSession, TokenHash};
use crate::company::{Company, Site};
use crate::error::CommandError;
use crate::id::{
    CompanyId, ContactId, EventId, MessageId, PortalId, RoleId, SiteId, StaffUserId, TaskId, TemplateId, TenantId,
};
use crate::lifecycle::PortalStatus;
use crate::outcome::{OutboundMessage, Outcome};
use crate::portal::{Portal, PortalState};
use crate::task::{Comment, Task};
use crate::template::Template;
use crate::tenant::{Role, StaffUser, Tenant};
use crate::value::Email;

/// The store itself failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database could not be reached or timed out; worth retrying.
    #[error("storage unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A row could not be read back into a domain value (corrupt or foreign data).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// A write conflicted where the storage contract says it cannot (for example a
    /// compare-and-set failing under the portal lock).
    #[error("storage invariant broken: {0}")]
    Invariant(String),
    /// Any other backend failure.
    #[error("storage backend failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Result of a storage call.
pub type StorageResult<T> = Result<T, StorageError>;

/// A keyset page request: items strictly after `after` in the list's order, at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest<C> {
    /// The cursor of the last item of the previous page.
    pub after: Option<C>,
    /// Most items to return; implementations clamp it to [`MAX_PAGE`].
    pub limit: usize,
}

/// Largest page any list returns.
pub const MAX_PAGE: usize = 500;

impl<C> PageRequest<C> {
    /// The first page of `limit` items.
    #[must_use]
    pub const fn first(limit: usize) -> Self {
        Self { after: None, limit }
    }

    /// The limit clamped to 1..=[`MAX_PAGE`].
    #[must_use]
    pub fn clamped_limit(&self) -> usize {
        self.limit.clamp(1, MAX_PAGE)
    }
}

/// Filter of [`PortalRepo::list_portals`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortalFilter {
    /// Only portals in this status.
    pub status: Option<PortalStatus>,
    /// Only portals of this company.
    pub company: Option<CompanyId>,
}

/// Filter of [`ActivityRepo::list_activity`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ActivityFilter {
    /// Only events of this portal.
    pub portal: Option<PortalId>,
    /// Only events of these kinds (all when empty).
    pub kinds: Vec<EventKind>,
}

/// Tenants, their roles and staff users.
#[async_trait]
pub trait TenantRepo: Send + Sync {
    /// The tenant, if it exists.
    async fn get_tenant(&self, tenant: TenantId) -> StorageResult<Option<Tenant>>;
    /// A role of the tenant.
    async fn get_role(&self, tenant: TenantId, id: RoleId) -> StorageResult<Option<Role>>;
    /// Every role of the tenant, by name.
    async fn list_roles(&self, tenant: TenantId) -> StorageResult<Vec<Role>>;
    /// A staff user of the tenant.
    async fn get_staff_user(&self, tenant: TenantId, id: StaffUserId) -> StorageResult<Option<StaffUser>>;
    /// The staff user with this email (emails are unique per tenant).
    async fn find_staff_user_by_email(&self, tenant: TenantId, email: &Email) -> StorageResult<Option<StaffUser>>;
    /// Staff users ordered by id, keyset-paged.
    async fn list_staff_users(&self, tenant: TenantId, page: PageRequest<StaffUserId>)
    -> StorageResult<Vec<StaffUser>>;
}

/// Companies and their sites.
#[async_trait]
pub trait CompanyRepo: Send + Sync {
    /// A company of the tenant.
    async fn get_company(&self, tenant: TenantId, id: CompanyId) -> StorageResult<Option<Company>>;
    /// Companies ordered by id, keyset-paged.
    async fn list_companies(&self, tenant: TenantId, page: PageRequest<CompanyId>) -> StorageResult<Vec<Company>>;
    /// A site of the tenant.
    async fn get_site(&self, tenant: TenantId, id: SiteId) -> StorageResult<Option<Site>>;
    /// Sites of a company ordered by id.
    async fn list_sites_for_company(&self, tenant: TenantId, company: CompanyId) -> StorageResult<Vec<Site>>;
}

/// Templates, each read as a whole document.
#[async_trait]
pub trait TemplateRepo: Send + Sync {
    /// The whole template: phases and tasks in order, with checklists, surveys and dependencies.
    async fn get_template(&self, tenant: TenantId, id: TemplateId) -> StorageResult<Option<Template>>;
    /// Templates ordered by id, keyset-paged (whole documents).
    async fn list_templates(&self, tenant: TenantId, page: PageRequest<TemplateId>) -> StorageResult<Vec<Template>>;
}

/// A task assigned to a staff user in an active portal, with what places it (DASH-2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AssignedTask {
    /// The portal's name.
    pub portal_name: crate::value::Name,
    /// The position of the task's phase in its portal.
    pub phase_position: i32,
    /// The task.
    pub task: Task,
}

/// The keyset cursor of [`PortalRepo::list_assigned_tasks`]: phase order, then task order, then id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AssignedTaskCursor {
    /// Position of the last task's phase.
    pub phase_position: i32,
    /// Position of the last task in its phase.
    pub task_position: i32,
    /// Id of the last task.
    pub task: TaskId,
}

impl AssignedTask {
    /// This item's cursor.
    #[must_use]
    pub const fn cursor(&self) -> AssignedTaskCursor {
        AssignedTaskCursor {
            phase_position: self.phase_position,
            task_position: self.task.position,
            task: self.task.id,
        }
    }
}

/// Task counts of one portal, for progress in lists (DASH-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PortalTaskCounts {
    /// The portal.
    pub portal: PortalId,
    /// All its tasks.
    pub total: u32,
    /// Its completed tasks.
    pub completed: u32,
}

/// A pure decision run on a portal's current state under the portal's write lock.
pub type PortalDecision<'a> = dyn Fn(&PortalState) -> Result<Outcome, CommandError> + Send + Sync + 'a;

/// Portals with their phases, tasks, contacts and comments.
#[async_trait]
pub trait PortalRepo: Send + Sync {
    /// The portal row only.
    async fn get_portal(&self, tenant: TenantId, id: PortalId) -> StorageResult<Option<Portal>>;
    /// The portal with phases, tasks and contacts, in canonical order (see [`PortalState::sort`]).
    async fn load_portal(&self, tenant: TenantId, id: PortalId) -> StorageResult<Option<PortalState>>;
    /// Portal rows ordered by id, filtered, keyset-paged.
    async fn list_portals(
        &self,
        tenant: TenantId,
        filter: PortalFilter,
        page: PageRequest<PortalId>,
    ) -> StorageResult<Vec<Portal>>;
    /// Task counts of each of `portals` that exists in the tenant, in the order of `portals`
    /// (a portal with no task has total 0).
    async fn task_counts(&self, tenant: TenantId, portals: &[PortalId]) -> StorageResult<Vec<PortalTaskCounts>>;
    /// The open (not completed) tasks assigned to `user` in the tenant's active portals, ordered
    /// by phase position, then task position, then task id; keyset-paged on that order (DASH-2).
    async fn list_assigned_tasks(
        &self,
        tenant: TenantId,
        user: StaffUserId,
        page: PageRequest<AssignedTaskCursor>,
    ) -> StorageResult<Vec<AssignedTask>>;
    /// Comments of a task, oldest first.
    async fn list_comments_for_task(&self, tenant: TenantId, task: TaskId) -> StorageResult<Vec<Comment>>;
    /// Runs `decide` on the portal's current state under its write lock and commits the outcome
    /// in the same transaction. `None` when the portal does not exist; the inner error is the
    /// decision's refusal (nothing is written then).
    async fn modify_portal(
        &self,
        tenant: TenantId,
        id: PortalId,
        decide: &PortalDecision<'_>,
    ) -> StorageResult<Option<Result<Outcome, CommandError>>>;
}

/// The append-only activity log.
#[async_trait]
pub trait ActivityRepo: Send + Sync {
    /// Events newest first (by id), filtered, keyset-paged: `after` is the id of the last event
    /// of the previous page.
    async fn list_activity(
        &self,
        tenant: TenantId,
        filter: &ActivityFilter,
        page: PageRequest<EventId>,
    ) -> StorageResult<Vec<ActivityEvent>>;
}

/// The outbox (MAIL-3): messages are inserted by [`OutcomeRepo::commit_outcome`] with the rest
/// of an outcome; these calls are the worker's and staff's view of their delivery. Each call is
/// one transaction.
///
/// A worker claims due messages with [`Self::claim_messages`] (PostgreSQL: `FOR UPDATE SKIP
/// LOCKED`, so several processes never claim one row at once), sends each, and reports the
/// result with one of the `mark_*` calls naming the attempt it claimed. A claim is a lease: a
/// message whose worker died is claimed again once the lease has run out.
#[async_trait]
pub trait OutboxRepo: Send + Sync {
    /// Claims up to `limit` messages of any tenant that are due at `now`: `queued` with
    /// `next_attempt_at <= now`, or `sending` with a lease that ran out before `now`. Each claimed
    /// row becomes `sending` with `attempts + 1` and a lease until `lease_until`; the oldest due
    /// first. Returns them with their sealed secrets.
    async fn claim_messages(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> StorageResult<Vec<crate::mail::ClaimedMessage>>;
    /// Marks a claimed message sent at `at` and deletes its sealed secret. `false` (and nothing
    /// changed) when the claim is no longer this attempt's.
    async fn mark_message_sent(
        &self,
        tenant: TenantId,
        id: MessageId,
        attempt: u32,
        at: DateTime<Utc>,
    ) -> StorageResult<bool>;
    /// Marks several claimed messages sent at once, as [`Self::mark_message_sent`] does for one
    /// (a group commit: the worker's sends do not each wait for a transaction of their own).
    /// Returns how many were still claimed by the attempt named. The default marks them one by
    /// one; a backend overrides it with one transaction.
    async fn mark_messages_sent(&self, marks: &[crate::mail::SentMark]) -> StorageResult<usize> {
        let mut applied = 0;
        for m in marks {
            if self.mark_message_sent(m.tenant_id, m.id, m.attempt, m.at).await? {
                applied += 1;
            }
        }
        Ok(applied)
    }
    /// Puts a claimed message back in the queue until `next_attempt_at`, noting `error`. `false`
    /// when the claim is no longer this attempt's.
    async fn mark_message_retry(
        &self,
        tenant: TenantId,
        id: MessageId,
        attempt: u32,
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> StorageResult<bool>;
    /// Marks a claimed message failed, noting `error`. `false` when the claim is no longer this
    /// attempt's.
    async fn mark_message_failed(
        &self,
        tenant: TenantId,
        id: MessageId,
        attempt: u32,
        error: &str,
    ) -> StorageResult<bool>;
    /// Queues a `failed` message again, due at `now`, with its attempts counted from zero.
    /// `false` when there is no failed message with this id in the tenant.
    async fn requeue_failed_message(&self, tenant: TenantId, id: MessageId, now: DateTime<Utc>) -> StorageResult<bool>;
    /// The tenant's messages, newest first (by id), optionally of one status, keyset-paged.
    async fn list_messages(
        &self,
        tenant: TenantId,
        status: Option<crate::mail::MessageStatus>,
        page: PageRequest<MessageId>,
    ) -> StorageResult<Vec<crate::mail::OutboxEntry>>;
    /// One message as stored, with its sealed secret if it still has one (tests and support).
    async fn get_message(&self, tenant: TenantId, id: MessageId) -> StorageResult<Option<OutboundMessage>>;
}

/// Host names, staff credentials, staff sessions and sign-in counters (BRD-2, AUTH-6).
///
/// These rows are not domain state: they are written directly, each call one transaction, and
/// never through [`OutcomeRepo::commit_outcome`]. Tokens are only ever passed and stored as their
/// [`TokenHash`].
#[async_trait]
pub trait AuthRepo: Send + Sync {
    /// The tenant a (normalised, see [`crate::auth::normalise_host`]) host name belongs to.
    async fn tenant_for_host(&self, host: &str) -> StorageResult<Option<TenantId>>;
    /// Maps `host` to `tenant`. A host already mapped to any tenant is refused with
    /// [`CommandError::AlreadyExists`]; mapping it again to the same tenant is a no-op success.
    async fn add_tenant_host(&self, tenant: TenantId, host: &str) -> StorageResult<Result<(), CommandError>>;
    /// The tenant's host names, sorted.
    async fn list_tenant_hosts(&self, tenant: TenantId) -> StorageResult<Vec<String>>;
    /// The stored password hash (PHC string) of a staff user, if one is set.
    async fn password_hash(&self, tenant: TenantId, user: StaffUserId) -> StorageResult<Option<String>>;
    /// Sets a staff user's password hash and ends every session of that user, in one transaction.
    async fn set_password_hash(
        &self,
        tenant: TenantId,
        user: StaffUserId,
        hash: &str,
        now: DateTime<Utc>,
    ) -> StorageResult<()>;
    /// Stores a new session.
    async fn insert_staff_session(&self, session: &StaffSession) -> StorageResult<()>;
    /// The session with this token hash in the tenant, whether or not it has expired.
    async fn staff_session(&self, tenant: TenantId, token: &TokenHash) -> StorageResult<Option<StaffSession>>;
    /// Ends one session; whether it existed.
    async fn delete_staff_session(&self, tenant: TenantId, token: &TokenHash) -> StorageResult<bool>;
    /// Ends every session of a user; how many there were.
    async fn delete_staff_sessions_of(&self, tenant: TenantId, user: StaffUserId) -> StorageResult<u64>;
    /// Deletes sessions of every tenant that expired before `now`; how many.
    async fn delete_expired_staff_sessions(&self, now: DateTime<Utc>) -> StorageResult<u64>;
    /// Counts one sign-in attempt under `key` in the window starting at `window_start` and
    /// returns the count of that window including this one. A counter of an earlier window
    /// restarts at 1. Atomic: concurrent attempts never share a number. `now` is the time of the
    /// attempt: the counter remembers it as its last attempt, for [`Self::purge_expired`]; it
    /// plays no part in the count.
    async fn count_sign_in_attempt(
        &self,
        tenant: TenantId,
        key: &str,
        window_start: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StorageResult<u32>;
    /// Deletes, across every tenant, the rows that only grow and no longer matter at `now`, and
    /// says how many of each went. A scheduler calls it now and then; any process may, at any
    /// time, and two running at once delete each row once.
    ///
    /// - Sign-in attempt counters whose last attempt (the `now` of
    ///   [`Self::count_sign_in_attempt`]) is more than [`crate::auth::ATTEMPT_RETENTION`]
    ///   before `now`, and counters with no last-attempt time at all (written before the store
    ///   kept one). Their window has closed, or their challenge has expired, long since.
    /// - One-time-code challenges ([`crate::access::AccessChallenge`]) whose `expires_at` is more
    ///   than [`crate::auth::ATTEMPT_RETENTION`] before `now`. Not at once: for that while a
    ///   just-expired challenge is still found and answers `invalid_code` as an expired one, and
    ///   goes about when its tries counter ([`crate::access::code_attempt_key`]) can; afterwards
    ///   it answers as an unknown token does, the same `invalid_code`, so no answer changes.
    /// - Contact sessions whose `expires_at <= now` (a session works while `now < expires_at`).
    /// - Staff sessions that have expired, as [`Self::delete_expired_staff_sessions`] does.
    async fn purge_expired(&self, now: DateTime<Utc>) -> StorageResult<PurgeReport>;
}

/// What one [`AuthRepo::purge_expired`] deleted: a count of rows per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeReport {
    /// Sign-in attempt counters (accounts, client addresses, one-time-code challenge tokens...).
    pub sign_in_attempts: u64,
    /// One-time-code challenges (CON-5).
    pub access_challenges: u64,
    /// Contact sessions.
    pub contact_sessions: u64,
    /// Staff sessions.
    pub staff_sessions: u64,
}

impl PurgeReport {
    /// Rows deleted in all.
    #[must_use]
    pub const fn total(&self) -> u64 {
        self.sign_in_attempts + self.access_challenges + self.contact_sessions + self.staff_sessions
    }
}

/// Contact access links and contact sessions (CON-2 to CON-5, BYD-4).
///
/// Links and sessions are created and revoked through [`OutcomeRepo::commit_outcome`]
/// ([`crate::outcome::Write::InsertAccessLink`], [`crate::outcome::Write::RevokeContactAccess`],
/// [`crate::outcome::Write::InsertContactSession`],
/// [`crate::outcome::AccessEffect::RevokeAllClientAccess`]); deleting a contact or a portal
/// deletes its links and sessions in the same transaction. These are the reads, and the session
/// calls that raise no event (rolling a session, signing out). Tokens are only ever passed and
/// stored as their [`TokenHash`].
#[async_trait]
pub trait AccessRepo: Send + Sync {
    /// The link with this token hash in the tenant, whatever its state (revoked, expired).
    async fn find_access_link(&self, tenant: TenantId, token: &TokenHash) -> StorageResult<Option<AccessLink>>;
    /// Every link of a contact, revoked and expired ones too, oldest first.
    async fn list_access_links(&self, tenant: TenantId, contact: ContactId) -> StorageResult<Vec<AccessLink>>;
    /// Uses the session with this token hash at `now`: when it exists in the tenant, has not
    /// expired and the link that started it is not revoked, it rolls (`last_used_at = now`,
    /// `expires_at = now + 24 h`) and is returned as it is afterwards; otherwise `None`.
    async fn touch_contact_session(
        &self,
        tenant: TenantId,
        token: &TokenHash,
        now: DateTime<Utc>,
    ) -> StorageResult<Option<ContactSession>>;
    /// The live sessions of a contact at `now` (not expired, link not revoked), oldest first.
    async fn list_contact_sessions(
        &self,
        tenant: TenantId,
        contact: ContactId,
        now: DateTime<Utc>,
    ) -> StorageResult<Vec<ContactSession>>;
    /// Ends one session; whether it existed.
    async fn delete_contact_session(&self, tenant: TenantId, token: &TokenHash) -> StorageResult<bool>;
    /// Ends every session of a contact ("sign out everywhere"); how many there were.
    async fn delete_contact_sessions_of(&self, tenant: TenantId, contact: ContactId) -> StorageResult<u64>;
    /// The contact with this id in the tenant (its row only: opening a link and every request of
    /// a contact session need the contact, not its whole portal).
    async fn get_contact(&self, tenant: TenantId, id: ContactId) -> StorageResult<Option<crate::portal::Contact>>;
    /// The link with this id in the tenant, whatever its state.
    async fn get_access_link(&self, tenant: TenantId, id: crate::id::AccessLinkId)
    -> StorageResult<Option<AccessLink>>;
    /// The one-time code challenge with this token hash in the tenant, whatever its state
    /// (used, expired) (CON-5).
    async fn find_access_challenge(
        &self,
        tenant: TenantId,
        token: &TokenHash,
    ) -> StorageResult<Option<crate::access::AccessChallenge>>;
}

/// What the reminder scheduler and the digest sender read (BYD-5). Their writes go through the
/// commit path ([`Write::InsertReminderRecord`](crate::outcome::Write::InsertReminderRecord),
/// [`Write::InsertDigestItem`](crate::outcome::Write::InsertDigestItem),
/// [`Write::DeleteDigestItems`](crate::outcome::Write::DeleteDigestItems)).
#[async_trait]
pub trait NotificationRepo: Send + Sync {
    /// The reminders recorded for a portal's tasks.
    async fn list_reminder_records(
        &self,
        tenant: TenantId,
        portal: PortalId,
    ) -> StorageResult<Vec<crate::notifications::ReminderRecord>>;
    /// Active portals of every tenant ordered by (tenant, portal), keyset-paged after `after`;
    /// at most `limit` (clamped to 1..=1000).
    async fn list_active_portals(
        &self,
        after: Option<(TenantId, PortalId)>,
        limit: usize,
    ) -> StorageResult<Vec<(TenantId, PortalId)>>;
    /// Contacts of every tenant with digest items waiting, ordered by (tenant, contact),
    /// keyset-paged after `after`; at most `limit` (clamped to 1..=1000).
    async fn list_pending_digests(
        &self,
        after: Option<(TenantId, ContactId)>,
        limit: usize,
    ) -> StorageResult<Vec<crate::notifications::PendingDigest>>;
    /// A contact's waiting digest items, oldest first (by id).
    async fn list_digest_items(
        &self,
        tenant: TenantId,
        contact: ContactId,
    ) -> StorageResult<Vec<crate::notifications::DigestItem>>;
}

/// The one commit path.
#[async_trait]
pub trait OutcomeRepo: Send + Sync {
    /// Writes the outcome's rows, events, messages and effects in one transaction. A failed
    /// compare-and-set ([`CommandError::Stale`]) or a unique value already taken
    /// ([`CommandError::AlreadyExists`]) rolls everything back and is returned as the inner
    /// error. Not idempotent: committing the same inserts twice is refused as `AlreadyExists`.
    async fn commit_outcome(&self, tenant: TenantId, outcome: &Outcome) -> StorageResult<Result<(), CommandError>>;
}

/// Everything the engine needs of a store. Hold it as `Arc<dyn Storage>`.
pub trait Storage:
    TenantRepo
    + CompanyRepo
    + TemplateRepo
    + PortalRepo
    + ActivityRepo
    + OutboxRepo
    + OutcomeRepo
    + AuthRepo
    + AccessRepo
    + NotificationRepo
{
}

impl<T> Storage for T where
    T: TenantRepo
        + CompanyRepo
        + TemplateRepo
        + PortalRepo
        + ActivityRepo
        + OutboxRepo
        + OutcomeRepo
        + AuthRepo
        + AccessRepo
        + NotificationRepo
{
}

/// The clock, outside the core (API-1).
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// Fresh randomness, outside the core.
pub trait Entropy: Send + Sync {
    /// Fills `buf` with random bytes from a cryptographically secure source.
    fn fill(&self, buf: &mut [u8]);
}

/// A clock that always says the same time, for tests and replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

impl<T: Clock + ?Sized> Clock for Arc<T> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
}

//! The domain's errors: one enum for values and one for commands, each variant naming what is
//! wrong. Every variant has a stable [`code`](CommandError::code) for API clients.

use serde::Serialize;
use uuid::Uuid;

use crate::lifecycle::PortalStatus;
use crate::policy::AccessDenied;
use crate::task::TaskStatus;

/// A value that failed validation at the boundary. Serialised with its variant under `problem`, so
/// that inside [`CommandError::Value`] (tagged `type`) no key repeats.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum ValueError {
    /// An empty (or all white space) value where one is required.
    #[error("`{field}` must not be empty")]
    Empty {
        /// The field.
        field: &'static str,
    },
    /// Shorter than allowed.
    #[error("`{field}` must be at least {min} characters (got {actual})")]
    TooShort {
        /// The field.
        field: &'static str,
        /// Minimum.
        min: usize,
        /// Length given.
        actual: usize,
    },
    /// Longer than allowed.
    #[error("`{field}` must be at most {max} characters (got {actual})")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Maximum.
        max: usize,
        /// Length given.
        actual: usize,
    },
    /// A control character (or a line break in a one-line value).
    #[error("`{field}` must not contain control characters or line breaks")]
    ControlCharacter {
        /// The field.
        field: &'static str,
    },
    /// Characters outside the allowed set.
    #[error("`{field}` may only contain {allowed}")]
    InvalidCharacters {
        /// The field.
        field: &'static str,
        /// What is allowed.
        allowed: &'static str,
    },
    /// Not an email address.
    #[error("invalid email address: {reason}")]
    InvalidEmail {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A negative day offset.
    #[error("due offset must not be negative (got {days} days)")]
    NegativeOffset {
        /// The offset given.
        days: i64,
    },
    /// A number outside its range.
    #[error("`{field}` must be between {min} and {max} (got {actual})")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// Minimum.
        min: i64,
        /// Maximum.
        max: i64,
        /// Value given.
        actual: i64,
    },
    /// NaN or infinity.
    #[error("`{field}` must be a finite number")]
    NotANumber {
        /// The field.
        field: &'static str,
    },
    /// A name that is not one of an enum's values.
    #[error("unknown {kind} `{value}`")]
    UnknownVariant {
        /// The enum.
        kind: &'static str,
        /// The value given (first 64 characters).
        value: String,
    },
    /// An unknown IANA time zone name.
    #[error("unknown time zone `{value}`")]
    UnknownTimeZone {
        /// The value given (first 64 characters).
        value: String,
    },
}

/// What a command refused to do, and why. Returned by the pure command functions; never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CommandError {
    /// A value failed validation.
    #[error(transparent)]
    Value(#[from] ValueError),
    /// The principal may not do this.
    #[error(transparent)]
    Access(#[from] AccessDenied),
    /// An id that names nothing in this tenant (another tenant's ids land here too).
    #[error("{entity} {id} not found")]
    NotFound {
        /// The kind of thing.
        entity: &'static str,
        /// The id given.
        id: Uuid,
    },
    /// The caller's version is not the current one: someone else changed it first.
    #[error("{entity} {id} was changed by someone else (expected version {expected}, current {actual})")]
    Stale {
        /// The kind of thing.
        entity: &'static str,
        /// Its id.
        id: Uuid,
        /// The version the caller had.
        expected: i64,
        /// The current version.
        actual: i64,
    },
    /// A portal move the lifecycle table does not allow.
    #[error("a portal cannot move from `{from}` to `{to}`")]
    IllegalTransition {
        /// Current status.
        from: PortalStatus,
        /// Requested status.
        to: PortalStatus,
    },
    /// `active → completed` while tasks are still open.
    #[error("the portal has {incomplete} task(s) not completed")]
    TasksIncomplete {
        /// How many are not completed.
        incomplete: usize,
    },
    /// The command needs the portal in another status.
    #[error("this needs the portal to be `{required}`, but it is `{actual}`")]
    PortalStatus {
        /// The status needed.
        required: PortalStatus,
        /// The current status.
        actual: PortalStatus,
    },
    /// A task move its status does not allow.
    #[error("task {task} cannot go from `{from}` to `{to}`")]
    IllegalTaskMove {
        /// The task.
        task: Uuid,
        /// Current status.
        from: TaskStatus,
        /// Requested status.
        to: TaskStatus,
    },
    /// Completing or starting a task that still waits on dependencies or a manual block.
    #[error("task {task} is blocked: {incomplete_dependencies} dependency(ies) not completed{}", if *manually_blocked { ", blocked by hand" } else { "" })]
    TaskBlocked {
        /// The task.
        task: Uuid,
        /// How many of its dependencies are not completed.
        incomplete_dependencies: usize,
        /// Whether staff blocked it by hand.
        manually_blocked: bool,
    },
    /// Staff completing a client-owned task must say why.
    #[error("completing a client-owned task as staff needs a reason")]
    ReasonRequired,
    /// A dependency graph with a cycle.
    #[error("dependencies form a cycle through {}", fmt_ids(path))]
    DependencyCycle {
        /// Tasks on the cycle, in order.
        path: Vec<Uuid>,
    },
    /// A dependency on a task that is not in the same template or portal.
    #[error("task {task} depends on {depends_on}, which is not in the same template or portal")]
    UnknownDependency {
        /// The dependent task.
        task: Uuid,
        /// The missing task.
        depends_on: Uuid,
    },
    /// A template task depending on a key no task of the template has.
    #[error("task `{task}` depends on `{depends_on}`, which is not a task of this template")]
    UnknownDependencyKey {
        /// The dependent task's key.
        task: String,
        /// The missing key.
        depends_on: String,
    },
    /// Two template tasks with the same key.
    #[error("task key `{key}` is used more than once")]
    DuplicateKey {
        /// The key.
        key: String,
    },
    /// A task listed as its own dependency.
    #[error("task {task} cannot depend on itself")]
    SelfDependency {
        /// The task.
        task: Uuid,
    },
    /// The same id twice where ids must be unique.
    #[error("{entity} {id} appears more than once")]
    DuplicateId {
        /// The kind of thing.
        entity: &'static str,
        /// The id.
        id: Uuid,
    },
    /// A count above its limit.
    #[error("too many {what}: at most {max} (got {actual})")]
    TooMany {
        /// What is counted.
        what: &'static str,
        /// The limit.
        max: usize,
        /// The count given.
        actual: usize,
    },
    /// A list that must not be empty.
    #[error("{what} must not be empty")]
    EmptyList {
        /// What is empty.
        what: &'static str,
    },
    /// CON-1: more than one primary contact, or none where activation (or an active portal) needs
    /// one.
    #[error(
        "a portal needs exactly one primary contact to be activated and while it is active, and never more than one (found {primaries})"
    )]
    PrimaryContact {
        /// Primary contacts found.
        primaries: usize,
    },
    /// The same contact email twice in one portal.
    #[error("the contact email {email} is already on this portal")]
    DuplicateContactEmail {
        /// The email.
        email: String,
    },
    /// A destructive command without the right confirmation.
    #[error("this needs an explicit confirmation: {expected}")]
    ConfirmationRequired {
        /// What the confirmation must be.
        expected: String,
    },
    /// A name already taken where names are unique (roles, staff emails).
    #[error("{entity} `{value}` already exists")]
    AlreadyExists {
        /// The kind of thing.
        entity: &'static str,
        /// The clashing value.
        value: String,
    },
    /// A reorder request that does not list exactly the current items.
    #[error("the new order must list each of the {expected} {entity}s exactly once")]
    BadOrder {
        /// The kind of thing.
        entity: &'static str,
        /// How many there are.
        expected: usize,
    },
    /// An action that needs a task of another evidence type (a meeting for a `meeting` task).
    #[error("this needs a task with `{expected}` evidence; the task has `{actual}`")]
    WrongEvidence {
        /// The evidence type needed.
        expected: crate::task::EvidenceType,
        /// The task's.
        actual: crate::task::EvidenceType,
    },
}

fn fmt_ids(ids: &[Uuid]) -> String {
    ids.iter().map(Uuid::to_string).collect::<Vec<_>>().join(" → ")
}

impl CommandError {
    /// A stable, machine-readable code for this case (API-3 error shape).
    #[must_use]
    #[allow(clippy::match_same_arms)] // several cases share a code on purpose
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Value(_) => "invalid_value",
            Self::Access(AccessDenied::OtherTenant | AccessDenied::OutOfScope) | Self::NotFound { .. } => "not_found",
            Self::Access(AccessDenied::Forbidden { .. }) => "forbidden",
            Self::Stale { .. } => "stale_version",
            Self::IllegalTransition { .. } => "illegal_transition",
            Self::TasksIncomplete { .. } => "tasks_incomplete",
            Self::PortalStatus { .. } => "wrong_portal_status",
            Self::IllegalTaskMove { .. } => "illegal_task_move",
            Self::TaskBlocked { .. } => "task_blocked",
            Self::ReasonRequired => "reason_required",
            Self::DependencyCycle { .. } => "dependency_cycle",
            Self::UnknownDependency { .. } => "unknown_dependency",
            Self::SelfDependency { .. } => "self_dependency",
            Self::UnknownDependencyKey { .. } => "unknown_dependency",
            Self::DuplicateKey { .. } => "duplicate_key",
            Self::DuplicateId { .. } => "duplicate_id",
            Self::TooMany { .. } => "too_many",
            Self::EmptyList { .. } => "empty_list",
            Self::PrimaryContact { .. } => "primary_contact",
            Self::DuplicateContactEmail { .. } => "duplicate_contact_email",
            Self::ConfirmationRequired { .. } => "confirmation_required",
            Self::AlreadyExists { .. } => "already_exists",
            Self::BadOrder { .. } => "bad_order",
            Self::WrongEvidence { .. } => "wrong_evidence_type",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_error_inside_a_command_error_serialises_without_repeated_keys() {
        let e = CommandError::Value(ValueError::Empty { field: "name" });
        let text = serde_json::to_string(&e).expect("serialises");
        assert_eq!(text, r#"{"type":"value","problem":"empty","field":"name"}"#);
    }
}

//! From sqlx errors to [`StorageError`], and from constraint violations to the
//! [`CommandError`] the in-memory reference store returns for the same refusal.

use portal_core::error::CommandError;
use portal_core::id::TenantId;
use portal_core::outcome::Write;
use portal_core::storage::StorageError;
use uuid::Uuid;

/// SQLSTATE of a unique violation.
const UNIQUE_VIOLATION: &str = "23505";
/// SQLSTATE of a foreign-key violation.
const FOREIGN_KEY_VIOLATION: &str = "23503";

/// Maps a sqlx error to a [`StorageError`]: what a retry may cure is `Unavailable`, the rest
/// `Backend`.
pub(crate) fn map_sqlx(e: sqlx::Error) -> StorageError {
    let transient = match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| is_transient_sqlstate(&c)),
        _ => false,
    };
    if transient {
        StorageError::Unavailable(Box::new(e))
    } else {
        StorageError::Backend(Box::new(e))
    }
}

/// SQLSTATEs that say "try again": lost connections (class 08), serialization failures and
/// deadlocks (40001, 40P01), too many connections (53300), a server shutting down or starting
/// (57P01 to 57P03), a lock or statement timeout cancelling the query (55P03, 57014).
fn is_transient_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "40001" | "40P01" | "53300" | "55P03" | "57014" | "57P01" | "57P02" | "57P03"
        )
}

/// Whether the error is a foreign-key violation: a row pointing at a parent that does not exist.
pub(crate) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|c| c == FOREIGN_KEY_VIOLATION)
}

/// Why applying an outcome stopped: the store refused it as the reference store would (a
/// [`CommandError`] for the caller), or the store itself failed.
#[derive(Debug)]
pub(crate) enum Fail {
    /// A refusal: stale version, value taken, missing parent.
    Refused(CommandError),
    /// The store failed.
    Store(StorageError),
}

impl From<sqlx::Error> for Fail {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(map_sqlx(e))
    }
}

impl From<StorageError> for Fail {
    fn from(e: StorageError) -> Self {
        Self::Store(e)
    }
}

/// A step of applying an outcome.
pub(crate) type Step<T = ()> = Result<T, Fail>;

/// `AlreadyExists` as the reference store words it.
pub(crate) fn already(entity: &'static str, value: &dyn std::fmt::Display) -> Fail {
    Fail::Refused(CommandError::AlreadyExists {
        entity,
        value: value.to_string(),
    })
}

/// `NotFound` as the reference store words it.
pub(crate) fn not_found(entity: &'static str, id: impl Into<Uuid>) -> Fail {
    Fail::Refused(CommandError::NotFound { entity, id: id.into() })
}

/// The last value of the key a violation names in its detail (`Key (tenant_id, role_id)=(…, …)
/// is not present in table "role".`): the id a multi-row statement did not find.
fn violated_key(e: &sqlx::Error) -> Option<Uuid> {
    let detail = e
        .as_database_error()?
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()?
        .detail()?;
    let values = &detail[detail.find(")=(")? + 3..];
    let values = &values[..values.find(')')?];
    Uuid::parse_str(values.rsplit(',').next()?.trim()).ok()
}

/// The unique or foreign-key constraint a database error violated, with its SQLSTATE.
fn violated_constraint(e: &sqlx::Error) -> Option<(&str, bool)> {
    let db = e.as_database_error()?;
    let code = db.code()?;
    let unique = match code.as_ref() {
        UNIQUE_VIOLATION => true,
        FOREIGN_KEY_VIOLATION => false,
        _ => return None,
    };
    Some((db.constraint()?, unique))
}

/// Turns a failed statement of `write` into the refusal the reference store gives for the same
/// clash.
///
/// The write paths check the ordinary clashes themselves (`ON CONFLICT DO NOTHING`, guarded
/// updates, `WHERE EXISTS` inserts) so the transaction stays usable and the refusal follows the
/// reference store's order of checks. Violations still reach here in two cases: a concurrent
/// transaction committed the clashing row between the check and the write, and a row points at
/// a parent that does not exist (a dependency on no task, a staff user's unknown role), which
/// the foreign keys check at no cost to the rows that are fine. The constraint names the
/// refusal; for a multi-row statement the missing id comes from the key the error reports. A
/// violation no known write explains (data no command produces, such as a checklist item id
/// shared by two tasks) is reported as [`StorageError::Invariant`].
pub(crate) fn violation(e: sqlx::Error, tenant: TenantId, write: &Write) -> Fail {
    let refusal = violated_constraint(&e).and_then(|(constraint, unique)| {
        if unique {
            unique_refusal(constraint, write)
        } else {
            foreign_key_refusal(constraint, tenant, write, violated_key(&e))
        }
    });
    match refusal {
        Some(fail) => fail,
        None if violated_constraint(&e).is_some() => Fail::Store(StorageError::Invariant(format!(
            "the database refused a {} write: {e} ({})",
            write.entity(),
            e.as_database_error()
                .and_then(|d| d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>())
                .and_then(|d| d.detail())
                .unwrap_or_default()
        ))),
        None => e.into(),
    }
}

/// The same, for the events and messages appended after the writes.
pub(crate) fn append_violation(e: sqlx::Error, tenant: TenantId, entity: &'static str) -> Fail {
    match violated_constraint(&e) {
        Some((c, false)) if c.ends_with("_tenant_id_fkey") => not_found("tenant", tenant),
        Some(_) => Fail::Store(StorageError::Invariant(format!(
            "the database refused an {entity} row: {e}"
        ))),
        None => e.into(),
    }
}

fn unique_refusal(constraint: &str, write: &Write) -> Option<Fail> {
    Some(match (constraint, write) {
        ("tenant_pkey", Write::InsertTenant(t)) => already("tenant", &t.id),
        ("role_pkey", Write::InsertRole(r)) => already("role", &r.id),
        ("role_tenant_id_name_key", Write::InsertRole(r) | Write::UpdateRole { role: r, .. }) => {
            already("role", &r.name)
        }
        ("staff_user_pkey", Write::InsertStaffUser(u)) => already("staff user", &u.id),
        ("staff_user_tenant_id_email_key", Write::InsertStaffUser(u) | Write::UpdateStaffUser { user: u, .. }) => {
            already("staff user", &u.email)
        }
        ("company_pkey", Write::InsertCompany(c)) => already("company", &c.id),
        ("site_pkey", Write::InsertSite(s)) => already("site", &s.id),
        ("template_pkey", Write::InsertTemplate(t)) => already("template", &t.id),
        ("portal_pkey", Write::InsertPortal(s)) => already("portal", &s.portal.id),
        ("portal_phase_pkey", Write::InsertPhase(p)) => already("phase", &p.id),
        ("task_pkey", Write::InsertTask(t)) => already("task", &t.id),
        ("contact_pkey", Write::InsertContact(c)) => already("contact", &c.id),
        (
            "contact_tenant_id_portal_id_email_key",
            Write::InsertContact(c) | Write::UpdateContact { contact: c, .. },
        ) => already("contact", &c.email),
        ("contact_one_primary", Write::InsertContact(c) | Write::UpdateContact { contact: c, .. }) => {
            already("primary contact", &c.portal_id)
        }
        ("task_comment_pkey", Write::InsertComment(c)) => already("comment", &c.id),
        ("access_link_pkey" | "access_link_token_hash_key", Write::InsertAccessLink(l)) => {
            already("access link", &l.id)
        }
        ("contact_session_pkey" | "contact_session_token_hash_key", Write::InsertContactSession(s)) => {
            already("contact session", &s.link_id)
        }
        ("reminder_sent_once", Write::InsertReminderRecord(r)) => already("reminder", &r.task_id),
        ("notification_digest_item_pkey", Write::InsertDigestItem(d)) => already("digest item", &d.id.as_uuid()),
        _ => return None,
    })
}

fn foreign_key_refusal(constraint: &str, tenant: TenantId, write: &Write, key: Option<Uuid>) -> Option<Fail> {
    if constraint.ends_with("_tenant_id_fkey") {
        return Some(not_found("tenant", tenant));
    }
    Some(match (constraint, write) {
        ("staff_user_role_tenant_id_role_id_fkey", Write::InsertStaffUser(_) | Write::UpdateStaffUser { .. }) => {
            not_found("role", key?)
        }
        ("task_dependency_tenant_id_depends_on_id_fkey", Write::InsertTask(t) | Write::UpdateTask { task: t, .. }) => {
            Fail::Refused(CommandError::UnknownDependency {
                task: t.id.as_uuid(),
                depends_on: key?,
            })
        }
        ("task_dependency_tenant_id_depends_on_id_fkey", Write::InsertPortal(s)) => {
            let depends_on = key?;
            let task = s
                .tasks
                .iter()
                .find(|t| t.depends_on.iter().any(|d| d.as_uuid() == depends_on))?;
            Fail::Refused(CommandError::UnknownDependency {
                task: task.id.as_uuid(),
                depends_on,
            })
        }
        ("task_tenant_id_phase_id_fkey", Write::InsertPortal(_)) => not_found("phase", key?),
        ("task_tenant_id_assignee_id_fkey", Write::InsertPortal(_)) => not_found("staff user", key?),
        (
            "portal_phase_tenant_id_portal_id_fkey"
            | "task_tenant_id_portal_id_fkey"
            | "contact_tenant_id_portal_id_fkey",
            Write::InsertPortal(_),
        ) => not_found("portal", key?),
        ("site_tenant_id_company_id_fkey", Write::InsertSite(s) | Write::UpdateSite { site: s, .. }) => {
            not_found("company", s.company_id)
        }
        ("portal_tenant_id_company_id_fkey", Write::InsertPortal(s)) => not_found("company", s.portal.company_id),
        ("portal_tenant_id_company_id_fkey", Write::UpdatePortal { portal, .. }) => {
            not_found("company", portal.company_id)
        }
        ("portal_phase_tenant_id_portal_id_fkey", Write::InsertPhase(p) | Write::UpdatePhase { phase: p, .. }) => {
            not_found("portal", p.portal_id)
        }
        ("task_tenant_id_phase_id_fkey", Write::InsertTask(t) | Write::UpdateTask { task: t, .. }) => {
            not_found("phase", t.phase_id)
        }
        ("task_tenant_id_portal_id_fkey", Write::InsertTask(t) | Write::UpdateTask { task: t, .. }) => {
            not_found("portal", t.portal_id)
        }
        ("task_tenant_id_assignee_id_fkey", Write::InsertTask(t) | Write::UpdateTask { task: t, .. }) => {
            not_found("staff user", t.assignee?)
        }
        ("contact_tenant_id_portal_id_fkey", Write::InsertContact(c) | Write::UpdateContact { contact: c, .. }) => {
            not_found("portal", c.portal_id)
        }
        ("task_comment_tenant_id_task_id_fkey", Write::InsertComment(c)) => not_found("task", c.task_id),
        (
            "access_link_tenant_id_contact_id_fkey" | "access_link_tenant_id_portal_id_fkey",
            Write::InsertAccessLink(l),
        ) => not_found("contact", l.contact_id),
        (
            "contact_session_tenant_id_link_id_fkey"
            | "contact_session_tenant_id_contact_id_fkey"
            | "contact_session_tenant_id_portal_id_fkey",
            Write::InsertContactSession(s),
        ) => not_found("access link", s.link_id),
        (
            "access_challenge_tenant_id_link_id_fkey"
            | "access_challenge_tenant_id_contact_id_fkey"
            | "access_challenge_tenant_id_portal_id_fkey",
            Write::InsertAccessChallenge(c),
        ) => not_found("access link", c.link_id),
        (
            "reminder_sent_tenant_id_task_id_fkey" | "reminder_sent_tenant_id_contact_id_fkey",
            Write::InsertReminderRecord(r),
        ) => not_found("task", r.task_id),
        ("reminder_sent_tenant_id_portal_id_fkey", Write::InsertReminderRecord(r)) => not_found("portal", r.portal_id),
        ("notification_digest_item_tenant_id_contact_id_fkey", Write::InsertDigestItem(d)) => {
            not_found("contact", d.contact_id)
        }
        ("notification_digest_item_tenant_id_portal_id_fkey", Write::InsertDigestItem(d)) => {
            not_found("portal", d.portal_id)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_states_are_unavailable() {
        for code in ["08006", "40001", "40P01", "53300", "57P01"] {
            assert!(is_transient_sqlstate(code), "{code}");
        }
        for code in ["23505", "42P01", "22P02"] {
            assert!(!is_transient_sqlstate(code), "{code}");
        }
        assert!(matches!(
            map_sqlx(sqlx::Error::PoolTimedOut),
            StorageError::Unavailable(_)
        ));
        assert!(matches!(map_sqlx(sqlx::Error::RowNotFound), StorageError::Backend(_)));
    }
}

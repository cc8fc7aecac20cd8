//! Writes of contact access links, contact sessions and one-time code challenges, and the
//! revocations of a contact's or a portal's client access. A violated constraint is turned into the reference store's refusal by
//! [`crate::error::violation`].

use chrono::{DateTime, Utc};
use portal_core::access::{AccessChallenge, AccessLink, ContactSession};
use portal_core::error::CommandError;
use portal_core::id::{ChallengeId, TenantId};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Cx, exec, scalar};
use crate::error::{Fail, Step, already, not_found};

const INSERT_LINK: &str = "INSERT INTO access_link (tenant_id, id, portal_id, contact_id, token_hash, created_at, \
         expires_at, revoked_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const INSERT_SESSION: &str = "INSERT INTO contact_session (tenant_id, token_hash, portal_id, contact_id, link_id, \
         created_at, last_used_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

pub(super) async fn insert_link(conn: &mut PgConnection, cx: Cx<'_>, l: &AccessLink) -> Step {
    let query = sqlx::query(INSERT_LINK)
        .bind(cx.t())
        .bind(l.id.as_uuid())
        .bind(l.portal_id.as_uuid())
        .bind(l.contact_id.as_uuid())
        .bind(l.token_hash.as_bytes().as_slice())
        .bind(l.created_at)
        .bind(l.expires_at)
        .bind(l.revoked_at);
    exec(conn, cx, query).await?;
    Ok(())
}

pub(super) async fn insert_session(conn: &mut PgConnection, cx: Cx<'_>, s: &ContactSession) -> Step {
    let query = sqlx::query(INSERT_SESSION)
        .bind(cx.t())
        .bind(s.token_hash.as_bytes().as_slice())
        .bind(s.portal_id.as_uuid())
        .bind(s.contact_id.as_uuid())
        .bind(s.link_id.as_uuid())
        .bind(s.created_at)
        .bind(s.last_used_at)
        .bind(s.expires_at);
    exec(conn, cx, query).await?;
    Ok(())
}

/// Written only when its link exists, so a missing link is told apart from a taken id or token.
const INSERT_CHALLENGE: &str = "INSERT INTO access_challenge (tenant_id, id, portal_id, contact_id, link_id, \
         token_hash, code_hash, created_at, expires_at, used_at) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 \
     WHERE EXISTS (SELECT 1 FROM access_link WHERE tenant_id = $1 AND id = $5) \
     ON CONFLICT DO NOTHING";
const LINK_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM access_link WHERE tenant_id = $1 AND id = $2)";
/// Set once: a second use matches no row.
const USE_CHALLENGE: &str =
    "UPDATE access_challenge SET used_at = $3 WHERE tenant_id = $1 AND id = $2 AND used_at IS NULL";
const CHALLENGE_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM access_challenge WHERE tenant_id = $1 AND id = $2)";

/// A missing link is `NotFound("access link")`, a taken id or token `AlreadyExists("access
/// code")`, in the reference store's order.
pub(super) async fn insert_challenge(conn: &mut PgConnection, cx: Cx<'_>, c: &AccessChallenge) -> Step {
    let query = sqlx::query(INSERT_CHALLENGE)
        .bind(cx.t())
        .bind(c.id.as_uuid())
        .bind(c.portal_id.as_uuid())
        .bind(c.contact_id.as_uuid())
        .bind(c.link_id.as_uuid())
        .bind(c.token_hash.as_bytes().as_slice())
        .bind(c.code_hash.as_bytes().as_slice())
        .bind(c.created_at)
        .bind(c.expires_at)
        .bind(c.used_at);
    if exec(conn, cx, query).await? == 0 {
        let link = sqlx::query_scalar(LINK_EXISTS).bind(cx.t()).bind(c.link_id.as_uuid());
        return Err(if scalar(conn, cx, link).await? {
            already("access code", &c.id)
        } else {
            not_found("access link", c.link_id)
        });
    }
    Ok(())
}

/// A challenge used already is `Stale`, one that does not exist `NotFound`, as the reference
/// store answers.
pub(super) async fn use_challenge(conn: &mut PgConnection, cx: Cx<'_>, id: ChallengeId, at: DateTime<Utc>) -> Step {
    let query = sqlx::query(USE_CHALLENGE).bind(cx.t()).bind(id.as_uuid()).bind(at);
    if exec(conn, cx, query).await? > 0 {
        return Ok(());
    }
    let exists = sqlx::query_scalar(CHALLENGE_EXISTS).bind(cx.t()).bind(id.as_uuid());
    Err(if scalar(conn, cx, exists).await? {
        Fail::Refused(CommandError::Stale {
            entity: "access code",
            id: id.as_uuid(),
            expected: 0,
            actual: 1,
        })
    } else {
        not_found("access code", id)
    })
}

/// Whose client access [`revoke`] ends.
#[derive(Clone, Copy)]
pub(super) enum Scope {
    /// Every link and session of one contact.
    Contact(Uuid),
    /// Every link and session of one portal.
    Portal(Uuid),
}

/// Revokes the links not yet revoked (`revoked_at = at`) and deletes the sessions of the scope.
pub(super) async fn revoke(
    conn: &mut PgConnection,
    tenant: TenantId,
    scope: Scope,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let (links, sessions, id) = match scope {
        Scope::Contact(id) => (
            "UPDATE access_link SET revoked_at = $3 WHERE tenant_id = $1 AND contact_id = $2 AND revoked_at IS NULL",
            "DELETE FROM contact_session WHERE tenant_id = $1 AND contact_id = $2",
            id,
        ),
        Scope::Portal(id) => (
            "UPDATE access_link SET revoked_at = $3 WHERE tenant_id = $1 AND portal_id = $2 AND revoked_at IS NULL",
            "DELETE FROM contact_session WHERE tenant_id = $1 AND portal_id = $2",
            id,
        ),
    };
    sqlx::query(links)
        .bind(tenant.as_uuid())
        .bind(id)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    sqlx::query(sessions)
        .bind(tenant.as_uuid())
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

//! Writes of contact access links and contact sessions, and the revocations of a contact's or a
//! portal's client access. A violated constraint is turned into the reference store's refusal by
//! [`crate::error::violation`].

use chrono::{DateTime, Utc};
use portal_core::access::{AccessLink, ContactSession};
use portal_core::id::TenantId;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Cx, exec};
use crate::error::Step;

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

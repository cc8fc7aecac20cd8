//! [`AccessRepo`] on PostgreSQL: contact access links and contact sessions (migration
//! `access_links`), and one-time code challenges (migration `access_challenges`). Links,
//! sessions and challenges are created, revoked and used by the commit path
//! (`write/access.rs`); here are the reads, the rolling of a session (one `UPDATE ... RETURNING`)
//! and signing out. Token hashes are 32-byte `BYTEA` (checked by the schema).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use portal_core::access::{AccessChallenge, AccessLink, CONTACT_SESSION_IDLE, ContactSession};
use portal_core::auth::TokenHash;
use portal_core::id::{AccessLinkId, ChallengeId, ContactId, PortalId, TenantId};
use portal_core::storage::{AccessRepo, StorageError, StorageResult};
use uuid::Uuid;

use crate::PgStorage;
use crate::error::map_sqlx;
use crate::rows::corrupt;

const FIND_LINK: &str = "SELECT tenant_id, id, portal_id, contact_id, token_hash, created_at, expires_at, revoked_at \
     FROM access_link WHERE tenant_id = $1 AND token_hash = $2";
const GET_LINK: &str = "SELECT tenant_id, id, portal_id, contact_id, token_hash, created_at, expires_at, revoked_at \
     FROM access_link WHERE tenant_id = $1 AND id = $2";
const FIND_CHALLENGE: &str = "SELECT tenant_id, id, portal_id, contact_id, link_id, token_hash, code_hash, created_at, \
         expires_at, used_at \
     FROM access_challenge WHERE tenant_id = $1 AND token_hash = $2";
const LIST_LINKS: &str = "SELECT tenant_id, id, portal_id, contact_id, token_hash, created_at, expires_at, revoked_at \
     FROM access_link WHERE tenant_id = $1 AND contact_id = $2 ORDER BY created_at, id";

/// A session works while `now < expires_at` and its link is not revoked; a use rolls it.
const TOUCH_SESSION: &str = "UPDATE contact_session s SET last_used_at = $3, expires_at = $4 \
     FROM access_link l \
     WHERE s.tenant_id = $1 AND s.token_hash = $2 AND s.expires_at > $3 \
       AND l.tenant_id = s.tenant_id AND l.id = s.link_id AND l.revoked_at IS NULL \
     RETURNING s.tenant_id, s.token_hash, s.portal_id, s.contact_id, s.link_id, s.created_at, s.last_used_at, \
         s.expires_at";
const LIST_SESSIONS: &str = "SELECT s.tenant_id, s.token_hash, s.portal_id, s.contact_id, s.link_id, s.created_at, \
         s.last_used_at, s.expires_at \
     FROM contact_session s JOIN access_link l ON l.tenant_id = s.tenant_id AND l.id = s.link_id \
     WHERE s.tenant_id = $1 AND s.contact_id = $2 AND s.expires_at > $3 AND l.revoked_at IS NULL \
     ORDER BY s.created_at, s.token_hash";
const DELETE_SESSION: &str = "DELETE FROM contact_session WHERE tenant_id = $1 AND token_hash = $2";
const DELETE_SESSIONS_OF: &str = "DELETE FROM contact_session WHERE tenant_id = $1 AND contact_id = $2";

#[derive(sqlx::FromRow)]
struct ChallengeRow {
    tenant_id: Uuid,
    id: Uuid,
    portal_id: Uuid,
    contact_id: Uuid,
    link_id: Uuid,
    token_hash: Vec<u8>,
    code_hash: Vec<u8>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
}

impl TryFrom<ChallengeRow> for AccessChallenge {
    type Error = StorageError;
    fn try_from(r: ChallengeRow) -> StorageResult<Self> {
        Ok(Self {
            id: ChallengeId::from_uuid(r.id),
            tenant_id: TenantId::from_uuid(r.tenant_id),
            portal_id: PortalId::from_uuid(r.portal_id),
            contact_id: ContactId::from_uuid(r.contact_id),
            link_id: AccessLinkId::from_uuid(r.link_id),
            token_hash: TokenHash::from_slice(&r.token_hash).map_err(|e| corrupt("access code token hash", e))?,
            code_hash: TokenHash::from_slice(&r.code_hash).map_err(|e| corrupt("access code hash", e))?,
            created_at: r.created_at,
            expires_at: r.expires_at,
            used_at: r.used_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct LinkRow {
    tenant_id: Uuid,
    id: Uuid,
    portal_id: Uuid,
    contact_id: Uuid,
    token_hash: Vec<u8>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<LinkRow> for AccessLink {
    type Error = StorageError;
    fn try_from(r: LinkRow) -> StorageResult<Self> {
        Ok(Self {
            id: AccessLinkId::from_uuid(r.id),
            tenant_id: TenantId::from_uuid(r.tenant_id),
            portal_id: PortalId::from_uuid(r.portal_id),
            contact_id: ContactId::from_uuid(r.contact_id),
            token_hash: TokenHash::from_slice(&r.token_hash).map_err(|e| corrupt("access link token hash", e))?,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    tenant_id: Uuid,
    token_hash: Vec<u8>,
    portal_id: Uuid,
    contact_id: Uuid,
    link_id: Uuid,
    created_at: DateTime<Utc>,
    last_used_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl TryFrom<SessionRow> for ContactSession {
    type Error = StorageError;
    fn try_from(r: SessionRow) -> StorageResult<Self> {
        Ok(Self {
            token_hash: TokenHash::from_slice(&r.token_hash).map_err(|e| corrupt("contact session token hash", e))?,
            tenant_id: TenantId::from_uuid(r.tenant_id),
            portal_id: PortalId::from_uuid(r.portal_id),
            contact_id: ContactId::from_uuid(r.contact_id),
            link_id: AccessLinkId::from_uuid(r.link_id),
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            expires_at: r.expires_at,
        })
    }
}

#[async_trait]
impl AccessRepo for PgStorage {
    async fn find_access_link(&self, tenant: TenantId, token: &TokenHash) -> StorageResult<Option<AccessLink>> {
        let row: Option<LinkRow> = sqlx::query_as(FIND_LINK)
            .bind(tenant.as_uuid())
            .bind(token.as_bytes().as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx)?;
        row.map(AccessLink::try_from).transpose()
    }

    async fn get_contact(
        &self,
        tenant: TenantId,
        id: ContactId,
    ) -> StorageResult<Option<portal_core::portal::Contact>> {
        let row: Option<crate::rows::ContactRow> = sqlx::query_as(
            "SELECT tenant_id, id, portal_id, name, email, role, is_primary, version, created_at, \
             notification_preferences FROM contact WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx)?;
        row.map(portal_core::portal::Contact::try_from).transpose()
    }

    async fn get_access_link(&self, tenant: TenantId, id: AccessLinkId) -> StorageResult<Option<AccessLink>> {
        let row: Option<LinkRow> = sqlx::query_as(GET_LINK)
            .bind(tenant.as_uuid())
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx)?;
        row.map(AccessLink::try_from).transpose()
    }

    async fn find_access_challenge(
        &self,
        tenant: TenantId,
        token: &TokenHash,
    ) -> StorageResult<Option<AccessChallenge>> {
        let row: Option<ChallengeRow> = sqlx::query_as(FIND_CHALLENGE)
            .bind(tenant.as_uuid())
            .bind(token.as_bytes().as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx)?;
        row.map(AccessChallenge::try_from).transpose()
    }

    async fn list_access_links(&self, tenant: TenantId, contact: ContactId) -> StorageResult<Vec<AccessLink>> {
        let rows: Vec<LinkRow> = sqlx::query_as(LIST_LINKS)
            .bind(tenant.as_uuid())
            .bind(contact.as_uuid())
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)?;
        rows.into_iter().map(AccessLink::try_from).collect()
    }

    async fn touch_contact_session(
        &self,
        tenant: TenantId,
        token: &TokenHash,
        now: DateTime<Utc>,
    ) -> StorageResult<Option<ContactSession>> {
        let row: Option<SessionRow> = sqlx::query_as(TOUCH_SESSION)
            .bind(tenant.as_uuid())
            .bind(token.as_bytes().as_slice())
            .bind(now)
            .bind(now + CONTACT_SESSION_IDLE)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx)?;
        row.map(ContactSession::try_from).transpose()
    }

    async fn list_contact_sessions(
        &self,
        tenant: TenantId,
        contact: ContactId,
        now: DateTime<Utc>,
    ) -> StorageResult<Vec<ContactSession>> {
        let rows: Vec<SessionRow> = sqlx::query_as(LIST_SESSIONS)
            .bind(tenant.as_uuid())
            .bind(contact.as_uuid())
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)?;
        rows.into_iter().map(ContactSession::try_from).collect()
    }

    async fn delete_contact_session(&self, tenant: TenantId, token: &TokenHash) -> StorageResult<bool> {
        let r = sqlx::query(DELETE_SESSION)
            .bind(tenant.as_uuid())
            .bind(token.as_bytes().as_slice())
            .execute(&self.pool)
            .await
            .map_err(map_sqlx)?;
        Ok(r.rows_affected() > 0)
    }

    async fn delete_contact_sessions_of(&self, tenant: TenantId, contact: ContactId) -> StorageResult<u64> {
        let r = sqlx::query(DELETE_SESSIONS_OF)
            .bind(tenant.as_uuid())
            .bind(contact.as_uuid())
            .execute(&self.pool)
            .await
            .map_err(map_sqlx)?;
        Ok(r.rows_affected())
    }
}

//! [`AccessRepo`] on SQLite: contact access links and contact sessions (migration
//! `access_links`), and one-time code challenges (migration `access_challenges`). Links, sessions
//! and challenges are created, revoked and used by the commit path
//! (`write.rs`); here are the reads, the rolling of a session and signing out. Token hashes are
//! 32-byte BLOBs (checked by the schema). Times are compared in Rust, as the core does.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use portal_core::access::{AccessChallenge, AccessLink, ContactSession};
use portal_core::auth::TokenHash;
use portal_core::id::{AccessLinkId, ChallengeId, ContactId, PortalId, TenantId};
use portal_core::storage::{AccessRepo, StorageError, StorageResult};
use sqlx::FromRow;
use uuid::Uuid;

use crate::error::{map_sqlx, parse};
use crate::{SqliteStorage, finish};

macro_rules! link_select {
    ($where:literal) => {
        concat!(
            "SELECT tenant_id, id, portal_id, contact_id, token_hash, created_at, expires_at, revoked_at \
             FROM access_link WHERE ",
            $where
        )
    };
}

#[derive(FromRow)]
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
            token_hash: parse("access_link.token_hash", TokenHash::from_slice(&r.token_hash))?,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
        })
    }
}

#[derive(FromRow)]
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
            token_hash: parse("access_challenge.token_hash", TokenHash::from_slice(&r.token_hash))?,
            code_hash: parse("access_challenge.code_hash", TokenHash::from_slice(&r.code_hash))?,
            created_at: r.created_at,
            expires_at: r.expires_at,
            used_at: r.used_at,
        })
    }
}

/// A session row with whether its link is revoked.
#[derive(FromRow)]
struct SessionRow {
    tenant_id: Uuid,
    token_hash: Vec<u8>,
    portal_id: Uuid,
    contact_id: Uuid,
    link_id: Uuid,
    created_at: DateTime<Utc>,
    last_used_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    link_revoked: bool,
}

impl SessionRow {
    /// The session, when it works at `now` (not expired, its link not revoked).
    fn live(self, now: DateTime<Utc>) -> StorageResult<Option<ContactSession>> {
        let revoked = self.link_revoked;
        let s = ContactSession {
            token_hash: parse("contact_session.token_hash", TokenHash::from_slice(&self.token_hash))?,
            tenant_id: TenantId::from_uuid(self.tenant_id),
            portal_id: PortalId::from_uuid(self.portal_id),
            contact_id: ContactId::from_uuid(self.contact_id),
            link_id: AccessLinkId::from_uuid(self.link_id),
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            expires_at: self.expires_at,
        };
        Ok((!revoked && s.is_live(now)).then_some(s))
    }
}

/// The sessions with whether their link is revoked.
macro_rules! session_select {
    ($where:literal) => {
        concat!(
            "SELECT s.tenant_id, s.token_hash, s.portal_id, s.contact_id, s.link_id, s.created_at, \
             s.last_used_at, s.expires_at, (l.revoked_at IS NOT NULL) AS link_revoked \
             FROM contact_session s JOIN access_link l ON l.tenant_id = s.tenant_id AND l.id = s.link_id WHERE ",
            $where
        )
    };
}

#[async_trait]
impl AccessRepo for SqliteStorage {
    async fn find_access_link(&self, tenant: TenantId, token: &TokenHash) -> StorageResult<Option<AccessLink>> {
        let row: Option<LinkRow> = sqlx::query_as(link_select!("tenant_id = $1 AND token_hash = $2"))
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
        let row: Option<crate::rows::ContactRow> = sqlx::query_as(concat!(
            "SELECT ",
            crate::rows::contact_columns!(),
            " FROM contact WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx)?;
        row.map(portal_core::portal::Contact::try_from).transpose()
    }

    async fn get_access_link(&self, tenant: TenantId, id: AccessLinkId) -> StorageResult<Option<AccessLink>> {
        let row: Option<LinkRow> = sqlx::query_as(link_select!("tenant_id = $1 AND id = $2"))
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
        let row: Option<ChallengeRow> = sqlx::query_as(
            "SELECT tenant_id, id, portal_id, contact_id, link_id, token_hash, code_hash, created_at, expires_at, \
             used_at FROM access_challenge WHERE tenant_id = $1 AND token_hash = $2",
        )
        .bind(tenant.as_uuid())
        .bind(token.as_bytes().as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx)?;
        row.map(AccessChallenge::try_from).transpose()
    }

    async fn list_access_links(&self, tenant: TenantId, contact: ContactId) -> StorageResult<Vec<AccessLink>> {
        let rows: Vec<LinkRow> = sqlx::query_as(link_select!("tenant_id = $1 AND contact_id = $2"))
            .bind(tenant.as_uuid())
            .bind(contact.as_uuid())
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)?;
        let mut links = rows
            .into_iter()
            .map(AccessLink::try_from)
            .collect::<StorageResult<Vec<_>>>()?;
        links.sort_by_key(|l| (l.created_at, l.id));
        Ok(links)
    }

    async fn touch_contact_session(
        &self,
        tenant: TenantId,
        token: &TokenHash,
        now: DateTime<Utc>,
    ) -> StorageResult<Option<ContactSession>> {
        let mut tx = self.begin_write().await?;
        let row: Option<SessionRow> = sqlx::query_as(session_select!("s.tenant_id = $1 AND s.token_hash = $2"))
            .bind(tenant.as_uuid())
            .bind(token.as_bytes().as_slice())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        let Some(session) = row.map(|r| r.live(now)).transpose()?.flatten() else {
            tx.rollback().await.map_err(map_sqlx)?;
            return Ok(None);
        };
        let touched = session.touched(now);
        sqlx::query(
            "UPDATE contact_session SET last_used_at = $3, expires_at = $4 WHERE tenant_id = $1 AND token_hash = $2",
        )
        .bind(tenant.as_uuid())
        .bind(token.as_bytes().as_slice())
        .bind(touched.last_used_at)
        .bind(touched.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx)?;
        finish(tx).await?;
        Ok(Some(touched))
    }

    async fn list_contact_sessions(
        &self,
        tenant: TenantId,
        contact: ContactId,
        now: DateTime<Utc>,
    ) -> StorageResult<Vec<ContactSession>> {
        let rows: Vec<SessionRow> = sqlx::query_as(session_select!("s.tenant_id = $1 AND s.contact_id = $2"))
            .bind(tenant.as_uuid())
            .bind(contact.as_uuid())
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)?;
        let mut sessions = Vec::with_capacity(rows.len());
        for r in rows {
            if let Some(s) = r.live(now)? {
                sessions.push(s);
            }
        }
        sessions.sort_by_key(|s| (s.created_at, s.token_hash));
        Ok(sessions)
    }

    async fn delete_contact_session(&self, tenant: TenantId, token: &TokenHash) -> StorageResult<bool> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query("DELETE FROM contact_session WHERE tenant_id = $1 AND token_hash = $2")
            .bind(tenant.as_uuid())
            .bind(token.as_bytes().as_slice())
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        finish(tx).await?;
        Ok(r.rows_affected() > 0)
    }

    async fn delete_contact_sessions_of(&self, tenant: TenantId, contact: ContactId) -> StorageResult<u64> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query("DELETE FROM contact_session WHERE tenant_id = $1 AND contact_id = $2")
            .bind(tenant.as_uuid())
            .bind(contact.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        finish(tx).await?;
        Ok(r.rows_affected())
    }
}

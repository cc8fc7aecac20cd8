//! Companies (the MSP's clients) and their sites.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{CompanyId, SiteId, TenantId};
use crate::value::{Description, Name};

/// One of the MSP's clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Company {
    /// Id.
    pub id: CompanyId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// Name.
    pub name: Name,
    /// Compare-and-set version.
    pub version: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A location of a company (AUTH-3 scopes portal users to sites).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Site {
    /// Id.
    pub id: SiteId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// The company it belongs to.
    pub company_id: CompanyId,
    /// Name.
    pub name: Name,
    /// Postal address, free text.
    pub address: Description,
    /// Compare-and-set version.
    pub version: i64,
}

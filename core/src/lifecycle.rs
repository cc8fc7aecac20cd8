//! The portal lifecycle (ONB-3) as one explicit table of allowed moves.

use serde::{Deserialize, Serialize};

use crate::error::CommandError;

/// Status of an onboarding portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PortalStatus {
    /// Being configured; clients see nothing.
    Draft,
    /// Live: clients can access and complete tasks.
    Active,
    /// Every task is completed.
    Completed,
    /// Migrated to the MSP's permanent systems.
    Converted,
    /// Historical record; all client access revoked.
    Archived,
}

crate::string_enum!(PortalStatus {
    Draft => "draft",
    Active => "active",
    Completed => "completed",
    Converted => "converted",
    Archived => "archived",
});

/// Every allowed move `(from, to)`. Anything not listed is refused.
///
/// `active → completed` is further guarded by "every task completed", which
/// [`crate::commands::portal::transition_portal`] checks; the table only says the move exists.
pub const ALLOWED_MOVES: &[(PortalStatus, PortalStatus)] = {
    use PortalStatus::{Active, Archived, Completed, Converted, Draft};
    &[
        (Draft, Active),
        (Active, Completed),
        (Completed, Converted),
        (Draft, Archived),
        (Active, Archived),
        (Completed, Archived),
        (Converted, Archived),
        (Archived, Draft),
    ]
};

/// Whether the table allows `from → to`.
#[must_use]
pub fn is_allowed(from: PortalStatus, to: PortalStatus) -> bool {
    ALLOWED_MOVES.contains(&(from, to))
}

/// Checks a move against the table; a refusal names both statuses.
pub fn check_move(from: PortalStatus, to: PortalStatus) -> Result<(), CommandError> {
    if is_allowed(from, to) {
        Ok(())
    } else {
        Err(CommandError::IllegalTransition { from, to })
    }
}

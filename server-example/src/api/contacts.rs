//! The client contacts of a portal (CON-1): listing, adding, editing and removing them.
//!
//! Contacts change while the portal is `draft` or `active` (409 `wrong_portal_status`
//! otherwise). Emails are unique within a portal, whatever their case (409
//! `duplicate_contact_email`). At most one contact is primary: making one primary moves the flag
//! from the current primary in the same commit, and an `active` portal keeps exactly one, so its
//! primary can be neither un-flagged nor removed until another contact takes the flag (409
//! `primary_contact`).
//!
//! Versions: each contact has its own version, its `ETag`, which `If-Match` is compared to.
//! Moving the primary flag changes the former primary's row too, so its version moves on as
//! well; read the list again before editing it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use portal_core::commands::contact::ContactPatch;
use portal_core::id::{ContactId, PortalId};
use portal_core::portal::{Contact, ContactInput, ContactRole};
use portal_core::value::{Email, Name};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::support::{IfMatch, Tagged};
use crate::app::AppState;
use crate::auth::Staff;
use crate::error::{ApiError, ErrorBody, Json, Path};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_contacts, add_contact))
        .routes(routes!(update_contact, remove_contact))
}

/// A new contact of a portal.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({
    "name": "Grace Hopper",
    "email": "grace@northwind.example",
    "role": "it",
    "primary": false
}))]
pub struct NewContactRequest {
    /// The name.
    pub name: Name,
    /// The email, unique within the portal (compared without regard to case).
    pub email: Email,
    /// The role.
    pub role: ContactRole,
    /// Make the new contact the primary one: the current primary loses the flag. Absent means
    /// `false`.
    #[serde(default)]
    pub primary: bool,
}

/// Changes to a contact: each field left out (or `null`) stays as it is.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[schema(example = json!({ "role": "decision_maker", "primary": true }))]
pub struct ContactUpdateRequest {
    /// The new name.
    #[serde(default)]
    pub name: Option<Name>,
    /// The new email, unique within the portal.
    #[serde(default)]
    pub email: Option<Email>,
    /// The new role.
    #[serde(default)]
    pub role: Option<ContactRole>,
    /// `true` makes the contact the primary one (the current primary loses the flag); `false`
    /// clears the flag, which an active portal refuses for its primary.
    #[serde(default)]
    pub primary: Option<bool>,
}

/// The contacts of a portal, oldest first (a portal has at most 50).
#[utoipa::path(
    get,
    path = "/api/v1/portals/{portal_id}/contacts",
    tag = "contacts",
    params(("portal_id" = PortalId, Path, description = "The portal.")),
    responses(
        (status = 200, description = "Every contact of the portal, in the order they were added.", body = Vec<Contact>),
        (status = 400, description = "The id is not a UUID (`invalid_path`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `read_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal (`not_found`).", body = ErrorBody),
    )
)]
async fn list_contacts(
    State(state): State<AppState>,
    staff: Staff,
    Path(portal): Path<PortalId>,
) -> Result<Json<Vec<Contact>>, ApiError> {
    Ok(Json(state.engine.list_contacts(&staff.principal, portal).await?))
}

/// Adds a contact to a draft or active portal. With `"primary": true` the new contact takes the
/// flag from the current primary, in the same commit (whose version then moves on).
#[utoipa::path(
    post,
    path = "/api/v1/portals/{portal_id}/contacts",
    tag = "contacts",
    params(("portal_id" = PortalId, Path, description = "The portal.")),
    request_body = NewContactRequest,
    responses(
        (status = 201, description = "The new contact.", body = Contact, headers(("ETag" = String, description = "The contact's version."))),
        (status = 400, description = "The id is not a UUID (`invalid_path`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal (`not_found`).", body = ErrorBody),
        (status = 409, description = "The portal is neither `draft` nor `active` (`wrong_portal_status`), or the email is already on the portal (`duplicate_contact_email`).", body = ErrorBody),
        (status = 422, description = "A bad body (`invalid_body`), or the portal already has 50 contacts (`too_many`).", body = ErrorBody),
    )
)]
async fn add_contact(
    State(state): State<AppState>,
    staff: Staff,
    Path(portal): Path<PortalId>,
    Json(request): Json<NewContactRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let input = ContactInput {
        name: request.name,
        email: request.email,
        role: request.role,
        primary: request.primary,
    };
    let contact = state.engine.add_contact(&staff.principal, portal, &input).await?;
    Ok((StatusCode::CREATED, Tagged(contact.version, contact)))
}

/// Edits a contact of a draft or active portal: name, email, role or the primary flag.
/// `"primary": true` moves the flag from the current primary in the same commit; `"primary":
/// false` on the primary of an active portal is refused (409 `primary_contact`): make another
/// contact primary instead. A body that changes nothing answers the contact as it is.
#[utoipa::path(
    put,
    path = "/api/v1/portals/{portal_id}/contacts/{contact_id}",
    tag = "contacts",
    params(
        ("portal_id" = PortalId, Path, description = "The portal."),
        ("contact_id" = ContactId, Path, description = "The contact."),
        ("If-Match" = String, Header, description = "The contact's ETag last read."),
    ),
    request_body = ContactUpdateRequest,
    responses(
        (status = 200, description = "The contact after the edit.", body = Contact, headers(("ETag" = String, description = "The contact's new version."))),
        (status = 400, description = "A bad id or `If-Match` (`invalid_path`, `invalid_if_match`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal or contact (`not_found`).", body = ErrorBody),
        (status = 409, description = "The portal is neither `draft` nor `active` (`wrong_portal_status`), the email is already on the portal (`duplicate_contact_email`), or the edit would leave an active portal without its primary contact (`primary_contact`).", body = ErrorBody),
        (status = 412, description = "The contact changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 422, description = "A bad body (`invalid_body`).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn update_contact(
    State(state): State<AppState>,
    staff: Staff,
    Path((portal, contact)): Path<(PortalId, ContactId)>,
    IfMatch(version): IfMatch,
    Json(request): Json<ContactUpdateRequest>,
) -> Result<Tagged<Contact>, ApiError> {
    let patch = ContactPatch {
        name: request.name,
        email: request.email,
        role: request.role,
        primary: request.primary,
    };
    let c = state
        .engine
        .update_contact(&staff.principal, portal, contact, version, &patch)
        .await?;
    Ok(Tagged(c.version, c))
}

/// Removes a contact from a draft or active portal. The primary contact of an active portal
/// cannot be removed (409 `primary_contact`): make another contact primary first.
#[utoipa::path(
    delete,
    path = "/api/v1/portals/{portal_id}/contacts/{contact_id}",
    tag = "contacts",
    params(
        ("portal_id" = PortalId, Path, description = "The portal."),
        ("contact_id" = ContactId, Path, description = "The contact."),
        ("If-Match" = String, Header, description = "The contact's ETag last read."),
    ),
    responses(
        (status = 204, description = "Removed."),
        (status = 400, description = "A bad id or `If-Match` (`invalid_path`, `invalid_if_match`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal or contact (`not_found`).", body = ErrorBody),
        (status = 409, description = "The portal is neither `draft` nor `active` (`wrong_portal_status`), or the contact is the primary contact of an active portal (`primary_contact`).", body = ErrorBody),
        (status = 412, description = "The contact changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn remove_contact(
    State(state): State<AppState>,
    staff: Staff,
    Path((portal, contact)): Path<(PortalId, ContactId)>,
    IfMatch(version): IfMatch,
) -> Result<StatusCode, ApiError> {
    state
        .engine
        .remove_contact(&staff.principal, portal, contact, version)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_take_what_the_documentation_says() {
        let r: NewContactRequest = serde_json::from_value(serde_json::json!({
            "name": "Grace Hopper", "email": "grace@northwind.example", "role": "it"
        }))
        .expect("parses");
        assert!(!r.primary, "absent means not primary");
        assert!(
            serde_json::from_value::<NewContactRequest>(serde_json::json!({ "name": "No email", "role": "it" }))
                .is_err()
        );
        let u: ContactUpdateRequest =
            serde_json::from_value(serde_json::json!({ "primary": true, "name": null })).expect("parses");
        assert_eq!((u.primary, u.name, u.email, u.role), (Some(true), None, None, None));
        assert!(serde_json::from_value::<ContactUpdateRequest>(serde_json::json!({ "role": "boss" })).is_err());
    }
}

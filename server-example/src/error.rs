//! The one error type of the HTTP layer, and the JSON extractor whose rejections use it.
//!
//! Every error answers `{"error": {"code": "...", "message": "...", "details": ...}}` with a
//! stable `code`. A 5xx answers a generic message; what went wrong goes to the log.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use portal_core::error::CommandError;
use portal_core::policy::AccessDenied;
use portal_core::service::ServiceError;
use portal_core::storage::StorageError;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

/// An error answered over HTTP.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A refusal or failure of the engine.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The body is not JSON (400 `malformed_json`).
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    /// The body is JSON of the wrong shape: a missing field, a wrong type, an unknown value (422
    /// `invalid_body`).
    #[error("the body does not match what this endpoint takes: {0}")]
    InvalidBody(String),
    /// The body is not declared as JSON (415 `unsupported_media_type`).
    #[error("the body must be JSON, sent with `Content-Type: application/json`")]
    UnsupportedMediaType,
    /// The body is larger than the server accepts (413 `payload_too_large`).
    #[error("the body is too large")]
    PayloadTooLarge,
    /// The body could not be read (400 `unreadable_body`).
    #[error("the body could not be read: {0}")]
    UnreadableBody(String),
    /// No route has this path (404 `route_not_found`).
    #[error("no such route")]
    RouteNotFound,
    /// The route exists but not for this method (405 `method_not_allowed`).
    #[error("this method is not allowed on this route")]
    MethodNotAllowed,
    /// The database does not answer (503 `database_unavailable`).
    #[error("the database is unavailable")]
    DatabaseUnavailable(#[source] StorageError),
    /// No tenant serves the request's host (404 `unknown_host`).
    #[error("no portal is served at this host")]
    UnknownHost,
    /// No session was presented (401 `unauthenticated`).
    #[error("sign in first: send the session cookie or `Authorization: Bearer <token>`")]
    Unauthenticated,
    /// The session presented is malformed, ended, or of a user who can no longer act (401
    /// `invalid_session`).
    #[error("the session is not valid; sign in again")]
    InvalidSession,
    /// The session presented has expired (401 `session_expired`).
    #[error("the session has expired; sign in again")]
    SessionExpired,
    /// A cookie-carried unsafe request without the session's CSRF token (403 `csrf_token_invalid`).
    #[error("send the session's CSRF token in the `X-CSRF-Token` header")]
    CsrfTokenInvalid,
    /// Wrong email or password (401 `invalid_credentials`). Unknown accounts answer the same.
    #[error("the email or password is wrong")]
    InvalidCredentials,
    /// Too many sign-in attempts for this account or address (429 `too_many_attempts`).
    #[error("too many sign-in attempts; try again in {retry_after_seconds} seconds")]
    TooManyAttempts {
        /// Seconds until the next window.
        retry_after_seconds: i64,
    },
    /// An update without `If-Match` (428 `precondition_required`).
    #[error("send `If-Match` with the ETag (version) you last read")]
    PreconditionRequired,
    /// An `If-Match` header that is not one ETag of this API (400 `invalid_if_match`).
    #[error("`If-Match` must be one ETag as sent in `ETag`, e.g. \"3\"")]
    InvalidIfMatch,
    /// A query string that does not parse (400 `invalid_query`).
    #[error("the query string is not valid: {0}")]
    InvalidQuery(String),
    /// A path parameter that does not parse, e.g. an id that is not a UUID (400 `invalid_path`).
    #[error("the path is not valid: {0}")]
    InvalidPath(String),
    /// A page cursor that this API did not make (400 `invalid_cursor`).
    #[error("the cursor is not valid; use `next_cursor` of the previous page")]
    InvalidCursor,
    /// An access link that opens nothing (404 `link_not_found`): unknown, malformed, expired,
    /// revoked, of another tenant, of a portal that is not live or of a removed contact. One
    /// answer for all, so a caller learns nothing about which.
    #[error("this link does not open a portal; ask your contact for a new one")]
    LinkNotFound,
    /// A one-time code that opens nothing (400 `invalid_code`): wrong, expired, used, or its
    /// challenge unknown. One answer for all.
    #[error("the code is wrong or has expired; open your link again for a new code")]
    InvalidCode,
    /// A password reset link that resets nothing (400 `reset_link_invalid`): malformed, expired,
    /// used already (the password changed since), of another tenant, or of a user who is gone
    /// or inactive. One answer for all.
    #[error("this password reset link is not valid; ask for a new one")]
    ResetLinkInvalid,
    /// Too many tries of one code (429 `code_attempts_exhausted`): a new code is needed.
    #[error("too many tries of this code; open your link again for a new code")]
    CodeAttemptsExhausted,
}

impl ApiError {
    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Service(ServiceError::Command(e)) => command_status(e),
            Self::Service(ServiceError::Storage(e)) => storage_status(e),
            Self::InvalidBody(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RouteNotFound | Self::UnknownHost | Self::LinkNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::DatabaseUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unauthenticated | Self::InvalidSession | Self::SessionExpired | Self::InvalidCredentials => {
                StatusCode::UNAUTHORIZED
            }
            Self::CsrfTokenInvalid => StatusCode::FORBIDDEN,
            Self::TooManyAttempts { .. } | Self::CodeAttemptsExhausted => StatusCode::TOO_MANY_REQUESTS,
            Self::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
            Self::MalformedJson(_)
            | Self::UnreadableBody(_)
            | Self::InvalidCode
            | Self::InvalidIfMatch
            | Self::InvalidQuery(_)
            | Self::InvalidPath(_)
            | Self::InvalidCursor
            | Self::ResetLinkInvalid => StatusCode::BAD_REQUEST,
        }
    }

    /// The stable, machine-readable code.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Service(ServiceError::Command(e)) => e.code(),
            Self::Service(ServiceError::Storage(StorageError::Unavailable(_))) | Self::DatabaseUnavailable(_) => {
                "database_unavailable"
            }
            Self::Service(ServiceError::Storage(_)) => "internal_error",
            Self::MalformedJson(_) => "malformed_json",
            Self::InvalidBody(_) => "invalid_body",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnreadableBody(_) => "unreadable_body",
            Self::RouteNotFound => "route_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UnknownHost => "unknown_host",
            Self::Unauthenticated => "unauthenticated",
            Self::InvalidSession => "invalid_session",
            Self::SessionExpired => "session_expired",
            Self::CsrfTokenInvalid => "csrf_token_invalid",
            Self::InvalidCredentials => "invalid_credentials",
            Self::TooManyAttempts { .. } => "too_many_attempts",
            Self::PreconditionRequired => "precondition_required",
            Self::InvalidIfMatch => "invalid_if_match",
            Self::InvalidQuery(_) => "invalid_query",
            Self::InvalidPath(_) => "invalid_path",
            Self::InvalidCursor => "invalid_cursor",
            Self::LinkNotFound => "link_not_found",
            Self::InvalidCode => "invalid_code",
            Self::ResetLinkInvalid => "reset_link_invalid",
            Self::CodeAttemptsExhausted => "code_attempts_exhausted",
        }
    }

    /// The human-readable message and the structured details of the body.
    fn message_and_details(&self) -> (String, Value) {
        match self {
            // Another tenant's ids, ids out of scope and ids that do not exist answer the same.
            Self::Service(ServiceError::Command(
                CommandError::NotFound { .. }
                | CommandError::Access(AccessDenied::OtherTenant | AccessDenied::OutOfScope),
            )) => ("not found".to_owned(), Value::Null),
            Self::Service(ServiceError::Command(e)) => (e.to_string(), serde_json::to_value(e).unwrap_or(Value::Null)),
            _ if self.status().is_server_error() => (self.generic_message().to_owned(), Value::Null),
            _ => (self.to_string(), Value::Null),
        }
    }

    const fn generic_message(&self) -> &'static str {
        match self {
            Self::DatabaseUnavailable(_) | Self::Service(ServiceError::Storage(StorageError::Unavailable(_))) => {
                "the database is unavailable; try again later"
            }
            _ => "internal error",
        }
    }
}

/// The status of a command's refusal.
const fn command_status(e: &CommandError) -> StatusCode {
    use CommandError as E;
    match e {
        E::NotFound { .. } | E::Access(AccessDenied::OtherTenant | AccessDenied::OutOfScope) => StatusCode::NOT_FOUND,
        E::Access(AccessDenied::Forbidden { .. }) => StatusCode::FORBIDDEN,
        E::Stale { .. } => StatusCode::PRECONDITION_FAILED,
        // The request is well formed but its content is not acceptable.
        E::Value(_)
        | E::ReasonRequired
        | E::DependencyCycle { .. }
        | E::UnknownDependency { .. }
        | E::UnknownDependencyKey { .. }
        | E::DuplicateKey { .. }
        | E::SelfDependency { .. }
        | E::DuplicateId { .. }
        | E::TooMany { .. }
        | E::EmptyList { .. }
        | E::ConfirmationRequired { .. }
        | E::BadOrder { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        // The request conflicts with the current state of what it names.
        E::IllegalTransition { .. }
        | E::TasksIncomplete { .. }
        | E::PortalStatus { .. }
        | E::IllegalTaskMove { .. }
        | E::TaskBlocked { .. }
        | E::PrimaryContact { .. }
        | E::DuplicateContactEmail { .. }
        | E::AlreadyExists { .. }
        | E::WrongEvidence { .. } => StatusCode::CONFLICT,
    }
}

/// The status of a store failure.
const fn storage_status(e: &StorageError) -> StatusCode {
    match e {
        StorageError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        StorageError::Corrupt(_) | StorageError::Invariant(_) | StorageError::Backend(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// The body of every error response: `{"error": {"code", "message", "details"}}`. Every error
/// response of the OpenAPI document names this schema.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What an [`ErrorBody`] says.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The stable, machine-readable code, e.g. `route_not_found` or `database_unavailable`.
    #[schema(example = "route_not_found")]
    pub code: String,
    /// A human-readable message; generic on a 5xx.
    #[schema(example = "no such route")]
    pub message: String,
    /// Structured details of the refusal (any JSON value), or `null`.
    pub details: Value,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), code = self.code(), error = ?self, "request failed: {self}");
        }
        let (message, details) = self.message_and_details();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message,
                details,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        match &self {
            Self::TooManyAttempts { retry_after_seconds } => {
                if let Ok(v) = header::HeaderValue::from_str(&retry_after_seconds.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            _ if status == StatusCode::UNAUTHORIZED => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonSyntaxError(e) => Self::MalformedJson(e.body_text()),
            JsonRejection::JsonDataError(e) => Self::InvalidBody(e.body_text()),
            JsonRejection::MissingJsonContentType(_) => Self::UnsupportedMediaType,
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            other => Self::UnreadableBody(other.body_text()),
        }
    }
}

/// The JSON body of a request, or of a response. As `axum::Json`, but a body that does not parse
/// is refused with an [`ApiError`]: 400 `malformed_json`, 422 `invalid_body`, 415
/// `unsupported_media_type` or 413 `payload_too_large`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        Self::InvalidQuery(rejection.body_text())
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::PathRejection) -> Self {
        Self::InvalidPath(rejection.body_text())
    }
}

/// The query string, as `axum::extract::Query`, refused with 400 `invalid_query`.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// Path parameters, as `axum::extract::Path`, refused with 400 `invalid_path`.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// The body of an error response, for a response built outside [`ApiError`].
#[must_use]
pub fn error_body(code: &str, message: &str) -> Value {
    json!({ "error": { "code": code, "message": message, "details": null } })
}

#[cfg(test)]
mod tests {
    use super::*;
    use portal_core::lifecycle::PortalStatus;

    fn status_and_code(e: CommandError) -> (u16, &'static str) {
        let e = ApiError::from(ServiceError::from(e));
        (e.status().as_u16(), e.code())
    }

    #[test]
    fn command_errors_map_to_their_status() {
        let id = uuid::Uuid::nil();
        assert_eq!(
            status_and_code(CommandError::NotFound { entity: "portal", id }),
            (404, "not_found")
        );
        assert_eq!(
            status_and_code(CommandError::Access(AccessDenied::OtherTenant)),
            (404, "not_found")
        );
        assert_eq!(
            status_and_code(CommandError::Stale {
                entity: "portal",
                id,
                expected: 1,
                actual: 2
            }),
            (412, "stale_version")
        );
        assert_eq!(
            status_and_code(CommandError::IllegalTransition {
                from: PortalStatus::Draft,
                to: PortalStatus::Completed
            }),
            (409, "illegal_transition")
        );
        assert_eq!(
            status_and_code(CommandError::TooMany {
                what: "tasks",
                max: 1,
                actual: 2
            }),
            (422, "too_many")
        );
    }

    #[test]
    fn storage_errors_are_5xx_without_detail() {
        let e = ApiError::from(ServiceError::from(StorageError::Corrupt(
            "row 42 of secret_table".to_owned(),
        )));
        assert_eq!((e.status().as_u16(), e.code()), (500, "internal_error"));
        let (message, details) = e.message_and_details();
        assert_eq!(message, "internal error");
        assert_eq!(details, Value::Null);
        let e = ApiError::from(ServiceError::from(StorageError::Unavailable("pool timed out".into())));
        assert_eq!((e.status().as_u16(), e.code()), (503, "database_unavailable"));
        assert!(!e.message_and_details().0.contains("pool"));
    }
}

//! What every `/api/v1` handler shares: `If-Match` and `ETag` (optimistic concurrency), keyset
//! pages with opaque cursors and a capped limit.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portal_core::storage::PageRequest;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, Json};

/// The version an update expects, from `If-Match: "<version>"` (the `ETag` of the last read).
/// Missing: 428 `precondition_required`; not one ETag of this API: 400 `invalid_if_match`. A stale
/// version is refused by the command with 412 `stale_version`, and nothing changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfMatch(pub i64);

impl IfMatch {
    /// Parses one ETag as this API sends it (`"3"`); a bare number is accepted too.
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        let v = value.trim();
        let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
        if v.is_empty() || v.len() > 18 || !v.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        v.parse().ok().map(Self)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut values = parts.headers.get_all(header::IF_MATCH).iter();
        let first = values.next().ok_or(ApiError::PreconditionRequired)?;
        if values.next().is_some() {
            return Err(ApiError::InvalidIfMatch);
        }
        first
            .to_str()
            .ok()
            .and_then(Self::parse)
            .ok_or(ApiError::InvalidIfMatch)
    }
}

/// The `ETag` of a version.
#[must_use]
pub fn etag(version: i64) -> HeaderValue {
    // Digits and quotes are always a valid header value.
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

/// A JSON body answered with the `ETag` of its version.
#[derive(Debug, Clone)]
pub struct Tagged<T>(pub i64, pub T);

impl<T: Serialize> IntoResponse for Tagged<T> {
    fn into_response(self) -> Response {
        let mut r = Json(self.1).into_response();
        r.headers_mut().insert(header::ETAG, etag(self.0));
        r
    }
}

/// Items per page when no `limit` is given.
pub const DEFAULT_LIMIT: u32 = 50;
/// The most items a page holds; a larger `limit` is capped to it.
pub const MAX_LIMIT: u32 = 200;

/// The page a list request asks for.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1 to 200 (default 50; larger values are capped).
    #[param(minimum = 1)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page; absent for the first page.
    #[param(max_length = 512)]
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The limit, capped to 1..=[`MAX_LIMIT`].
    #[must_use]
    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT) as usize
    }

    /// The storage page request, with the cursor decoded.
    ///
    /// # Errors
    ///
    /// 400 `invalid_cursor` for a cursor this API did not make.
    pub fn request<C: DeserializeOwned>(&self) -> Result<PageRequest<C>, ApiError> {
        let after = match &self.cursor {
            None => None,
            Some(c) if c.len() > 512 => return Err(ApiError::InvalidCursor),
            Some(c) => {
                let bytes = URL_SAFE_NO_PAD.decode(c).map_err(|_| ApiError::InvalidCursor)?;
                Some(serde_json::from_slice(&bytes).map_err(|_| ApiError::InvalidCursor)?)
            }
        };
        Ok(PageRequest {
            after,
            limit: self.limit(),
        })
    }

    /// The page of `items`: a `next_cursor` when the page is full.
    pub fn page<T, C: Serialize>(&self, items: Vec<T>, cursor_of: impl Fn(&T) -> C) -> Page<T> {
        let next_cursor = if items.len() >= self.limit() {
            items
                .last()
                .and_then(|last| serde_json::to_vec(&cursor_of(last)).ok())
                .map(|b| URL_SAFE_NO_PAD.encode(b))
        } else {
            None
        };
        Page { items, next_cursor }
    }
}

/// One page of a list, in the list's order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_takes_one_etag() {
        assert_eq!(IfMatch::parse("\"3\""), Some(IfMatch(3)));
        assert_eq!(IfMatch::parse("3"), Some(IfMatch(3)));
        for bad in [
            "",
            "\"\"",
            "*",
            "W/\"3\"",
            "\"-1\"",
            "\"3\", \"4\"",
            "99999999999999999999",
        ] {
            assert_eq!(IfMatch::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let q = PageQuery {
            limit: Some(2),
            cursor: None,
        };
        let page = q.page(vec![1, 2], |n| *n);
        let next = PageQuery {
            limit: Some(2),
            cursor: page.next_cursor,
        };
        assert_eq!(next.request::<i32>().expect("decodes").after, Some(2));
        let bad = PageQuery {
            limit: None,
            cursor: Some("not-a-cursor!".to_owned()),
        };
        assert!(bad.request::<i32>().is_err());
        assert_eq!(q.page(vec![1], |n| *n).next_cursor, None);
        assert_eq!(
            PageQuery {
                limit: Some(10_000),
                cursor: None
            }
            .limit(),
            MAX_LIMIT as usize
        );
        assert_eq!(
            PageQuery {
                limit: Some(0),
                cursor: None
            }
            .limit(),
            1
        );
    }
}

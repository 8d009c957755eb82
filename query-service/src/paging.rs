//! The query string of the read routes, read as Liquid reads it: `limit` as JavaScript's
//! `parseInt` would (`25.7` is 25; `0`, empty or junk is the default; above the maximum is the
//! maximum), `offset` as the `_id` of the last record of the previous page (keyset paging).

use http_edge::envelope::{ApiError, FieldError};
use serde_json::Value;
use uuid::Uuid;

/// Records per page when `limit` is missing or unusable.
pub const DEFAULT_LIMIT: i64 = http_edge::openapi::DEFAULT_PAGE_LIMIT;
/// The most records one page holds.
pub const MAX_LIMIT: i64 = http_edge::openapi::MAX_PAGE_LIMIT;

/// The decoded query string (first value of each key wins).
#[derive(Debug, Default)]
pub struct QueryString(Vec<(String, String)>);

impl QueryString {
    /// Decodes `raw` (the part after `?`); undecodable input is 400 ClientInputError.
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let raw = raw.unwrap_or_default();
        serde_urlencoded::from_str::<Vec<(String, String)>>(raw)
            .map(QueryString)
            .map_err(|_| {
                ApiError::validation(FieldError::query(
                    "",
                    Value::String(raw.to_owned()),
                    "the query string cannot be decoded",
                ))
            })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, value)| value.as_str())
    }
}

/// One page's bounds: at most `limit` records with an `_id` after `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: i64,
    pub after: Option<Uuid>,
}

impl Page {
    /// `limit` and `offset` of the query string. A present, non-empty `offset` that is not an
    /// id is 400 (location `query`); `limit` never fails.
    pub fn from_query(query: &QueryString) -> Result<Self, ApiError> {
        let after = match query.get("offset").map(str::trim) {
            None | Some("") => None,
            Some(offset) => Some(Uuid::parse_str(offset).map_err(|_| {
                ApiError::validation(FieldError::query(
                    "offset",
                    Value::String(offset.to_owned()),
                    "must be the _id of the last record of the previous page",
                ))
            })?),
        };
        Ok(Page {
            limit: limit(query.get("limit")),
            after,
        })
    }
}

/// `limit` as `parseInt` reads it, then defaulted and capped.
pub fn limit(raw: Option<&str>) -> i64 {
    limit_within(raw, DEFAULT_LIMIT, MAX_LIMIT)
}

/// [`limit`] with another default and maximum (history pages are larger).
pub fn limit_within(raw: Option<&str>, default: i64, max: i64) -> i64 {
    let Some(raw) = raw else { return default };
    let raw = raw.trim_start();
    let (negative, rest) = match raw.as_bytes().first() {
        Some(b'-') => (true, &raw[1..]),
        Some(b'+') => (false, &raw[1..]),
        _ => (false, raw),
    };
    let digits: &str = &rest[..rest.bytes().take_while(u8::is_ascii_digit).count()];
    if digits.is_empty() || negative {
        return default;
    }
    // More digits than an i64 holds is certainly above the maximum.
    let value = digits.parse::<i64>().unwrap_or(i64::MAX);
    match value {
        0 => default,
        value => value.min(max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_reads_like_parse_int() {
        assert_eq!(limit(None), DEFAULT_LIMIT);
        assert_eq!(limit(Some("")), DEFAULT_LIMIT);
        assert_eq!(limit(Some("0")), DEFAULT_LIMIT);
        assert_eq!(limit(Some("junk")), DEFAULT_LIMIT);
        assert_eq!(limit(Some("-5")), DEFAULT_LIMIT);
        assert_eq!(limit(Some("25.7")), 25);
        assert_eq!(limit(Some(" 12abc")), 12);
        assert_eq!(limit(Some("1000")), 1000);
        assert_eq!(limit(Some("1001")), MAX_LIMIT);
        assert_eq!(limit(Some("99999999999999999999999")), MAX_LIMIT);
    }

    #[test]
    fn offset_must_be_an_id() {
        let page = |q: &str| Page::from_query(&QueryString::parse(Some(q)).unwrap());
        assert_eq!(page("offset=").unwrap().after, None);
        let id = Uuid::now_v7();
        assert_eq!(page(&format!("offset={id}")).unwrap().after, Some(id));
        assert!(page("offset=nope").is_err());
    }
}

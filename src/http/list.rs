//! List pagination (contract §1): `?limit=` 1–100 (default 20) with `?cursor=` from
//! `nextCursor`, or `?page=` (1-based, for SIR compatibility); both together → 400.
//! Query values are strict, as Stripe's: an empty value, a repeated parameter or an
//! unknown one is a 400 `VALIDATION_ERROR`, never read as absent.
//! Answers `{"data": [...], "hasMore": bool, "nextCursor": "…"|null}`, newest first.

use axum::http::StatusCode;
use axum::response::Response;
use reward_actors::api::common::Id;
use reward_actors::api::common::{PAGE_LIMIT_MAX, PAGE_OFFSET_MAX, Page, PageRequest};
use serde::Serialize;

use reward_actors::api::common::parse_timestamp;

use super::error::{ApiError, ApiResult, FieldError};
use super::json_response;

pub const DEFAULT_LIMIT: usize = 20;

/// The most query parameters a list reads; more is a 400, not a loop.
const QUERY_PARAMS_MAX: usize = 16;

/// The deepest `page`: with the largest `limit` it still starts within `PAGE_OFFSET_MAX`
/// items, so the bound is one number (documented in the OpenAPI document) whatever the limit.
pub const PAGE_MAX: usize = PAGE_OFFSET_MAX / PAGE_LIMIT_MAX + 1;

/// A list's query string: the page, and the route's own filters. Each getter takes the
/// parameter it reads; `finish` refuses what is left, as Stripe refuses unknown parameters.
pub struct ListQuery {
    page: PageRequest,
    params: Vec<(String, String)>,
    errors: Vec<FieldError>,
}

impl ListQuery {
    /// Pages a list that has no filters.
    pub fn from_path(path_and_query: &str) -> ApiResult<PageRequest> {
        ListQuery::parse(path_and_query).finish()
    }

    /// Reads `limit`, `cursor` and `page`; the rest waits for the route's getters.
    pub fn parse(path_and_query: &str) -> ListQuery {
        let mut query = ListQuery::unread(path_and_query);
        let limit = query.limit();
        let cursor = query.parsed("cursor", Id::parse_hex, "is not a cursor this API issued".into());
        let page = query.parsed(
            "page",
            |value| digits(value).filter(|page| (1..=PAGE_MAX).contains(page)),
            format!("must be an integer from 1 to {PAGE_MAX}; use cursor for deeper pages"),
        );
        query.page.limit = limit;
        query.page.after = cursor;
        if cursor.is_some() && page.is_some() {
            query.error("page", "cannot be combined with cursor");
        }
        query.page.skip = page.map_or(0, |page| (page - 1) * query.page.limit);
        debug_assert!(query.page.skip <= PAGE_OFFSET_MAX, "PAGE_MAX keeps every page within PAGE_OFFSET_MAX");
        query
    }

    /// The event feed's query (contract §9): `after` — or `cursor`, the `nextCursor` the
    /// feed answered — as an event sequence (0, the beginning, when absent), and `limit` as
    /// every list reads it. Answers `(after, limit)`.
    pub fn feed(path_and_query: &str) -> ApiResult<(u64, usize)> {
        let mut query = ListQuery::unread(path_and_query);
        let limit = query.limit();
        let after = query.parsed("after", digits::<u64>, "must be an event sequence (an integer)".into());
        let cursor = query.parsed("cursor", digits::<u64>, "must be an event sequence (an integer)".into());
        if after.is_some() && cursor.is_some() {
            query.error("cursor", "cannot be combined with after");
        }
        query.finish()?;
        Ok((after.or(cursor).unwrap_or(0), limit))
    }

    /// The parameters, bounded, none read yet.
    fn unread(path_and_query: &str) -> ListQuery {
        let query = path_and_query.split_once('?').map_or("", |(_, query)| query);
        let mut params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .take(QUERY_PARAMS_MAX + 1)
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        let mut errors = Vec::new();
        if params.len() > QUERY_PARAMS_MAX {
            errors.push(FieldError { field: "query".into(), message: format!("may hold at most {QUERY_PARAMS_MAX} parameters") });
            params.clear();
        }
        ListQuery { page: PageRequest { after: None, skip: 0, limit: DEFAULT_LIMIT }, params, errors }
    }

    /// `limit`: 1 to `PAGE_LIMIT_MAX`, `DEFAULT_LIMIT` when absent.
    fn limit(&mut self) -> usize {
        self.parsed(
            "limit",
            |value| digits(value).filter(|limit| (1..=PAGE_LIMIT_MAX).contains(limit)),
            format!("must be an integer from 1 to {PAGE_LIMIT_MAX}"),
        )
        .unwrap_or(DEFAULT_LIMIT)
    }

    /// Refuses any query parameter: for the routes that read none (their lists are small
    /// and bounded, answered whole).
    pub fn none(path_and_query: &str) -> ApiResult<()> {
        let mut query = ListQuery { page: PageRequest { after: None, skip: 0, limit: DEFAULT_LIMIT }, params: Vec::new(), errors: Vec::new() };
        let text = path_and_query.split_once('?').map_or("", |(_, query)| query);
        for (name, _) in form_urlencoded::parse(text.as_bytes()).take(QUERY_PARAMS_MAX) {
            query.error(&name, "is not a known query parameter");
        }
        query.finish().map(|_| ())
    }

    fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError { field: field.into(), message: message.into() });
    }

    /// Takes a parameter. An empty value (`?to=`) or a repeated parameter is an error, not
    /// absent or the last one: a client that meant something else learns it at once.
    pub fn take(&mut self, name: &str) -> Option<String> {
        let mut values = Vec::new();
        self.params.retain(|(key, text)| {
            if key == name {
                values.push(text.clone());
            }
            key != name
        });
        match values.as_slice() {
            [] => None,
            [value] if value.is_empty() => {
                self.error(name, "must not be empty (leave the parameter out instead)");
                None
            }
            [value] => Some(value.clone()),
            _ => {
                self.error(name, "may be given once");
                None
            }
        }
    }

    /// Takes a parameter and parses it; a value that does not parse is an error `message`.
    pub fn parsed<T>(&mut self, name: &str, parse: impl FnOnce(&str) -> Option<T>, message: String) -> Option<T> {
        let text = self.take(name)?;
        let value = parse(&text);
        if value.is_none() {
            self.error(name, message);
        }
        value
    }

    /// An ISO 8601 timestamp (`from`, `to`).
    pub fn timestamp(&mut self, name: &str) -> Option<u64> {
        self.parsed(name, parse_timestamp, "must be an ISO 8601 timestamp like 2026-11-23T00:00:00.000Z".into())
    }

    /// One of `allowed` (the contract's SCREAMING_SNAKE_CASE values).
    pub fn one_of<T: Copy>(&mut self, name: &str, allowed: &[(&str, T)]) -> Option<T> {
        let names: Vec<&str> = allowed.iter().map(|(text, _)| *text).collect();
        self.parsed(
            name,
            |text| allowed.iter().find(|(candidate, _)| *candidate == text).map(|(_, value)| *value),
            format!("must be one of {}", names.join(", ")),
        )
    }

    /// Ends parsing: unknown parameters and collected errors become one `VALIDATION_ERROR`.
    pub fn finish(mut self) -> ApiResult<PageRequest> {
        for (name, _) in std::mem::take(&mut self.params) {
            self.error(&name, "is not a known query parameter");
        }
        if self.errors.is_empty() { Ok(self.page) } else { Err(ApiError::validation(self.errors)) }
    }
}

/// A query integer: ASCII digits only (`+5`, ` 5` and `5.0` are refused, unlike `str::parse`).
pub fn digits<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A page of a list; `nextCursor`, when not null, is the `cursor` of the next page.
// Its OpenAPI component is named after the item's (`UserList`).
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "{T}List")]
pub(crate) struct ListBody<T: Serialize> {
    data: Vec<T>,
    has_more: bool,
    #[schemars(with = "Option<reward_actors::api::schema::HexId>")]
    next_cursor: Option<String>,
}

pub fn list_response<R, T: Serialize>(page: Page<R>, view: impl Fn(&R) -> T) -> Response {
    let body = ListBody { data: page.items.iter().map(view).collect(), has_more: page.has_more, next_cursor: page.next_cursor.map(Id::to_hex) };
    json_response(StatusCode::OK, &body)
}

/// A whole list in one page (no cursor), written with its keys sorted as it always was
/// (`sorted_json_response`).
pub fn sorted_list_response<T: Serialize>(data: Vec<T>, has_more: bool) -> Response {
    super::sorted_json_response(StatusCode::OK, &ListBody { data, has_more, next_cursor: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_queries_are_bounded() {
        assert_eq!(ListQuery::from_path("/x").expect("valid"), PageRequest { after: None, skip: 0, limit: 20 });
        assert_eq!(ListQuery::from_path("/x?page=3&limit=10").expect("valid"), PageRequest { after: None, skip: 20, limit: 10 });
        let mut query = ListQuery::parse("/x?status=A%20B&from=2026-11-23T00%3A00%3A00.000Z");
        assert_eq!(query.take("status").as_deref(), Some("A B"));
        assert!(query.timestamp("from").is_some());
        assert!(query.finish().is_ok());
        for bad in
            ["/x?unknown=1", "/x?limit=0", "/x?limit=101", "/x?page=0", "/x?cursor=zz", "/x?page=2&cursor=0123456789abcdef01234567", "/x?page=100000"]
                .into_iter()
                .chain(["/x?page=102", "/x?limit=", "/x?cursor=", "/x?page=1&page=1", "/x?limit=10&limit=20", "/x?limit=%2B5"])
        {
            assert!(ListQuery::from_path(bad).is_err(), "{bad}");
        }
        assert_eq!(ListQuery::from_path("/x?page=101&limit=100").expect("the deepest page").skip, PAGE_OFFSET_MAX);
        let mut empty = ListQuery::parse("/x?to=");
        assert_eq!(empty.timestamp("to"), None);
        assert!(empty.finish().is_err(), "an empty value is refused, not read as absent");
        assert!(ListQuery::none("/x").is_ok());
        assert!(ListQuery::none("/x?page=1").is_err());
        assert_eq!(ListQuery::feed("/e").expect("valid"), (0, DEFAULT_LIMIT));
        assert_eq!(ListQuery::feed("/e?after=42&limit=100").expect("valid"), (42, 100));
        assert_eq!(ListQuery::feed("/e?cursor=7").expect("valid"), (7, DEFAULT_LIMIT));
        for bad in ["/e?after=x", "/e?after=+1", "/e?limit=101", "/e?after=1&cursor=2", "/e?page=2", "/e?colour=red", "/e?after="] {
            assert!(ListQuery::feed(bad).is_err(), "{bad}");
        }
    }
}

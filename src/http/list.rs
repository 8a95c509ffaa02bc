//! List pagination (contract §1): `?limit=` 1–100 (default 20) with `?cursor=` from
//! `nextCursor`, or `?page=` (1-based, for SIR compatibility); both together → 400.
//! Answers `{"data": [...], "hasMore": bool, "nextCursor": "…"|null}`, newest first.

use axum::http::StatusCode;
use axum::response::Response;
use reward_actors::ids::Id;
use reward_actors::reads::{PAGE_LIMIT_MAX, PAGE_OFFSET_MAX, Page, PageRequest};
use serde::Serialize;

use super::error::{ApiError, ApiResult, FieldError};
use super::json_response;

pub const DEFAULT_LIMIT: usize = 20;

pub struct ListQuery;

impl ListQuery {
    /// Reads `limit`, `cursor` and `page` from a path with its query; other parameters are
    /// left to the route.
    pub fn from_path(path_and_query: &str) -> ApiResult<PageRequest> {
        let query = path_and_query.split_once('?').map_or("", |(_, query)| query);
        let mut errors = Vec::new();
        let mut limit = DEFAULT_LIMIT;
        let mut cursor = None;
        let mut page = None;
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "limit" => match value.parse::<usize>() {
                    Ok(value) if (1..=PAGE_LIMIT_MAX).contains(&value) => limit = value,
                    _ => errors.push(FieldError { field: "limit".into(), message: format!("must be an integer from 1 to {PAGE_LIMIT_MAX}") }),
                },
                "cursor" => match Id::parse_hex(value) {
                    Some(id) => cursor = Some(id),
                    None => errors.push(FieldError { field: "cursor".into(), message: "is not a cursor this API issued".into() }),
                },
                "page" => match value.parse::<usize>() {
                    Ok(value) if value >= 1 => page = Some(value),
                    _ => errors.push(FieldError { field: "page".into(), message: "must be an integer of at least 1".into() }),
                },
                _ => {}
            }
        }
        if cursor.is_some() && page.is_some() {
            errors.push(FieldError { field: "page".into(), message: "cannot be combined with cursor".into() });
        }
        let skip = page.map_or(0, |page| (page - 1).saturating_mul(limit));
        if skip > PAGE_OFFSET_MAX {
            errors.push(FieldError { field: "page".into(), message: format!("reaches past {PAGE_OFFSET_MAX} items; use cursor for deeper pages") });
        }
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        Ok(PageRequest { after: cursor, skip, limit })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListBody<T: Serialize> {
    data: Vec<T>,
    has_more: bool,
    next_cursor: Option<String>,
}

pub fn list_response<R, T: Serialize>(page: Page<R>, view: impl Fn(&R) -> T) -> Response {
    let body = ListBody { data: page.items.iter().map(view).collect(), has_more: page.has_more, next_cursor: page.next_cursor.map(Id::to_hex) };
    json_response(StatusCode::OK, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_queries_are_bounded() {
        assert_eq!(ListQuery::from_path("/x").expect("valid"), PageRequest { after: None, skip: 0, limit: 20 });
        assert_eq!(ListQuery::from_path("/x?page=3&limit=10").expect("valid"), PageRequest { after: None, skip: 20, limit: 10 });
        for bad in ["/x?limit=0", "/x?limit=101", "/x?page=0", "/x?cursor=zz", "/x?page=2&cursor=0123456789abcdef01234567", "/x?page=100000"] {
            assert!(ListQuery::from_path(bad).is_err(), "{bad}");
        }
    }
}

//! Paging over the store's typed ranges: the one loop every stored list shares (cursor or
//! `?page=`, filters that keep, skip or stop, a bound on what one request examines), and the
//! page types the façades answer with. It reads; what a list means is the caller's
//! (`services::reads`, `webhooks::reads`, `services::pool_requests`).

use crate::domain::ids::Id;
use crate::engine::error::EngineError;
use crate::store::records::{RecordKey, Records, Row, StoredValue};
use crate::store::{ScanOrder, Store};

/// The most items a list answers at once (the contract's `limit` range is 1–100).
pub const PAGE_LIMIT_MAX: usize = 100;
/// How far `?page=` may reach (page × limit). Deeper lists use the cursor, which is O(1).
pub const PAGE_OFFSET_MAX: usize = 10_000;

/// One page of a list: resume after `after` (a cursor), or skip `skip` items (`?page=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub after: Option<Id>,
    pub skip: usize,
    pub limit: usize,
}

/// One page of any list. `C` is what the next page resumes after: a record id for the
/// newest-first lists, an event sequence for the ascending event feed.
#[derive(Debug)]
pub struct Page<T, C = Id> {
    pub items: Vec<T>,
    pub has_more: bool,
    /// The cursor to pass back for the next page, when there is one.
    pub next_cursor: Option<C>,
}

impl<T> Page<T> {
    /// Pages a short list already in memory (newest first), with the same cursor rules.
    pub fn of_all(items: Vec<T>, page: PageRequest, id_of: impl Fn(&T) -> Id) -> Page<T> {
        let start = match page.after {
            Some(after) => items.iter().position(|item| id_of(item) == after).map_or(items.len(), |index| index + 1),
            None => page.skip.min(items.len()),
        };
        let mut rest: Vec<T> = items.into_iter().skip(start).collect();
        let has_more = rest.len() > page.limit;
        rest.truncate(page.limit);
        let next_cursor = if has_more { rest.last().map(&id_of) } else { None };
        Page { items: rest, has_more, next_cursor }
    }
}

/// How many entries one list request may examine. A filtered list that reaches it answers
/// the matches so far with `hasMore` and a cursor to continue from (Stripe's search does
/// the same), so no request scans without bound.
pub const LIST_SCAN_MAX: usize = 20_000;
/// Entries read from the store per scan while filtering.
pub(crate) const SCAN_CHUNK: usize = 256;

/// What a list filter says of one record, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    Skip,
    /// This record and every older one fail (the list is past `from`).
    Stop,
}

/// Reads one listed row: the record it is or names, `None` when that record is gone.
pub(crate) type Resolve<'a, E, T> = dyn Fn(&Row<E>) -> Result<Option<T>, EngineError> + 'a;

/// Where one list page reads: the rows of `records` past `after` (exclusive), in `order`,
/// skipping `skip` matches and keeping at most `limit`.
pub(crate) struct ListScan<'a, E> {
    pub records: &'a Records<E>,
    pub after: Option<RecordKey<E>>,
    pub order: ScanOrder,
    pub skip: usize,
    pub limit: usize,
}

/// One record, `None` when there is none; a failure is logged once with `what`.
pub(crate) fn record<T: StoredValue>(store: &dyn Store, key: &RecordKey<T>, what: &str) -> Result<Option<T>, EngineError> {
    key.get(store).map_err(|error| EngineError::internal(what, error))
}

/// Pages id-keyed `records` newest first, keeping what `filter` keeps; the cursor is an id.
pub(crate) fn page<T: StoredValue>(
    store: &dyn Store,
    records: &Records<T>,
    page: PageRequest,
    id_of: &dyn Fn(&T) -> Id,
    filter: &dyn Fn(&T) -> Verdict,
    what: &str,
) -> Result<Page<T>, EngineError> {
    let resolve = |row: &Row<T>| row.record().map(Some).map_err(|error| EngineError::internal(what, error));
    index_page(store, records, page, &resolve, id_of, filter, what)
}

/// Pages an id-keyed range newest first, resolving each row (an index entry) to the record it
/// names (`None` when that record is gone).
pub(crate) fn index_page<E: StoredValue, T>(
    store: &dyn Store,
    records: &Records<E>,
    page: PageRequest,
    resolve: &Resolve<'_, E, T>,
    id_of: &dyn Fn(&T) -> Id,
    filter: &dyn Fn(&T) -> Verdict,
    what: &str,
) -> Result<Page<T>, EngineError> {
    let after = page.after.map(|id| records.key_of(id));
    let scan = ListScan { records, after, order: ScanOrder::Descending, skip: page.skip, limit: page.limit };
    scan_list(store, scan, resolve, id_of, filter, what)
}

/// The one paging loop every stored list shares: resolves each row to a record and keeps
/// those the filter keeps, until the page is full (then `hasMore` with the last kept
/// record's cursor: one more match was seen, not guessed), the filter stops, the rows run
/// out, or `LIST_SCAN_MAX` rows were examined.
pub(crate) fn scan_list<E: StoredValue, T, C>(
    store: &dyn Store,
    scan: ListScan<'_, E>,
    resolve: &Resolve<'_, E, T>,
    cursor_of: &dyn Fn(&T) -> C,
    filter: &dyn Fn(&T) -> Verdict,
    what: &str,
) -> Result<Page<T, C>, EngineError> {
    let ListScan { records, after, order, skip, limit } = scan;
    let limit = limit.clamp(1, PAGE_LIMIT_MAX);
    let skip = skip.min(PAGE_OFFSET_MAX);
    let mut after = after;
    let mut items = Vec::with_capacity(limit);
    let (mut skipped, mut examined) = (0, 0);
    loop {
        let rows = records.scan_after(store, after.as_ref(), order, SCAN_CHUNK).map_err(|error| EngineError::internal(what, error))?;
        let exhausted = rows.len() < SCAN_CHUNK;
        for row in rows {
            examined += 1;
            let record = resolve(&row)?;
            after = Some(row.key);
            let Some(record) = record else { continue };
            let cursor = cursor_of(&record);
            match filter(&record) {
                Verdict::Stop => return Ok(Page { items, has_more: false, next_cursor: None }),
                Verdict::Skip => {}
                Verdict::Keep if skipped < skip => skipped += 1,
                Verdict::Keep if items.len() == limit => {
                    let next_cursor = items.last().map(cursor_of);
                    return Ok(Page { items, has_more: true, next_cursor });
                }
                Verdict::Keep => items.push(record),
            }
            if examined >= LIST_SCAN_MAX {
                return Ok(Page { items, has_more: true, next_cursor: Some(cursor) });
            }
        }
        if exhausted {
            return Ok(Page { items, has_more: false, next_cursor: None });
        }
    }
}

//! Minimal reads over committed partitions (blocking; `LogStore` runs them on blocking
//! threads). The search issue builds on [`crate::LogStore::with_searchers`].

use std::ops::Bound::{Excluded, Included};
use std::ops::RangeInclusive;

use tantivy::collector::{Count, TopDocs};
use tantivy::query::{AllQuery, RangeQuery, TermQuery};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::{DateTime, DocAddress, Order, Searcher, TantivyDocument};

use crate::day::Day;
use crate::document::{StoredLog, TimeRange};
use crate::error::LogStoreError;
use crate::partition::{PartitionKey, Partitions};

/// Most documents `search_recent` returns.
pub const SEARCH_RECENT_LIMIT_MAX: usize = 10_000;

/// Searchers of the tenant's partitions within `days`, oldest first (partitions that do not
/// exist, or vanish meanwhile, are absent).
pub(crate) fn searchers(
    partitions: &Partitions,
    tenant: &str,
    days: RangeInclusive<Day>,
) -> Result<Vec<(Day, Searcher)>, LogStoreError> {
    let mut searchers = Vec::new();
    for day in partitions.days(tenant)? {
        if !days.contains(&day) {
            continue;
        }
        let key = PartitionKey {
            tenant: tenant.to_string(),
            day,
        };
        if let Some(searcher) = partitions.searcher(&key)? {
            searchers.push((day, searcher));
        }
    }
    Ok(searchers)
}

/// Documents of the tenant with `@timestamp` in `range`.
pub(crate) fn count(
    partitions: &Partitions,
    tenant: &str,
    range: TimeRange,
) -> Result<u64, LogStoreError> {
    let Some(days) = range.days() else {
        return Ok(0);
    };
    let schema = partitions.schema();
    let query = RangeQuery::new(
        Included(schema.timestamp_term(range.from_ms)),
        Excluded(schema.timestamp_term(range.to_ms)),
    );
    let mut total = 0;
    for (day, searcher) in searchers(partitions, tenant, days)? {
        total += if range.covers(day) {
            searcher.num_docs()
        } else {
            let count = searcher
                .search(&query, &Count)
                .map_err(|e| index_error(tenant, day, e))?;
            count as u64
        };
    }
    Ok(total)
}

/// The tenant's document with this `_id`, newest partition first.
pub(crate) fn get(
    partitions: &Partitions,
    tenant: &str,
    id: &str,
) -> Result<Option<StoredLog>, LogStoreError> {
    let schema = partitions.schema();
    let query = TermQuery::new(schema.id_term(id), IndexRecordOption::Basic);
    let all_days = Day::from_days_since_epoch(i32::MIN)..=Day::from_days_since_epoch(i32::MAX);
    for (day, searcher) in searchers(partitions, tenant, all_days)?.into_iter().rev() {
        let hits = searcher
            .search(&query, &TopDocs::with_limit(1).order_by_score())
            .map_err(|e| index_error(tenant, day, e))?;
        if let Some((_, address)) = hits.first() {
            return stored(partitions, &searcher, *address, tenant, day).map(Some);
        }
    }
    Ok(None)
}

/// Whether a committed document of the tenant has this `_id`.
pub(crate) fn committed_id_exists(
    partitions: &Partitions,
    tenant: &str,
    id: &str,
) -> Result<bool, LogStoreError> {
    let query = TermQuery::new(partitions.schema().id_term(id), IndexRecordOption::Basic);
    let all_days = Day::from_days_since_epoch(i32::MIN)..=Day::from_days_since_epoch(i32::MAX);
    for (day, searcher) in searchers(partitions, tenant, all_days)?.into_iter().rev() {
        if searcher
            .search(&query, &Count)
            .map_err(|e| index_error(tenant, day, e))?
            > 0
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The tenant's `limit` most recent documents, newest first.
pub(crate) fn search_recent(
    partitions: &Partitions,
    tenant: &str,
    limit: usize,
) -> Result<Vec<StoredLog>, LogStoreError> {
    let limit = limit.min(SEARCH_RECENT_LIMIT_MAX);
    let mut found = Vec::with_capacity(limit);
    let all_days = Day::from_days_since_epoch(i32::MIN)..=Day::from_days_since_epoch(i32::MAX);
    // Days are disjoint in time: the newest partitions hold the newest documents.
    for (day, searcher) in searchers(partitions, tenant, all_days)?.into_iter().rev() {
        let remaining = limit - found.len();
        if remaining == 0 {
            break;
        }
        let collector = TopDocs::with_limit(remaining)
            .order_by_fast_field::<DateTime>(crate::schema::FIELD_TIMESTAMP, Order::Desc);
        let hits = searcher
            .search(&AllQuery, &collector)
            .map_err(|e| index_error(tenant, day, e))?;
        for (_, address) in hits {
            found.push(stored(partitions, &searcher, address, tenant, day)?);
        }
    }
    Ok(found)
}

pub(crate) fn stored(
    partitions: &Partitions,
    searcher: &Searcher,
    address: DocAddress,
    tenant: &str,
    day: Day,
) -> Result<StoredLog, LogStoreError> {
    let schema = partitions.schema();
    let document: TantivyDocument = searcher
        .doc(address)
        .map_err(|e| index_error(tenant, day, e))?;
    let id = document
        .get_first(schema.id)
        .and_then(|value| value.as_str())
        .unwrap_or_default()
        .to_string();
    let timestamp_ms = document
        .get_first(schema.timestamp)
        .and_then(|value| value.as_datetime())
        .map_or(0, DateTime::into_timestamp_millis);
    let source = document
        .get_first(schema.source)
        .and_then(|value| value.as_bytes())
        .unwrap_or_default()
        .to_vec();
    Ok(StoredLog {
        id,
        timestamp_ms,
        source,
    })
}

fn index_error(tenant: &str, day: Day, error: tantivy::TantivyError) -> LogStoreError {
    LogStoreError::index(format!("{tenant}/{day}"), error)
}

//! Search over a set of tenants' partitions: one filter per tenant (each resolved against its
//! own dictionary), a time range that decides which partitions are opened, hits sorted by
//! `(@timestamp, _tie)` with `search_after`, an exact total, and aggregations (tantivy's,
//! merged across partitions and tenants).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::ops::Bound;

use caravan_query::Filter;
use serde_json::{Value, json};
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::agg_result::AggregationResults;
use tantivy::aggregation::intermediate_agg_result::IntermediateAggregationResults;
use tantivy::aggregation::{
    AggContextParams, AggregationLimitsGuard, DistributedAggregationCollector,
};
use tantivy::collector::Collector;
use tantivy::columnar::Column;
use tantivy::query::{BooleanQuery, EnableScoring, Occur, Query, RangeQuery, Weight};
use tantivy::{DateTime, DocAddress, Searcher, SegmentOrdinal, SegmentReader};

use crate::day::Day;
use crate::document::{StoredLog, TimeRange};
use crate::error::LogStoreError;
use crate::filter::QueryBuilder;
use crate::partition::Partitions;
use crate::read::{searchers, stored};
use crate::schema::{FIELD_KEYS, FIELD_NUMBERS, FIELD_TIEBREAK, FIELD_TIMESTAMP, LogSchema};

/// Most hits one search returns (`from + size`), as Elasticsearch's `max_result_window`.
pub const SEARCH_HITS_MAX: usize = 10_000;

/// Most buckets one search's aggregations return.
pub const AGGREGATION_BUCKETS_MAX: u32 = 10_000;

/// Memory one search's aggregations may use.
pub const AGGREGATION_MEMORY_BYTES_MAX: u64 = 256 << 20;

/// The order of hits: by `@timestamp`, then by `_tie` in the same direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortOrder {
    /// Newest first (the default).
    #[default]
    Descending,
    /// Oldest first.
    Ascending,
}

/// Where a hit sorts: what `search_after` takes to continue after it. Stable across commits
/// and merges, so pages do not shift while ingestion goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SortKey {
    /// `@timestamp`, in epoch milliseconds.
    pub timestamp_ms: i64,
    /// The document's `_tie` (a hash of its `_id`).
    pub tiebreak: u64,
}

/// An aggregation over the matching documents.
#[derive(Clone, Debug, PartialEq)]
pub enum Aggregation {
    /// Documents per `interval_ms` of `@timestamp`; empty buckets between `bounds` (epoch
    /// milliseconds, inclusive start, exclusive end) are included when given.
    DateHistogram {
        /// Bucket width.
        interval_ms: i64,
        /// The range to fill with empty buckets.
        bounds: Option<(i64, i64)>,
    },
    /// The `size` most frequent values of a keyword (or boolean) key.
    Terms {
        /// The dictionary key.
        key: String,
        /// How many values.
        size: u32,
    },
    /// Count, min, max, sum and average of a long, double or date key.
    Stats {
        /// The dictionary key.
        key: String,
    },
}

/// One bucket of a date histogram.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramBucket {
    /// Start of the bucket, epoch milliseconds.
    pub start_ms: i64,
    /// Documents in it.
    pub count: u64,
}

/// One bucket of a terms aggregation.
#[derive(Clone, Debug, PartialEq)]
pub struct TermsBucket {
    /// The value (a keyword; `true`/`false` for booleans).
    pub key: String,
    /// Documents with it.
    pub count: u64,
}

/// The result of an [`Aggregation`].
#[derive(Clone, Debug, PartialEq)]
pub enum AggregationResult {
    /// Buckets in time order.
    DateHistogram {
        /// The bucket width.
        interval_ms: i64,
        /// The buckets.
        buckets: Vec<HistogramBucket>,
    },
    /// Buckets by decreasing count.
    Terms {
        /// The buckets.
        buckets: Vec<TermsBucket>,
        /// Documents with other values.
        other_count: u64,
    },
    /// Statistics of the values (`None` when no document has one).
    Stats {
        /// Values counted.
        count: u64,
        /// Smallest.
        min: Option<f64>,
        /// Largest.
        max: Option<f64>,
        /// Average.
        avg: Option<f64>,
        /// Sum.
        sum: f64,
    },
}

/// What to search.
#[derive(Clone, Debug)]
pub struct SearchRequest {
    /// The tenants, each with its filter (resolved against its dictionary).
    pub tenants: Vec<(String, Filter)>,
    /// Only documents with `@timestamp` in this range; only the partitions of its days open.
    pub range: TimeRange,
    /// Order of the hits.
    pub order: SortOrder,
    /// Hits to skip.
    pub from: usize,
    /// Hits to return (`from + size` at most [`SEARCH_HITS_MAX`]).
    pub size: usize,
    /// Only hits after this key in `order`.
    pub search_after: Option<SortKey>,
    /// Aggregations by name.
    pub aggregations: Vec<(String, Aggregation)>,
}

/// One hit.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    /// Its tenant.
    pub tenant: String,
    /// The document.
    pub log: StoredLog,
    /// Its place in the order.
    pub sort: SortKey,
}

/// What a search found.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchResult {
    /// Matching documents in the range (exact, `search_after` not applied).
    pub total: u64,
    /// The page of hits.
    pub hits: Vec<Hit>,
    /// Aggregation results, in request order.
    pub aggregations: Vec<(String, AggregationResult)>,
}

/// Runs `request` (blocking; the store runs it on a blocking thread).
///
/// Per partition: the count (tantivy's fast path: posting-list lengths when it can), the
/// aggregations when asked (a full pass), and the top hits. Partitions, then segments, are
/// visited in the requested order, and a segment whose time span cannot beat the worst hit
/// kept is skipped: logs arrive roughly in time order, so "the 100 newest" reads the newest
/// segments only, however many days match.
pub(crate) fn search(
    partitions: &Partitions,
    request: &SearchRequest,
) -> Result<SearchResult, LogStoreError> {
    let wanted = request.from.saturating_add(request.size);
    if wanted > SEARCH_HITS_MAX {
        return Err(LogStoreError::InvalidSearch(format!(
            "from + size is {wanted}, more than {SEARCH_HITS_MAX}; page with search_after"
        )));
    }
    let schema = partitions.schema();
    let aggregations = tantivy_aggregations(&request.aggregations)?;
    let mut total = 0u64;
    let mut merged: Option<IntermediateAggregationResults> = None;
    let mut top = TopHits::new(wanted, request.order, request.search_after);
    let mut sources: Vec<(String, Day, Searcher)> = Vec::new();
    let Some(days) = request.range.days() else {
        return empty_result(request, aggregations, merged);
    };
    for (tenant, filter) in &request.tenants {
        let query = QueryBuilder::new(schema).build(filter)?;
        let within_range = with_time_range(schema, query.box_clone(), request.range);
        let mut searchers = searchers(partitions, tenant, days.clone())?;
        if request.order == SortOrder::Descending {
            searchers.reverse();
        }
        for (day, searcher) in searchers {
            let failed = |e| LogStoreError::index(format!("{tenant}/{day}"), e);
            let scoring = EnableScoring::disabled_from_searcher(&searcher);
            let plain = query.weight(scoring).map_err(failed)?;
            let timed = within_range.weight(scoring).map_err(failed)?;
            let segments = segments_in(&searcher, request.range).map_err(failed)?;
            let weight = |segment: &Segment<'_>| -> &dyn Weight {
                if segment.straddles { &*timed } else { &*plain }
            };
            for segment in &segments {
                total += u64::from(weight(segment).count(segment.reader).map_err(failed)?);
            }
            if let Some(aggregations) = &aggregations {
                let collector = DistributedAggregationCollector::from_aggs(
                    aggregations.clone(),
                    aggregation_context(),
                );
                let fruits = segments
                    .iter()
                    .map(|segment| {
                        collector.collect_segment(weight(segment), segment.ordinal, segment.reader)
                    })
                    .collect::<tantivy::Result<Vec<_>>>()
                    .map_err(failed)?;
                let partial = collector.merge_fruits(fruits).map_err(failed)?;
                match &mut merged {
                    Some(merged) => merged.merge_fruits(partial).map_err(failed)?,
                    None => merged = Some(partial),
                }
            }
            if wanted > 0 {
                let source = sources.len();
                top.collect(segments, &*plain, &*timed, source)
                    .map_err(failed)?;
                sources.push((tenant.clone(), day, searcher.clone()));
            }
        }
    }
    let mut hits = Vec::with_capacity(request.size);
    for ranked in top.into_sorted().into_iter().skip(request.from) {
        let (tenant, day, searcher) = &sources[ranked.source];
        let log = stored(partitions, searcher, ranked.address, tenant, *day)?;
        hits.push(Hit {
            tenant: tenant.clone(),
            log,
            sort: ranked.key,
        });
    }
    let mut result = empty_result(request, aggregations, merged)?;
    result.total = total;
    result.hits = hits;
    Ok(result)
}

/// A segment of a partition with matches possible in the range.
struct Segment<'s> {
    ordinal: SegmentOrdinal,
    reader: &'s SegmentReader,
    timestamps: Column<DateTime>,
    min_ms: i64,
    max_ms: i64,
    /// Whether some of its documents fall outside the range (the time clause is needed).
    straddles: bool,
}

/// The segments of `searcher` whose time span meets `range`. Logs arrive roughly in time
/// order, so most segments lie wholly inside or outside a range: those inside are searched
/// without the time clause (counts then use posting-list lengths), those outside not at all.
fn segments_in(searcher: &Searcher, range: TimeRange) -> tantivy::Result<Vec<Segment<'_>>> {
    let mut segments = Vec::new();
    for (ordinal, reader) in searcher.segment_readers().iter().enumerate() {
        if reader.num_docs() == 0 {
            continue;
        }
        let timestamps = reader.fast_fields().date(FIELD_TIMESTAMP)?;
        let min_ms = timestamps.min_value().into_timestamp_millis();
        let max_ms = timestamps.max_value().into_timestamp_millis();
        if max_ms < range.from_ms || min_ms >= range.to_ms {
            continue;
        }
        segments.push(Segment {
            ordinal: ordinal as SegmentOrdinal,
            reader,
            timestamps,
            min_ms,
            max_ms,
            straddles: min_ms < range.from_ms || max_ms >= range.to_ms,
        });
    }
    Ok(segments)
}

/// The best hits so far across partitions: a bounded heap whose top is the worst kept.
struct TopHits {
    limit: usize,
    order: SortOrder,
    after: Option<SortKey>,
    heap: BinaryHeap<Ranked>,
}

impl TopHits {
    fn new(limit: usize, order: SortOrder, after: Option<SortKey>) -> TopHits {
        TopHits {
            limit,
            order,
            after,
            heap: BinaryHeap::with_capacity(limit.min(SEARCH_HITS_MAX) + 1),
        }
    }

    /// Whether a document at `timestamp_ms` (any tie) can no longer enter: the heap is full
    /// and its worst is strictly better.
    fn closed_to(&self, timestamp_ms: i64) -> bool {
        if self.heap.len() < self.limit {
            return false;
        }
        self.heap.peek().is_some_and(|worst| match self.order {
            SortOrder::Descending => timestamp_ms < worst.key.timestamp_ms,
            SortOrder::Ascending => timestamp_ms > worst.key.timestamp_ms,
        })
    }

    /// Offers every match in `segments` (`timed` for those straddling the range, `plain`
    /// for the others), segment by segment in the order's direction, skipping segments whose
    /// time span cannot enter.
    fn collect(
        &mut self,
        mut segments: Vec<Segment<'_>>,
        plain: &dyn Weight,
        timed: &dyn Weight,
        source: usize,
    ) -> tantivy::Result<()> {
        let ascending = self.order == SortOrder::Ascending;
        // Most promising first: newest maximum (descending) or oldest minimum (ascending).
        if ascending {
            segments.sort_by_key(|segment| segment.min_ms);
        } else {
            segments.sort_by_key(|segment| std::cmp::Reverse(segment.max_ms));
        }
        for segment in segments {
            let Segment {
                ordinal,
                reader,
                timestamps,
                min_ms: min,
                max_ms: max,
                straddles,
            } = segment;
            let weight = if straddles { timed } else { plain };
            if self.closed_to(if ascending { min } else { max }) {
                break;
            }
            if let Some(after) = self.after {
                let all_before_cursor = if ascending {
                    max < after.timestamp_ms
                } else {
                    min > after.timestamp_ms
                };
                if all_before_cursor {
                    continue;
                }
            }
            let tiebreaks = reader.fast_fields().u64(FIELD_TIEBREAK)?;
            let alive = reader.alive_bitset();
            weight.for_each_no_score(reader, &mut |docs| {
                for &doc in docs {
                    if alive.is_some_and(|alive| !alive.is_alive(doc)) {
                        continue;
                    }
                    let timestamp_ms = timestamps
                        .first(doc)
                        .map_or(i64::MIN, DateTime::into_timestamp_millis);
                    if self.closed_to(timestamp_ms) {
                        continue;
                    }
                    let key = SortKey {
                        timestamp_ms,
                        tiebreak: tiebreaks.first(doc).unwrap_or_default(),
                    };
                    self.offer(key, source, DocAddress::new(ordinal, doc));
                }
            })?;
        }
        Ok(())
    }

    fn offer(&mut self, key: SortKey, source: usize, address: DocAddress) {
        let ascending = self.order == SortOrder::Ascending;
        if let Some(after) = self.after {
            let beyond = if ascending { key > after } else { key < after };
            if !beyond {
                return;
            }
        }
        if self.limit == 0 {
            return;
        }
        let ranked = Ranked {
            key,
            ascending,
            source,
            address,
        };
        if self.heap.len() < self.limit {
            self.heap.push(ranked);
        } else if let Some(worst) = self.heap.peek()
            && ranked < *worst
        {
            self.heap.pop();
            self.heap.push(ranked);
        }
    }

    /// The kept hits, best first.
    fn into_sorted(self) -> Vec<Ranked> {
        self.heap.into_sorted_vec()
    }
}

fn empty_result(
    request: &SearchRequest,
    aggregations: Option<Aggregations>,
    merged: Option<IntermediateAggregationResults>,
) -> Result<SearchResult, LogStoreError> {
    let finals = match aggregations {
        None => None,
        Some(aggregations) => Some(
            merged
                .unwrap_or_default()
                .into_final_result(aggregations, aggregation_context().limits)
                .map_err(|e| LogStoreError::InvalidSearch(format!("aggregation failed: {e}")))?,
        ),
    };
    Ok(SearchResult {
        total: 0,
        hits: Vec::new(),
        aggregations: convert_results(&request.aggregations, finals)?,
    })
}

fn aggregation_context() -> AggContextParams {
    AggContextParams {
        limits: AggregationLimitsGuard::new(
            Some(AGGREGATION_MEMORY_BYTES_MAX),
            Some(AGGREGATION_BUCKETS_MAX),
        ),
        ..AggContextParams::default()
    }
}

/// `query` restricted to `range` (a no-op clause is skipped for the whole of time).
fn with_time_range(schema: &LogSchema, query: Box<dyn Query>, range: TimeRange) -> Box<dyn Query> {
    if range == TimeRange::ALL {
        return query;
    }
    let time = RangeQuery::new(
        Bound::Included(schema.timestamp_term(range.from_ms)),
        Bound::Excluded(schema.timestamp_term(range.to_ms)),
    );
    Box::new(BooleanQuery::new(vec![
        (Occur::Must, query),
        (Occur::Must, Box::new(time)),
    ]))
}

/// The request's aggregations in tantivy's (Elasticsearch-like) form.
fn tantivy_aggregations(
    aggregations: &[(String, Aggregation)],
) -> Result<Option<Aggregations>, LogStoreError> {
    if aggregations.is_empty() {
        return Ok(None);
    }
    let mut request = serde_json::Map::new();
    for (name, aggregation) in aggregations {
        let spec = match aggregation {
            Aggregation::DateHistogram {
                interval_ms,
                bounds,
            } => {
                if *interval_ms <= 0 {
                    return Err(LogStoreError::InvalidSearch(format!(
                        "aggregation `{name}`: the interval must be positive"
                    )));
                }
                let mut histogram = json!({
                    "field": FIELD_TIMESTAMP,
                    "fixed_interval": format!("{interval_ms}ms"),
                    "min_doc_count": 0,
                });
                if let Some((start, end)) = bounds {
                    histogram["extended_bounds"] = json!({"min": start, "max": end - 1});
                    histogram["hard_bounds"] = json!({"min": start, "max": end - 1});
                }
                json!({ "date_histogram": histogram })
            }
            Aggregation::Terms { key, size } => json!({
                "terms": { "field": format!("{FIELD_KEYS}.{key}"), "size": size }
            }),
            Aggregation::Stats { key } => json!({
                "stats": { "field": format!("{FIELD_NUMBERS}.{key}") }
            }),
        };
        request.insert(name.clone(), spec);
    }
    serde_json::from_value(Value::Object(request))
        .map(Some)
        .map_err(|e| LogStoreError::InvalidSearch(format!("aggregations: {e}")))
}

/// tantivy's results (Elasticsearch-like JSON) as [`AggregationResult`]s.
fn convert_results(
    requested: &[(String, Aggregation)],
    results: Option<AggregationResults>,
) -> Result<Vec<(String, AggregationResult)>, LogStoreError> {
    let Some(results) = results else {
        return Ok(Vec::new());
    };
    let json = serde_json::to_value(&results)
        .map_err(|e| LogStoreError::InvalidSearch(format!("aggregation results: {e}")))?;
    let mut converted = Vec::with_capacity(requested.len());
    for (name, aggregation) in requested {
        let value = &json[name.as_str()];
        let buckets = |value: &Value| value["buckets"].as_array().cloned().unwrap_or_default();
        let result = match aggregation {
            Aggregation::DateHistogram { interval_ms, .. } => AggregationResult::DateHistogram {
                interval_ms: *interval_ms,
                buckets: buckets(value)
                    .iter()
                    .map(|bucket| HistogramBucket {
                        start_ms: bucket["key"].as_f64().unwrap_or_default() as i64,
                        count: bucket["doc_count"].as_u64().unwrap_or_default(),
                    })
                    .collect(),
            },
            Aggregation::Terms { .. } => AggregationResult::Terms {
                buckets: buckets(value)
                    .iter()
                    .map(|bucket| TermsBucket {
                        key: match &bucket["key"] {
                            Value::String(text) => text.clone(),
                            other => other.to_string(),
                        },
                        count: bucket["doc_count"].as_u64().unwrap_or_default(),
                    })
                    .collect(),
                other_count: value["sum_other_doc_count"].as_u64().unwrap_or_default(),
            },
            Aggregation::Stats { .. } => AggregationResult::Stats {
                count: value["count"].as_u64().unwrap_or_default(),
                min: value["min"].as_f64(),
                max: value["max"].as_f64(),
                avg: value["avg"].as_f64(),
                sum: value["sum"].as_f64().unwrap_or_default(),
            },
        };
        converted.push((name.clone(), result));
    }
    Ok(converted)
}

/// An entry of the heap, ordered so that the worst kept hit is on top.
struct Ranked {
    key: SortKey,
    ascending: bool,
    /// Index of the partition in the search's list.
    source: usize,
    address: DocAddress,
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        // Max-heap: the top is the entry to drop first, the one that sorts last.
        let by_key = self.key.cmp(&other.key);
        if self.ascending {
            by_key
        } else {
            by_key.reverse()
        }
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

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
use tantivy::collector::{Collector, Count, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery};
use tantivy::{DateTime, DocAddress, DocId, Score, SegmentOrdinal, SegmentReader};

use crate::day::Day;
use crate::document::{StoredLog, TimeRange};
use crate::error::LogStoreError;
use crate::filter::QueryBuilder;
use crate::partition::{PartitionKey, Partitions};
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
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut merged: Option<IntermediateAggregationResults> = None;
    let Some(days) = request.range.days() else {
        return empty_result(request, aggregations, merged);
    };
    for (tenant, filter) in &request.tenants {
        let query = with_time_range(
            schema,
            QueryBuilder::new(schema).build(filter)?,
            request.range,
        );
        for (day, searcher) in searchers(partitions, tenant, days.clone())? {
            let hits = TopByTime {
                limit: wanted,
                order: request.order,
                after: request.search_after,
            };
            let failed = |e| LogStoreError::index(format!("{tenant}/{day}"), e);
            let (count, top) = match &aggregations {
                Some(aggregations) => {
                    let collector = DistributedAggregationCollector::from_aggs(
                        aggregations.clone(),
                        aggregation_context(),
                    );
                    let (count, top, partial) = searcher
                        .search(&*query, &(Count, hits, collector))
                        .map_err(failed)?;
                    match &mut merged {
                        Some(merged) => merged.merge_fruits(partial).map_err(failed)?,
                        None => merged = Some(partial),
                    }
                    (count, top)
                }
                None => searcher.search(&*query, &(Count, hits)).map_err(failed)?,
            };
            total += count as u64;
            candidates.extend(top.into_iter().map(|(sort, address)| Candidate {
                sort,
                tenant: tenant.clone(),
                day,
                address,
                searcher: searcher.clone(),
            }));
            // Keep the candidates bounded as partitions go by.
            if candidates.len() > 2 * wanted.max(1) {
                sort_candidates(&mut candidates, request.order);
                candidates.truncate(wanted);
            }
        }
    }
    sort_candidates(&mut candidates, request.order);
    let mut hits = Vec::with_capacity(request.size);
    for candidate in candidates.into_iter().skip(request.from).take(request.size) {
        let key = PartitionKey {
            tenant: candidate.tenant.clone(),
            day: candidate.day,
        };
        let log = stored(
            partitions,
            &candidate.searcher,
            candidate.address,
            &key.tenant,
            key.day,
        )?;
        hits.push(Hit {
            tenant: candidate.tenant,
            log,
            sort: candidate.sort,
        });
    }
    let mut result = empty_result(request, aggregations, merged)?;
    result.total = total;
    result.hits = hits;
    Ok(result)
}

struct Candidate {
    sort: SortKey,
    tenant: String,
    day: Day,
    address: DocAddress,
    searcher: tantivy::Searcher,
}

fn sort_candidates(candidates: &mut [Candidate], order: SortOrder) {
    match order {
        SortOrder::Descending => candidates.sort_by_key(|c| std::cmp::Reverse(c.sort)),
        SortOrder::Ascending => candidates.sort_by_key(|c| c.sort),
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

/// The `limit` first documents in `order` after `after`, by `(@timestamp, _tie)` columns.
struct TopByTime {
    limit: usize,
    order: SortOrder,
    after: Option<SortKey>,
}

impl Collector for TopByTime {
    type Fruit = Vec<(SortKey, DocAddress)>;
    type Child = TopByTimeSegment;

    fn for_segment(
        &self,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<TopByTimeSegment> {
        let fast = reader.fast_fields();
        Ok(TopByTimeSegment {
            segment,
            timestamps: fast.date(FIELD_TIMESTAMP)?,
            tiebreaks: fast.u64(FIELD_TIEBREAK)?,
            limit: self.limit,
            order: self.order,
            after: self.after,
            heap: BinaryHeap::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(
        &self,
        fruits: Vec<Vec<(SortKey, DocAddress)>>,
    ) -> tantivy::Result<Vec<(SortKey, DocAddress)>> {
        let mut all: Vec<(SortKey, DocAddress)> = fruits.into_iter().flatten().collect();
        match self.order {
            SortOrder::Descending => all.sort_by_key(|hit| std::cmp::Reverse(hit.0)),
            SortOrder::Ascending => all.sort_by_key(|hit| hit.0),
        }
        all.truncate(self.limit);
        Ok(all)
    }
}

/// An entry of the heap, ordered so that the worst kept hit is on top.
struct Ranked {
    key: SortKey,
    ascending: bool,
    doc: DocId,
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

struct TopByTimeSegment {
    segment: SegmentOrdinal,
    timestamps: Column<DateTime>,
    tiebreaks: Column<u64>,
    limit: usize,
    order: SortOrder,
    after: Option<SortKey>,
    heap: BinaryHeap<Ranked>,
}

impl SegmentCollector for TopByTimeSegment {
    type Fruit = Vec<(SortKey, DocAddress)>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if self.limit == 0 {
            return;
        }
        let key = SortKey {
            timestamp_ms: self
                .timestamps
                .first(doc)
                .map_or(i64::MIN, DateTime::into_timestamp_millis),
            tiebreak: self.tiebreaks.first(doc).unwrap_or_default(),
        };
        let ascending = self.order == SortOrder::Ascending;
        if let Some(after) = self.after {
            let beyond = if ascending { key > after } else { key < after };
            if !beyond {
                return;
            }
        }
        let ranked = Ranked {
            key,
            ascending,
            doc,
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

    fn harvest(self) -> Vec<(SortKey, DocAddress)> {
        let segment = self.segment;
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|ranked| (ranked.key, DocAddress::new(segment, ranked.doc)))
            .collect()
    }
}

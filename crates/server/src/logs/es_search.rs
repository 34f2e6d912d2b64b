//! Elasticsearch's `_search` and `_count`, the subset that Kibana-style clients, Grafana and
//! the official clients use on logs: the query DSL of `caravan-query`, sort on `@timestamp`,
//! `size`/`from`, `search_after`, `_source` filtering, and `date_histogram`, `terms` and
//! metric aggregations. Anything else in a body is a 400 naming it.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use caravan_logstore::{AggregationResult, SEARCH_HITS_MAX, SortKey, SortOrder, TimeRange};
use caravan_query::{Query, TIMESTAMP_KEY};
use caravan_tenancy::Principal;
use serde_json::{Map, Value, json};

use super::search::{self, AggregationPlan, SearchPlan};
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiQuery;

/// Hits Elasticsearch returns when `size` is not given.
const ES_SIZE_DEFAULT: usize = 10;

/// Body keys accepted and ignored: they change nothing for Caravan's answers.
const IGNORED_KEYS: [&str; 9] = [
    "track_total_hits",
    "timeout",
    "track_scores",
    "version",
    "seq_no_primary_term",
    "stored_fields",
    "explain",
    "terminate_after",
    "profile",
];

/// `GET|POST /_search` (every tenant the caller may read) and `/{index}/_search` (index
/// names, comma lists and `*` patterns).
pub(crate) async fn search(
    State(state): State<AppState>,
    Caller(principal): Caller,
    index: Option<Path<String>>,
    ApiQuery(params): ApiQuery<HashMap<String, String>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    search_indices(state, principal, index_or_all(index), params, body).await
}

/// `GET|POST /_count` and `/{index}/_count`.
pub(crate) async fn count(
    State(state): State<AppState>,
    Caller(principal): Caller,
    index: Option<Path<String>>,
    ApiQuery(params): ApiQuery<HashMap<String, String>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    count_indices(state, principal, index_or_all(index), params, body).await
}

/// The index pattern of the path, or every index when the path names none.
fn index_or_all(index: Option<Path<String>>) -> String {
    index.map_or_else(|| "*".to_owned(), |Path(index)| index)
}

async fn count_indices(
    state: AppState,
    principal: Principal,
    index: String,
    params: HashMap<String, String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let mut body = json_body(&body)?;
    let query = take_query(&mut body, &params)?;
    if let Some(key) = body.keys().next() {
        return Err(unsupported(format!("`{key}` is not supported by _count")));
    }
    let tenants = search::select_tenants(&state, &principal, &[index]).await?;
    let plan = SearchPlan {
        tenants,
        query,
        range: TimeRange::ALL,
        order: SortOrder::Descending,
        from: 0,
        size: 0,
        after: None,
        aggregations: Vec::new(),
        now_ms: search::now_ms(),
    };
    let found = search::run(&state, plan).await?;
    Ok(Json(json!({
        "count": found.total,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}
    })))
}

async fn search_indices(
    state: AppState,
    principal: Principal,
    index: String,
    params: HashMap<String, String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let started = std::time::Instant::now();
    let mut body = json_body(&body)?;
    let query = take_query(&mut body, &params)?;
    let size = match body
        .remove("size")
        .or_else(|| params.get("size").map(|s| json!(s)))
    {
        None => ES_SIZE_DEFAULT,
        Some(value) => unsigned(&value, "size")?,
    };
    let from = match body
        .remove("from")
        .or_else(|| params.get("from").map(|s| json!(s)))
    {
        None => 0,
        Some(value) => unsigned(&value, "from")?,
    };
    if from + size > SEARCH_HITS_MAX {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "illegal_argument_exception",
            format!(
                "Result window is too large, from + size must be less than or equal to: \
                 [{SEARCH_HITS_MAX}] but was [{}]; use search_after",
                from + size
            ),
        ));
    }
    let order = match body.remove("sort") {
        Some(sort) => sort_order(&sort)?,
        None => match params.get("sort") {
            Some(sort) => sort_order(&json!(sort))?,
            None => SortOrder::Descending,
        },
    };
    let after = body
        .remove("search_after")
        .map(|value| search_after(&value, order))
        .transpose()?;
    let source = SourceFilter::parse(body.remove("_source"))?;
    let aggregations = match (body.remove("aggs"), body.remove("aggregations")) {
        (Some(aggs), None) | (None, Some(aggs)) => aggregation_plans(&aggs)?,
        (None, None) => Vec::new(),
        (Some(_), Some(_)) => {
            return Err(parsing("give `aggs` or `aggregations`, not both".into()));
        }
    };
    for key in IGNORED_KEYS {
        body.remove(key);
    }
    if let Some(key) = body.keys().next() {
        return Err(unsupported(format!(
            "`{key}` in a search body is not supported; supported: query, size, from, sort \
             (on @timestamp), search_after, _source, aggs"
        )));
    }
    let tenants = search::select_tenants(&state, &principal, &[index]).await?;
    let names: Vec<(String, AggregationPlan)> = aggregations
        .iter()
        .map(|(name, plan, _)| (name.clone(), plan.clone()))
        .collect();
    let plan = SearchPlan {
        tenants,
        query,
        range: TimeRange::ALL,
        order,
        from,
        size,
        after,
        aggregations: names,
        now_ms: search::now_ms(),
    };
    let found = search::run(&state, plan).await?;
    let hits: Vec<Value> = found
        .hits
        .into_iter()
        .map(|hit| {
            let mut document: Value =
                serde_json::from_slice(&hit.log.source).unwrap_or(Value::Null);
            source.apply(&mut document);
            let mut entry = json!({
                "_index": hit.tenant,
                "_id": hit.log.id,
                "_score": Value::Null,
                // The tie-break as a string: above 2^53, JavaScript clients would round it.
                "sort": [hit.sort.timestamp_ms, hit.sort.tiebreak.to_string()],
            });
            if !matches!(source, SourceFilter::None) {
                entry["_source"] = document;
            }
            entry
        })
        .collect();
    let total = if params.get("rest_total_hits_as_int").map(String::as_str) == Some("true") {
        json!(found.total)
    } else {
        json!({"value": found.total, "relation": "eq"})
    };
    let mut answer = json!({
        "took": started.elapsed().as_millis() as u64,
        "timed_out": false,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {"total": total, "max_score": Value::Null, "hits": hits},
    });
    if !aggregations.is_empty() {
        let mut results = Map::new();
        for ((name, result), (_, _, kind)) in found.aggregations.into_iter().zip(&aggregations) {
            results.insert(name, aggregation_json(result, *kind));
        }
        answer["aggregations"] = Value::Object(results);
    }
    Ok(Json(answer))
}

fn json_body(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.trim_ascii().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(parsing("the search body must be a JSON object".into())),
        Err(e) => Err(parsing(format!("the search body is not JSON: {e}"))),
    }
}

/// The body's `query`, or the `q` parameter (Lucene syntax), or every document.
fn take_query(
    body: &mut Map<String, Value>,
    params: &HashMap<String, String>,
) -> Result<Query, ApiError> {
    match (body.remove("query"), params.get("q")) {
        (Some(_), Some(_)) => Err(parsing("give `query` in the body or `q`, not both".into())),
        (Some(query), None) => caravan_query::parse_es_query(&query).map_err(search::query_error),
        (None, Some(q)) => {
            let operator = match params.get("default_operator").map(String::as_str) {
                Some("AND" | "and") => caravan_query::Operator::And,
                _ => caravan_query::Operator::Or,
            };
            caravan_query::parse_query_string_with(q, operator).map_err(search::query_error)
        }
        (None, None) => Ok(Query::MatchAll),
    }
}

fn unsigned(value: &Value, name: &str) -> Result<usize, ApiError> {
    let parsed = match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    };
    parsed.and_then(|n| usize::try_from(n).ok()).ok_or_else(|| {
        parsing(format!(
            "[{name}] must be a non-negative integer, got {value}"
        ))
    })
}

/// The order from a `sort`: only `@timestamp` (any direction) and `_doc`/`_score`, which
/// mean the default order here.
fn sort_order(sort: &Value) -> Result<SortOrder, ApiError> {
    let clauses = match sort {
        Value::Array(clauses) => clauses.clone(),
        other => vec![other.clone()],
    };
    let mut order = SortOrder::Descending;
    for clause in clauses {
        let (field, direction) = match &clause {
            Value::String(text) => match text.split_once(':') {
                Some((field, direction)) => (field.to_owned(), Some(direction.to_owned())),
                None => (text.clone(), None),
            },
            Value::Object(map) if map.len() == 1 => {
                let (field, spec) = map.iter().next().unwrap_or_else(|| unreachable!());
                let direction = match spec {
                    Value::String(direction) => Some(direction.clone()),
                    Value::Object(options) => options
                        .get("order")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    _ => None,
                };
                (field.clone(), direction)
            }
            other => return Err(parsing(format!("malformed sort clause {other}"))),
        };
        match field.as_str() {
            TIMESTAMP_KEY => {
                order = match direction.as_deref() {
                    None | Some("desc") => SortOrder::Descending,
                    Some("asc") => SortOrder::Ascending,
                    Some(other) => {
                        return Err(parsing(format!(
                            "sort order must be asc or desc, got [{other}]"
                        )));
                    }
                };
            }
            "_doc" | "_score" | "_shard_doc" => {}
            other => {
                return Err(unsupported(format!(
                    "sorting on `{other}` is not supported; logs sort on @timestamp"
                )));
            }
        }
    }
    Ok(order)
}

/// `search_after`: `[timestamp, tie]` as returned in hits' `sort`; `[timestamp]` alone
/// continues after every document of that millisecond.
fn search_after(value: &Value, order: SortOrder) -> Result<SortKey, ApiError> {
    let number = |value: &Value| match value {
        Value::Number(number) => number
            .as_i64()
            .or_else(|| number.as_f64().map(|f| f as i64)),
        Value::String(text) => text.parse().ok(),
        _ => None,
    };
    let values = value.as_array().map(Vec::as_slice).unwrap_or_default();
    let timestamp_ms = values.first().and_then(number);
    let tiebreak = match values.get(1) {
        None => Some(None),
        Some(Value::Number(number)) => number.as_u64().map(Some),
        Some(Value::String(text)) => text.parse().ok().map(Some),
        Some(_) => None,
    };
    match (timestamp_ms, tiebreak, values.len()) {
        (Some(timestamp_ms), Some(tiebreak), 1 | 2) => Ok(SortKey {
            timestamp_ms,
            // Alone, a timestamp continues past all of its millisecond.
            tiebreak: tiebreak.unwrap_or(match order {
                SortOrder::Descending => 0,
                SortOrder::Ascending => u64::MAX,
            }),
        }),
        _ => Err(parsing(format!(
            "search_after must be a hit's `sort` values ([timestamp, tie]), got {value}"
        ))),
    }
}

/// How an aggregation's result is shaped in the answer.
#[derive(Clone, Copy, Debug)]
enum ResultShape {
    DateHistogram,
    Terms,
    Stats,
    Metric(&'static str),
}

fn aggregation_plans(
    aggs: &Value,
) -> Result<Vec<(String, AggregationPlan, ResultShape)>, ApiError> {
    let Value::Object(aggs) = aggs else {
        return Err(parsing(
            "aggs must be an object of named aggregations".into(),
        ));
    };
    let mut plans = Vec::with_capacity(aggs.len());
    for (name, spec) in aggs {
        let Some(spec) = spec.as_object() else {
            return Err(parsing(format!("aggregation [{name}] must be an object")));
        };
        if spec.contains_key("aggs") || spec.contains_key("aggregations") {
            return Err(unsupported(format!(
                "aggregation [{name}]: sub-aggregations are not supported"
            )));
        }
        let mut kinds = spec.iter().filter(|(key, _)| *key != "meta");
        let (Some((kind, body)), None) = (kinds.next(), kinds.next()) else {
            return Err(parsing(format!(
                "aggregation [{name}] must have exactly one type"
            )));
        };
        let field = || -> Result<String, ApiError> {
            body.get("field")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| parsing(format!("aggregation [{name}]: `field` is required")))
        };
        let (plan, shape) = match kind.as_str() {
            "date_histogram" => {
                let field = field()?;
                if field != TIMESTAMP_KEY {
                    return Err(unsupported(format!(
                        "aggregation [{name}]: date histograms run on @timestamp, not `{field}`"
                    )));
                }
                let interval = ["fixed_interval", "calendar_interval", "interval"]
                    .iter()
                    .find_map(|key| body.get(*key).and_then(Value::as_str))
                    .ok_or_else(|| parsing(format!("aggregation [{name}]: give fixed_interval")))?;
                let interval_ms = interval_ms(interval)
                    .map_err(|reason| parsing(format!("aggregation [{name}]: {reason}")))?;
                (
                    AggregationPlan::DateHistogram {
                        interval_ms: Some(interval_ms),
                        buckets: search::HISTOGRAM_BUCKETS_DEFAULT,
                        fill_range: false,
                    },
                    ResultShape::DateHistogram,
                )
            }
            "terms" => {
                let size = match body.get("size") {
                    None => 10,
                    Some(value) => unsigned(value, "size")? as u32,
                };
                (
                    AggregationPlan::Terms {
                        field: field()?,
                        size,
                    },
                    ResultShape::Terms,
                )
            }
            "stats" => (
                AggregationPlan::Stats { field: field()? },
                ResultShape::Stats,
            ),
            metric @ ("min" | "max" | "avg" | "sum" | "value_count") => {
                let metric: &'static str = match metric {
                    "min" => "min",
                    "max" => "max",
                    "avg" => "avg",
                    "sum" => "sum",
                    _ => "count",
                };
                (
                    AggregationPlan::Stats { field: field()? },
                    ResultShape::Metric(metric),
                )
            }
            other => {
                return Err(unsupported(format!(
                    "aggregation [{name}]: `{other}` is not supported; supported: \
                     date_histogram, terms, stats, min, max, avg, sum, value_count"
                )));
            }
        };
        plans.push((name.clone(), plan, shape));
    }
    Ok(plans)
}

/// `30s`, `5m`, `1h`, `1d`, and the calendar names (`minute`, `hour`, `day`, `week`).
fn interval_ms(interval: &str) -> Result<i64, String> {
    let named = match interval {
        "second" | "1s" => Some(1_000),
        "minute" | "1m" => Some(60_000),
        "hour" | "1h" => Some(3_600_000),
        "day" | "1d" => Some(86_400_000),
        "week" | "1w" => Some(7 * 86_400_000),
        _ => None,
    };
    match named {
        Some(ms) => Ok(ms),
        None => caravan_query::parse_duration(interval),
    }
}

fn aggregation_json(result: AggregationResult, shape: ResultShape) -> Value {
    match (result, shape) {
        (AggregationResult::DateHistogram { buckets, .. }, _) => json!({
            "buckets": buckets.into_iter().map(|bucket| json!({
                "key_as_string": search::rfc3339_ms(bucket.start_ms),
                "key": bucket.start_ms,
                "doc_count": bucket.count,
            })).collect::<Vec<_>>()
        }),
        (
            AggregationResult::Terms {
                buckets,
                other_count,
            },
            _,
        ) => json!({
            "doc_count_error_upper_bound": 0,
            "sum_other_doc_count": other_count,
            "buckets": buckets.into_iter().map(|bucket| json!({
                "key": bucket.key,
                "doc_count": bucket.count,
            })).collect::<Vec<_>>()
        }),
        (
            AggregationResult::Stats {
                count,
                min,
                max,
                avg,
                sum,
            },
            ResultShape::Metric(metric),
        ) => json!({
            "value": match metric {
                "min" => json!(min),
                "max" => json!(max),
                "avg" => json!(avg),
                "sum" => json!(sum),
                _ => json!(count),
            }
        }),
        (
            AggregationResult::Stats {
                count,
                min,
                max,
                avg,
                sum,
            },
            _,
        ) => json!({"count": count, "min": min, "max": max, "avg": avg, "sum": sum}),
    }
}

/// `_source` filtering: all (default), none (`false`), or includes and excludes with `*`.
#[derive(Debug)]
enum SourceFilter {
    All,
    None,
    Paths {
        includes: Vec<String>,
        excludes: Vec<String>,
    },
}

impl SourceFilter {
    fn parse(value: Option<Value>) -> Result<SourceFilter, ApiError> {
        let strings = |value: &Value| -> Result<Vec<String>, ApiError> {
            match value {
                Value::String(one) => Ok(vec![one.clone()]),
                Value::Array(many) => many
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| parsing("_source patterns must be strings".into()))
                    })
                    .collect(),
                _ => Err(parsing("_source patterns must be strings".into())),
            }
        };
        Ok(match value {
            None | Some(Value::Bool(true)) => SourceFilter::All,
            Some(Value::Bool(false)) => SourceFilter::None,
            Some(Value::Object(map)) => {
                let get = |key: &str| {
                    map.get(key)
                        .map(&strings)
                        .transpose()
                        .map(Option::unwrap_or_default)
                };
                SourceFilter::Paths {
                    includes: get("includes")?,
                    excludes: get("excludes")?,
                }
            }
            Some(other) => SourceFilter::Paths {
                includes: strings(&other)?,
                excludes: Vec::new(),
            },
        })
    }

    fn apply(&self, document: &mut Value) {
        let SourceFilter::Paths { includes, excludes } = self else {
            return;
        };
        if let Value::Object(map) = document {
            filter_object(map, "", includes, excludes);
        }
    }
}

/// Keeps the members whose dotted path an include names (or lies under), minus excludes.
fn filter_object(
    map: &mut Map<String, Value>,
    prefix: &str,
    includes: &[String],
    excludes: &[String],
) {
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if excludes.iter().any(|pattern| path_matches(pattern, &path)) {
            map.remove(&key);
            continue;
        }
        let included =
            includes.is_empty() || includes.iter().any(|pattern| path_matches(pattern, &path));
        if included {
            if !excludes.is_empty()
                && let Some(Value::Object(child)) = map.get_mut(&key)
            {
                filter_object(child, &path, &[], excludes);
            }
            continue;
        }
        let leads_somewhere = includes
            .iter()
            .any(|pattern| pattern.starts_with(&format!("{path}.")) || pattern.starts_with('*'));
        match map.get_mut(&key) {
            Some(Value::Object(child)) if leads_somewhere => {
                filter_object(child, &path, includes, excludes);
                if child.is_empty() {
                    map.remove(&key);
                }
            }
            _ => {
                map.remove(&key);
            }
        }
    }
}

/// `pattern` (with `*`) names `path` or one of its parents (`http` and `http.*` name
/// `http.status`).
fn path_matches(pattern: &str, path: &str) -> bool {
    let regex = format!("^{}(\\..*)?$", regex::escape(pattern).replace("\\*", ".*"));
    regex::Regex::new(&regex).is_ok_and(|re| re.is_match(path))
}

fn parsing(reason: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "parsing_exception", reason)
}

fn unsupported(reason: String) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "illegal_argument_exception",
        reason,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_filtering_keeps_named_paths() {
        let mut document = json!({"a": 1, "http": {"status": 200, "method": "GET"}, "b": {"c": 1}});
        let filter = SourceFilter::Paths {
            includes: vec!["http.status".into(), "a".into()],
            excludes: vec![],
        };
        filter.apply(&mut document);
        assert_eq!(document, json!({"a": 1, "http": {"status": 200}}));
        let mut document = json!({"a": 1, "http": {"status": 200, "method": "GET"}});
        let filter = SourceFilter::Paths {
            includes: vec!["http*".into()],
            excludes: vec!["http.method".into()],
        };
        filter.apply(&mut document);
        assert_eq!(document, json!({"http": {"status": 200}}));
    }

    #[test]
    fn sorts_on_timestamp_only() {
        assert_eq!(
            sort_order(&json!([{"@timestamp": {"order": "asc"}}])).ok(),
            Some(SortOrder::Ascending)
        );
        assert_eq!(
            sort_order(&json!("@timestamp:asc")).ok(),
            Some(SortOrder::Ascending)
        );
        assert_eq!(
            sort_order(&json!(["_doc"])).ok(),
            Some(SortOrder::Descending)
        );
        assert!(sort_order(&json!([{"level": "asc"}])).is_err());
    }
}

//! Search over real partitions: every filter kind, time ranges across days, order and
//! `search_after`, aggregations, several tenants; and a property test of term queries
//! against a brute-force scan of the same documents.

mod common;

use std::ops::Bound;

use caravan_logstore::{
    Aggregation, AggregationResult, Day, FieldValue, LogDocument, LogStore, SearchRequest,
    SearchResult, SortKey, SortOrder, TimeRange, WriteMode,
};
use caravan_query::{Filter, Operator};
use caravan_schema::FieldType;
use proptest::prelude::*;
use tempfile::TempDir;

const SERVICES: [&str; 3] = ["api", "web", "worker"];
const LEVELS: [&str; 3] = ["INFO", "WARN", "ERROR"];

fn log(tenant: &str, n: usize, day: Day) -> LogDocument {
    let service = SERVICES[n % 3];
    let level = LEVELS[n % 3 / 2 + n.is_multiple_of(5) as usize];
    let status = 200 + (n % 4) as i64 * 100;
    let message = format!("request {n} to {service} took {} ms", n % 7);
    let timestamp_ms = day.start_ms() + (n as i64) * 60_000;
    LogDocument {
        tenant: tenant.to_owned(),
        id: format!("{tenant}-{n}"),
        timestamp_ms,
        source: format!(r#"{{"n":{n},"service":"{service}"}}"#).into_bytes(),
        fields: vec![
            ("service".into(), FieldValue::Keyword(service.into())),
            ("level".into(), FieldValue::Keyword(level.into())),
            ("http.status".into(), FieldValue::Long(status)),
            ("duration_ms".into(), FieldValue::Double(n as f64 / 2.0)),
            ("message".into(), FieldValue::Text(message)),
            ("sampled".into(), FieldValue::Boolean(n.is_multiple_of(2))),
        ],
        mode: WriteMode::Create,
    }
}

fn day(n: i32) -> Day {
    Day::from_days_since_epoch(common::today().days_since_epoch() - n)
}

async fn store_with(tenants: &[&str], per_day: usize, days: i32) -> (TempDir, LogStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = common::open(common::config(dir.path())).await;
    for tenant in tenants {
        for d in 0..days {
            let docs = (0..per_day).map(|n| log(tenant, n, day(d))).collect();
            store.append(docs).await.expect("append");
        }
    }
    store.refresh().await.expect("refresh");
    (dir, store)
}

fn request(tenant: &str, filter: Filter) -> SearchRequest {
    SearchRequest {
        tenants: vec![(tenant.to_owned(), filter)],
        range: TimeRange::ALL,
        order: SortOrder::Descending,
        from: 0,
        size: 1_000,
        search_after: None,
        aggregations: Vec::new(),
    }
}

async fn ids(store: &LogStore, request: SearchRequest) -> Vec<String> {
    let result = store.search(request).await.expect("search");
    result.hits.into_iter().map(|hit| hit.log.id).collect()
}

fn keyword(key: &str, value: &str) -> Filter {
    Filter::Exact {
        key: key.into(),
        value: FieldValue::Keyword(value.into()),
    }
}

fn numbers(ids: &[String]) -> Vec<usize> {
    let mut numbers: Vec<usize> = ids
        .iter()
        .map(|id| {
            id.rsplit('-')
                .next()
                .and_then(|n| n.parse().ok())
                .expect("n")
        })
        .collect();
    numbers.sort();
    numbers
}

#[tokio::test]
async fn every_filter_kind_finds_what_it_should() {
    let (_dir, store) = store_with(&["alpha"], 30, 1).await;
    let count = |filter: Filter| {
        let store = store.clone();
        async move {
            store
                .search(request("alpha", filter))
                .await
                .expect("search")
                .total
        }
    };
    assert_eq!(count(Filter::All).await, 30);
    assert_eq!(count(Filter::None).await, 0);
    assert_eq!(count(keyword("service", "api")).await, 10);
    assert_eq!(
        count(keyword("service", "API")).await,
        0,
        "keywords are exact"
    );
    assert_eq!(
        count(Filter::Id(vec!["alpha-3".into(), "alpha-4".into()])).await,
        2
    );
    let long = |value| Filter::Exact {
        key: "http.status".into(),
        value: FieldValue::Long(value),
    };
    assert_eq!(count(long(500)).await, 7);
    let sampled = Filter::Exact {
        key: "sampled".into(),
        value: FieldValue::Boolean(true),
    };
    let mut sampled_request = request("alpha", sampled);
    sampled_request.order = SortOrder::Ascending;
    assert_eq!(
        numbers(&ids(&store, sampled_request).await),
        (0..30).step_by(2).collect::<Vec<_>>()
    );
    let matching = |text: &str, operator| Filter::Match {
        key: "message".into(),
        text: text.into(),
        operator,
    };
    assert_eq!(
        count(matching("WORKER", Operator::Or)).await,
        10,
        "text is analysed"
    );
    assert_eq!(count(matching("worker took", Operator::And)).await, 10);
    assert_eq!(count(matching("worker api", Operator::And)).await, 0);
    assert_eq!(count(matching("worker api", Operator::Or)).await, 20);
    let phrase = |text: &str| Filter::Phrase {
        key: "message".into(),
        text: text.into(),
    };
    assert_eq!(count(phrase("to api took")).await, 10);
    assert_eq!(count(phrase("took to api")).await, 0, "word order matters");
    let wildcard = |key: &str, field_type, pattern: &str| Filter::Wildcard {
        key: key.into(),
        field_type,
        pattern: pattern.into(),
    };
    assert_eq!(
        count(wildcard("service", FieldType::Keyword, "w*")).await,
        20
    );
    assert_eq!(
        count(wildcard("service", FieldType::Keyword, "?pi")).await,
        10
    );
    assert_eq!(count(wildcard("service", FieldType::Keyword, "w")).await, 0);
    assert_eq!(
        count(wildcard("message", FieldType::Text, "wor*")).await,
        10
    );
    let range = |lower, upper| Filter::Range {
        key: "http.status".into(),
        lower,
        upper,
    };
    assert_eq!(
        count(range(
            Bound::Included(FieldValue::Long(400)),
            Bound::Unbounded
        ))
        .await,
        14
    );
    assert_eq!(
        count(range(
            Bound::Excluded(FieldValue::Long(200)),
            Bound::Excluded(FieldValue::Long(500))
        ))
        .await,
        15
    );
    assert_eq!(
        count(Filter::Range {
            key: "duration_ms".into(),
            lower: Bound::Included(FieldValue::Double(10.0)),
            upper: Bound::Included(FieldValue::Double(12.0)),
        })
        .await,
        5
    );
    assert_eq!(
        count(Filter::Range {
            key: "service".into(),
            lower: Bound::Included(FieldValue::Keyword("b".into())),
            upper: Bound::Unbounded,
        })
        .await,
        20,
        "keyword ranges compare strings"
    );
    let start = day(0).start_ms();
    assert_eq!(
        count(Filter::Range {
            key: "@timestamp".into(),
            lower: Bound::Included(FieldValue::Date(start + 60_000)),
            upper: Bound::Excluded(FieldValue::Date(start + 5 * 60_000)),
        })
        .await,
        4
    );
    for (key, field_type) in [
        ("service", FieldType::Keyword),
        ("http.status", FieldType::Long),
        ("message", FieldType::Text),
        ("sampled", FieldType::Boolean),
    ] {
        let exists = Filter::Exists {
            key: key.into(),
            field_type,
        };
        assert_eq!(count(exists).await, 30, "exists {key}");
    }
    let missing = Filter::Exists {
        key: "nope".into(),
        field_type: FieldType::Keyword,
    };
    assert_eq!(count(missing).await, 0);
    let not_api = Filter::Bool {
        must: Vec::new(),
        should: Vec::new(),
        must_not: vec![keyword("service", "api")],
        minimum_should_match: 0,
    };
    assert_eq!(count(not_api).await, 20);
    let two_of_three = Filter::Bool {
        must: Vec::new(),
        should: vec![
            keyword("service", "api"),
            long(200),
            Filter::Exact {
                key: "sampled".into(),
                value: FieldValue::Boolean(true),
            },
        ],
        must_not: Vec::new(),
        minimum_should_match: 2,
    };
    let expected = (0..30)
        .filter(|n| {
            let hits = [n % 3 == 0, n % 4 == 0, n % 2 == 0];
            hits.iter().filter(|hit| **hit).count() >= 2
        })
        .count() as u64;
    assert_eq!(count(two_of_three).await, expected);
    store.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn time_ranges_order_and_search_after_page_stably() {
    let (_dir, store) = store_with(&["alpha"], 20, 3).await;
    // Only yesterday: 20 documents.
    let mut only_yesterday = request("alpha", Filter::All);
    only_yesterday.range = TimeRange {
        from_ms: day(1).start_ms(),
        to_ms: day(0).start_ms(),
    };
    assert_eq!(
        store.search(only_yesterday).await.expect("search").total,
        20
    );
    // A range cutting through two days' segments: 10 minutes of yesterday, 5 of today.
    let mut straddling = request("alpha", keyword("service", "api"));
    straddling.range = TimeRange {
        from_ms: day(1).start_ms() + 10 * 60_000,
        to_ms: day(0).start_ms() + 5 * 60_000,
    };
    straddling.aggregations = vec![(
        "services".into(),
        Aggregation::Terms {
            key: "service".into(),
            size: 3,
        },
    )];
    let found = store.search(straddling).await.expect("search");
    // `api` is every third document (n % 3 == 0): n in 10..20 gives 12, 15, 18; n in 0..5
    // gives 0 and 3.
    assert_eq!(found.total, 5);
    let found_ids: Vec<String> = found.hits.iter().map(|hit| hit.log.id.clone()).collect();
    assert_eq!(numbers(&found_ids), [0, 3, 12, 15, 18]);
    let AggregationResult::Terms { buckets, .. } = &found.aggregations[0].1 else {
        panic!("terms: {:?}", found.aggregations)
    };
    assert_eq!(buckets[0].count, 5);

    // Newest first by default, oldest first on request.
    let all = store
        .search(request("alpha", Filter::All))
        .await
        .expect("search");
    assert_eq!(all.total, 60);
    let keys: Vec<SortKey> = all.hits.iter().map(|hit| hit.sort).collect();
    assert!(keys.windows(2).all(|pair| pair[0] > pair[1]), "descending");
    let mut ascending = request("alpha", Filter::All);
    ascending.order = SortOrder::Ascending;
    let ascending = store.search(ascending).await.expect("search");
    let reversed: Vec<SortKey> = ascending.hits.iter().rev().map(|hit| hit.sort).collect();
    assert_eq!(reversed, keys);

    // Pages of 7 with search_after, while documents with the same timestamps keep arriving:
    // the pages are the first listing, in order, without gaps or repeats.
    let mut after = None;
    let mut paged = Vec::new();
    for round in 0..20 {
        let mut page = request("alpha", Filter::All);
        page.size = 7;
        page.search_after = after;
        // Newer documents arrive between pages (they sort before the cursor: not seen).
        let late: Vec<LogDocument> = (0..3)
            .map(|n| {
                let mut doc = log("alpha", 1_000 + round * 3 + n, day(0));
                doc.timestamp_ms = day(0).start_ms() + 86_000_000;
                doc
            })
            .collect();
        let result = store.search(page).await.expect("search");
        if result.hits.is_empty() {
            break;
        }
        store.append(late).await.expect("append");
        store.refresh().await.expect("refresh");
        after = result.hits.last().map(|hit| hit.sort);
        paged.extend(result.hits.into_iter().map(|hit| hit.sort));
    }
    assert_eq!(paged, keys);
    store.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn from_and_size_are_bounded() {
    let (_dir, store) = store_with(&["alpha"], 5, 1).await;
    let mut too_far = request("alpha", Filter::All);
    too_far.from = 9_999;
    too_far.size = 2;
    let error = store.search(too_far).await.expect_err("beyond the window");
    assert!(error.to_string().contains("search_after"), "{error}");
    let mut page = request("alpha", Filter::All);
    page.from = 3;
    page.size = 10;
    assert_eq!(store.search(page).await.expect("search").hits.len(), 2);
    store.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn aggregations_count_across_partitions_and_tenants() {
    let (_dir, store) = store_with(&["alpha", "beta"], 30, 2).await;
    let mut request = SearchRequest {
        tenants: vec![
            ("alpha".into(), Filter::All),
            ("beta".into(), keyword("service", "api")),
        ],
        ..request("alpha", Filter::All)
    };
    request.size = 0;
    request.aggregations = vec![
        (
            "per_hour".into(),
            Aggregation::DateHistogram {
                interval_ms: 3_600_000,
                bounds: Some((day(1).start_ms(), day(0).start_ms() + 86_400_000)),
            },
        ),
        (
            "services".into(),
            Aggregation::Terms {
                key: "service".into(),
                size: 2,
            },
        ),
        (
            "durations".into(),
            Aggregation::Stats {
                key: "duration_ms".into(),
            },
        ),
    ];
    let SearchResult {
        total,
        hits,
        aggregations,
    } = store.search(request).await.expect("search");
    assert_eq!(total, 60 + 20);
    assert!(hits.is_empty());
    let AggregationResult::DateHistogram { buckets, .. } = &aggregations[0].1 else {
        panic!("histogram: {aggregations:?}")
    };
    assert_eq!(buckets.len(), 48, "two days of hours, empty ones included");
    assert_eq!(buckets.iter().map(|b| b.count).sum::<u64>(), 80);
    assert_eq!(buckets[0].start_ms, day(1).start_ms());
    // 30 documents a minute apart: 30 in the first hour of each day.
    assert_eq!(buckets[0].count, 40);
    let AggregationResult::Terms {
        buckets,
        other_count,
    } = &aggregations[1].1
    else {
        panic!("terms: {aggregations:?}")
    };
    assert_eq!(buckets[0].key, "api");
    assert_eq!(buckets[0].count, 40);
    assert_eq!(buckets.len(), 2);
    assert_eq!(*other_count, 80 - 40 - buckets[1].count);
    let AggregationResult::Stats {
        count, min, max, ..
    } = &aggregations[2].1
    else {
        panic!("stats: {aggregations:?}")
    };
    assert_eq!(*count, 80);
    assert_eq!(*min, Some(0.0));
    assert_eq!(*max, Some(14.5));
    store.shutdown().await.expect("shutdown");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Every hit of a term query holds the term and every miss does not, against a scan.
    #[test]
    fn term_queries_agree_with_a_scan(
        values in proptest::collection::vec((0usize..6, 0i64..5, any::<bool>()), 1..120),
        wanted in (0usize..6, 0i64..5),
        across_days in any::<bool>(),
    ) {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = common::open(common::config(dir.path())).await;
            let docs: Vec<LogDocument> = values
                .iter()
                .enumerate()
                .map(|(n, (service, status, flag))| {
                    let when = if across_days && n % 2 == 1 { day(1) } else { day(0) };
                    LogDocument {
                        tenant: "alpha".into(),
                        id: format!("alpha-{n}"),
                        timestamp_ms: when.start_ms() + n as i64,
                        source: b"{}".to_vec(),
                        fields: vec![
                            ("service".into(), FieldValue::Keyword(format!("svc{service}"))),
                            ("http.status".into(), FieldValue::Long(*status)),
                            ("sampled".into(), FieldValue::Boolean(*flag)),
                        ],
                        mode: WriteMode::Create,
                    }
                })
                .collect();
            store.append(docs).await.expect("append");
            store.refresh().await.expect("refresh");
            let by_service = keyword("service", &format!("svc{}", wanted.0));
            let expected: Vec<usize> = values
                .iter()
                .enumerate()
                .filter(|(_, (service, _, _))| *service == wanted.0)
                .map(|(n, _)| n)
                .collect();
            assert_eq!(numbers(&ids(&store, request("alpha", by_service)).await), expected);
            let by_status = Filter::Exact {
                key: "http.status".into(),
                value: FieldValue::Long(wanted.1),
            };
            let expected: Vec<usize> = values
                .iter()
                .enumerate()
                .filter(|(_, (_, status, _))| *status == wanted.1)
                .map(|(n, _)| n)
                .collect();
            assert_eq!(numbers(&ids(&store, request("alpha", by_status)).await), expected);
            let by_flag = Filter::Exact {
                key: "sampled".into(),
                value: FieldValue::Boolean(true),
            };
            let expected: Vec<usize> = values
                .iter()
                .enumerate()
                .filter(|(_, (_, _, flag))| *flag)
                .map(|(n, _)| n)
                .collect();
            assert_eq!(numbers(&ids(&store, request("alpha", by_flag)).await), expected);
            store.shutdown().await.expect("shutdown");
        });
    }
}

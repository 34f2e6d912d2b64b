//! The documents both benchmarks use: ~420-byte JSON logs like the ingest issue describes
//! (`@timestamp`, level, a message sentence, service, `kubernetes.*`, userId, `http.*`,
//! `duration_ms`, bytes, `trace_id`), already split into dictionary fields, deterministic.

#![allow(dead_code)]

use caravan_logstore::{FieldValue, LogDocument, WriteMode};

pub const TENANTS: [&str; 4] = ["checkout", "search", "payments", "identity"];
pub const SERVICES: [&str; 8] = [
    "api-gateway",
    "cart",
    "orders",
    "catalog",
    "auth",
    "billing",
    "ledger",
    "profile",
];
pub const LEVELS: [&str; 5] = ["info", "info", "info", "warn", "error"];
pub const METHODS: [&str; 4] = ["GET", "GET", "POST", "PUT"];
pub const PATHS: [&str; 8] = [
    "/api/v1/users",
    "/api/v1/orders",
    "/api/v1/cart/items",
    "/api/v2/search",
    "/api/v1/payments",
    "/healthz",
    "/api/v1/sessions",
    "/api/v1/catalog/products",
];
pub const WORDS: [&str; 40] = [
    "request",
    "completed",
    "failed",
    "user",
    "order",
    "payment",
    "timeout",
    "connection",
    "refused",
    "retrying",
    "cache",
    "miss",
    "hit",
    "database",
    "query",
    "slow",
    "upstream",
    "returned",
    "invalid",
    "token",
    "session",
    "expired",
    "created",
    "updated",
    "deleted",
    "item",
    "cart",
    "checkout",
    "inventory",
    "reserved",
    "released",
    "queue",
    "message",
    "published",
    "consumed",
    "lock",
    "acquired",
    "released",
    "shard",
    "rebalanced",
];

pub fn document(
    random: &mut Random,
    tenant: &str,
    sequence: usize,
    timestamp_ms: i64,
) -> LogDocument {
    let service = SERVICES[random.below(SERVICES.len())];
    let level = LEVELS[random.below(LEVELS.len())];
    let words = 6 + random.below(7);
    let message: Vec<&str> = (0..words)
        .map(|_| WORDS[random.below(WORDS.len())])
        .collect();
    let message = message.join(" ");
    // A deployment's pods share its replica-set hash; eight replicas per service.
    let pod = format!(
        "{service}-7c9d{:x}f5b8-{:05x}",
        service.len(),
        0x1a2b3 + random.below(8)
    );
    let node = format!("node-{}", 1 + random.below(70));
    let user_id = format!("u{}", random.below(50_000));
    let method = METHODS[random.below(METHODS.len())];
    let path = PATHS[random.below(PATHS.len())];
    let status = [200, 200, 200, 201, 204, 400, 404, 500, 503][random.below(9)];
    let duration_ms = random.below(200_000) as f64 / 100.0;
    let bytes = random.below(100_000) as i64;
    let trace_id = format!("{:016x}{:016x}", random.next(), random.next());
    let timestamp =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(timestamp_ms) * 1_000_000)
            .expect("timestamp")
            .format(&time::format_description::well_known::Rfc3339)
            .expect("format");
    let source = serde_json::json!({
        "@timestamp": timestamp,
        "level": level,
        "message": message,
        "service": service,
        "kubernetes": {"namespace": tenant, "pod": pod, "container": service, "node": node},
        "userId": user_id,
        "http": {"method": method, "path": path, "status": status},
        "duration_ms": duration_ms,
        "bytes": bytes,
        "trace_id": trace_id,
    });
    let keyword = |value: &str| FieldValue::Keyword(value.to_string());
    LogDocument {
        tenant: tenant.to_string(),
        id: format!("{tenant}-{sequence:012}"),
        timestamp_ms,
        source: serde_json::to_vec(&source).expect("json"),
        fields: vec![
            ("level".into(), keyword(level)),
            ("message".into(), FieldValue::Text(message)),
            ("service".into(), keyword(service)),
            ("kubernetes.namespace".into(), keyword(tenant)),
            ("kubernetes.pod".into(), FieldValue::Keyword(pod)),
            ("kubernetes.container".into(), keyword(service)),
            ("kubernetes.node".into(), FieldValue::Keyword(node)),
            ("userId".into(), FieldValue::Keyword(user_id)),
            ("http.method".into(), keyword(method)),
            ("http.path".into(), keyword(path)),
            ("http.status".into(), FieldValue::Long(status)),
            ("duration_ms".into(), FieldValue::Double(duration_ms)),
            ("bytes".into(), FieldValue::Long(bytes)),
            ("trace_id".into(), FieldValue::Keyword(trace_id)),
        ],
        mode: WriteMode::Create,
    }
}

/// xorshift64: deterministic documents without a dependency.
pub struct Random(pub u64);

impl Random {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

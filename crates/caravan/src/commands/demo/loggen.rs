//! The demo's log generator: a payments API's logs, sent through `_bulk` every second, with the
//! key drift a common schema exists for (`user_id` and `userId`, statuses as strings), values
//! that do not fit their key (kept in `_ignored`) and keys the schema does not know.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use caravan_client::Client;
use serde_json::{Value, json};

/// The index the generator writes to: it routes to the `payments` tenant.
const INDEX: &str = "payments-api";

/// A small deterministic pseudo-random sequence (xorshift64*): the demo needs variety, not
/// unpredictability.
struct Sequence(u64);

impl Sequence {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..bound`.
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

/// One payments log line, varied by `sequence`.
fn document(sequence: &mut Sequence) -> Value {
    let user = 1000 + sequence.below(40);
    let roll = sequence.below(100);
    let (level, message, status) = match roll {
        0..=69 => ("INFO", "payment authorised", "200"),
        70..=84 => ("INFO", "refund issued", "201"),
        85..=93 => ("WARN", "card declined", "402"),
        _ => ("ERROR", "fraud check timed out", "504"),
    };
    let mut document = json!({
        "level": level,
        "message": message,
        "service": "payments-api",
        "http": {"method": "POST", "path": "/v1/payments", "status": status},
        "duration_ms": 5 + sequence.below(if level == "ERROR" { 3000 } else { 200 }),
        "trace_id": format!("{:016x}", sequence.next()),
    });
    // Half the team writes `user_id`, the other half `userId`: the schema makes them one key.
    if sequence.below(2) == 0 {
        document["user_id"] = json!(user);
    } else {
        document["userId"] = json!(user.to_string());
    }
    // Now and then a value that does not fit (kept in `_ignored`) or an unknown key.
    match sequence.below(20) {
        0 => document["duration_ms"] = json!("slow"),
        1 => document["payment_provider"] = json!("acme-pay"),
        _ => {}
    }
    document
}

/// Sends about `per_second` documents a second until the task is aborted. A failed batch is
/// reported on standard error and the next one is tried a second later.
pub async fn run(client: Client, per_second: u32) {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |elapsed| elapsed.as_nanos() as u64 | 1);
    let mut sequence = Sequence(seed);
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut failing = false;
    loop {
        ticker.tick().await;
        let mut body = Vec::new();
        for _ in 0..per_second {
            body.extend_from_slice(json!({"create": {"_index": INDEX}}).to_string().as_bytes());
            body.push(b'\n');
            body.extend_from_slice(document(&mut sequence).to_string().as_bytes());
            body.push(b'\n');
        }
        match client.bulk(body).await {
            Ok(_) if failing => {
                failing = false;
                tracing::warn!("log generator: sending again");
            }
            Ok(_) => {}
            Err(error) if !failing => {
                failing = true;
                tracing::warn!("log generator: {error} (retrying every second)");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_vary_and_drift() {
        let mut sequence = Sequence(42);
        let documents: Vec<Value> = (0..500).map(|_| document(&mut sequence)).collect();
        let has = |key: &str| documents.iter().any(|d| d.get(key).is_some());
        assert!(has("user_id") && has("userId") && has("payment_provider"));
        assert!(documents.iter().any(|d| d["duration_ms"] == "slow"));
        for level in ["INFO", "WARN", "ERROR"] {
            assert!(documents.iter().any(|d| d["level"] == level), "{level}");
        }
    }
}

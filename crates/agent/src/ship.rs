//! Log collection: every instance's output (`output.log`, stdout and stderr line by line) is
//! shipped into its owner tenant's logs through the Elasticsearch-compatible `_bulk` API.
//!
//! - A JSON object line is kept as is; any other line becomes `{"message": line}`. Each gets
//!   the instance's place, in the keys the seed's Filebeat used (`service`,
//!   `kubernetes.namespace` = tenant, `kubernetes.pod` = instance, `kubernetes.container` =
//!   service, `kubernetes.node` = host) and `labels.data_center`, without overwriting what the
//!   line says itself.
//! - The output file is the on-disk buffer: what was shipped is remembered as a byte offset
//!   (`shipped` beside it), advanced only when the server has the lines. A server outage or an
//!   agent restart loses nothing; lines are sent again until accepted.
//! - Exactly once: each line's `_id` is `<instance>.<byte offset>` with the `create` action, so
//!   a batch sent again after a lost answer is refused item by item as existing (409), which
//!   counts as shipped.
//! - Bounded: batches of at most [`BATCH_LINES_MAX`] lines and [`BATCH_BYTES_MAX`] bytes; a
//!   backlog beyond [`BACKLOG_BYTES_MAX`] (a server away for long) drops its oldest lines, with
//!   a warning saying how many bytes.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use caravan_client::Client;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::driver::OUTPUT_FILE;

/// The labels of an instance's logs, written beside its output when it starts.
pub const LABELS_FILE: &str = "labels.json";
/// The byte offset of the output shipped so far.
pub const SHIPPED_FILE: &str = "shipped";
/// How often the shipper looks for new lines.
pub const SHIP_INTERVAL: Duration = Duration::from_millis(500);
/// Most lines in one bulk request.
pub const BATCH_LINES_MAX: usize = 2_000;
/// Most bytes of output read for one bulk request.
pub const BATCH_BYTES_MAX: usize = 1 << 20;
/// Longest line shipped; longer ones are cut (the rest of the line is dropped).
pub const LINE_BYTES_MAX: usize = 64 << 10;
/// Most unshipped output kept per instance; older lines are dropped beyond it.
pub const BACKLOG_BYTES_MAX: u64 = 64 << 20;

/// Who wrote an instance's output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLabels {
    /// The instance (`i-42`).
    pub instance: String,
    /// Its service.
    pub service: String,
    /// The tenant owning the service: the index its logs go to.
    pub tenant: String,
    /// The agent's host.
    pub host: String,
    /// The agent's data center.
    pub data_center: String,
}

/// Writes the labels of an instance into its directory (before it starts).
pub fn write_labels(dir: &Path, labels: &LogLabels) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let body = serde_json::to_vec(labels).map_err(std::io::Error::other)?;
    std::fs::write(dir.join(LABELS_FILE), body)
}

/// Ships the output of every instance directory under `instances_dir`, forever (the caller
/// aborts the task when the agent stops; what is not shipped yet is shipped by the next agent).
pub async fn run(client: Client, instances_dir: PathBuf) {
    let mut tick = tokio::time::interval(SHIP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Ok(entries) = std::fs::read_dir(&instances_dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let dir = entry.path();
            // Ship what an instance has, batch after batch, until it is caught up or the
            // server does not take it.
            loop {
                match ship_once(&client, &dir).await {
                    Ok(Shipped::More) => continue,
                    Ok(Shipped::CaughtUp) => break,
                    Err(error) => {
                        tracing::debug!(dir = %dir.display(), %error, "log shipping paused");
                        break;
                    }
                }
            }
        }
    }
}

/// What one round of shipping achieved.
#[derive(Debug, PartialEq, Eq)]
enum Shipped {
    /// A full batch went out: there may be more.
    More,
    /// Nothing more to ship now.
    CaughtUp,
}

async fn ship_once(client: &Client, dir: &Path) -> Result<Shipped, String> {
    let Ok(labels) = std::fs::read(dir.join(LABELS_FILE)) else {
        return Ok(Shipped::CaughtUp);
    };
    let labels: LogLabels =
        serde_json::from_slice(&labels).map_err(|e| format!("{LABELS_FILE}: {e}"))?;
    let output_path = dir.join(OUTPUT_FILE);
    let Ok(mut output) = std::fs::File::open(&output_path) else {
        return Ok(Shipped::CaughtUp);
    };
    let length = output.metadata().map_err(|e| e.to_string())?.len();
    let mut offset = read_offset(dir);
    if length < offset {
        // The file was replaced: start over.
        offset = 0;
    }
    if length - offset > BACKLOG_BYTES_MAX {
        let dropped = length - BACKLOG_BYTES_MAX - offset;
        tracing::warn!(instance = %labels.instance, dropped_bytes = dropped,
            "log backlog over its bound: dropping the oldest output");
        offset = length - BACKLOG_BYTES_MAX;
    }
    if length == offset {
        return Ok(Shipped::CaughtUp);
    }
    output
        .seek(SeekFrom::Start(offset))
        .map_err(|e| e.to_string())?;
    let mut chunk = vec![0u8; BATCH_BYTES_MAX.min((length - offset) as usize)];
    output.read_exact(&mut chunk).map_err(|e| e.to_string())?;
    let batch = batch(&labels, offset, &chunk);
    if batch.lines == 0 {
        // Only a partial line so far (or a line longer than a batch: ship it cut).
        if chunk.len() < BATCH_BYTES_MAX {
            return Ok(Shipped::CaughtUp);
        }
    }
    if !batch.body.is_empty() {
        let answer = client.bulk(batch.body).await.map_err(|e| e.to_string())?;
        check_answer(&answer)?;
    }
    let next = offset + batch.consumed as u64;
    write_offset(dir, next).map_err(|e| e.to_string())?;
    Ok(if batch.full {
        Shipped::More
    } else {
        Shipped::CaughtUp
    })
}

/// A bulk request built from complete lines of output.
#[derive(Debug)]
struct Batch {
    body: Vec<u8>,
    /// Lines in it.
    lines: usize,
    /// Bytes of output it covers (complete lines only).
    consumed: usize,
    /// Whether it stopped at a bound rather than at the end of the output.
    full: bool,
}

/// The bulk body for the complete lines of `chunk`, which starts at `offset` of the output.
fn batch(labels: &LogLabels, offset: u64, chunk: &[u8]) -> Batch {
    let mut body = Vec::with_capacity(chunk.len() * 2);
    let (mut lines, mut consumed) = (0, 0);
    let mut full = false;
    while consumed < chunk.len() {
        if lines == BATCH_LINES_MAX {
            full = true;
            break;
        }
        let rest = &chunk[consumed..];
        let (line, step) = match rest.iter().position(|&b| b == b'\n') {
            Some(end) => (&rest[..end], end + 1),
            // A line longer than a whole batch: cut it.
            None if consumed == 0 && chunk.len() == BATCH_BYTES_MAX => (rest, rest.len()),
            None => break,
        };
        let start = offset + consumed as u64;
        consumed += step;
        let line = &line[..line.len().min(LINE_BYTES_MAX)];
        let text = String::from_utf8_lossy(line);
        if text.trim().is_empty() {
            continue;
        }
        let action = json!({"create": {"_index": labels.tenant,
            "_id": format!("{}.{start}", labels.instance)}});
        body.extend_from_slice(action.to_string().as_bytes());
        body.push(b'\n');
        body.extend_from_slice(document(labels, &text).to_string().as_bytes());
        body.push(b'\n');
        lines += 1;
    }
    if consumed == chunk.len() && chunk.len() == BATCH_BYTES_MAX {
        full = true;
    }
    Batch {
        body,
        lines,
        consumed,
        full,
    }
}

/// One line as a document: its JSON object, or `{"message": line}`, with the labels.
fn document(labels: &LogLabels, line: &str) -> Value {
    let mut document = match serde_json::from_str::<Value>(line.trim()) {
        Ok(Value::Object(map)) => map,
        _ => {
            let mut map = Map::new();
            map.insert("message".into(), Value::String(line.trim_end().to_owned()));
            map
        }
    };
    let mut set = |path: &[&str], value: &str| {
        let mut at = &mut document;
        for key in &path[..path.len() - 1] {
            let entry = at
                .entry((*key).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(next) = entry else {
                return;
            };
            at = next;
        }
        at.entry(path[path.len() - 1].to_owned())
            .or_insert_with(|| Value::String(value.to_owned()));
    };
    set(&["service"], &labels.service);
    set(&["kubernetes", "namespace"], &labels.tenant);
    set(&["kubernetes", "pod"], &labels.instance);
    set(&["kubernetes", "container"], &labels.service);
    set(&["kubernetes", "node"], &labels.host);
    set(&["labels", "data_center"], &labels.data_center);
    Value::Object(document)
}

/// Fails unless every item was stored or already existed (a batch sent again).
fn check_answer(answer: &Value) -> Result<(), String> {
    if answer["errors"] != Value::Bool(true) {
        return Ok(());
    }
    let items = answer["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for item in items {
        let status = item["create"]["status"].as_u64().unwrap_or(0);
        match status {
            200..=299 | 409 => {}
            // A document the server refuses for itself (too large, too deep): drop it rather
            // than block the instance's logs forever.
            400 | 413 => {
                tracing::warn!(error = %item["create"]["error"], "a log line was refused");
            }
            _ => {
                return Err(format!(
                    "the server refused a batch: {}",
                    item["create"]["error"]
                ));
            }
        }
    }
    Ok(())
}

fn read_offset(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join(SHIPPED_FILE))
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0)
}

/// Writes the offset atomically (a temporary file renamed over the old one).
fn write_offset(dir: &Path, offset: u64) -> std::io::Result<()> {
    let temporary = dir.join(format!("{SHIPPED_FILE}.tmp"));
    std::fs::write(&temporary, offset.to_string())?;
    std::fs::rename(temporary, dir.join(SHIPPED_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> LogLabels {
        LogLabels {
            instance: "i-7".into(),
            service: "web".into(),
            tenant: "payments".into(),
            host: "dc1-h1".into(),
            data_center: "dc1".into(),
        }
    }

    #[test]
    fn lines_become_labelled_documents_with_offset_ids() {
        let chunk = b"{\"level\":\"INFO\",\"service\":\"own\"}\nplain text\npartial";
        let batch = batch(&labels(), 100, chunk);
        assert_eq!((batch.lines, batch.consumed, batch.full), (2, 44, false));
        let lines: Vec<Value> = String::from_utf8(batch.body)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines[0]["create"]["_id"], "i-7.100");
        assert_eq!(lines[0]["create"]["_index"], "payments");
        assert_eq!(lines[1]["service"], "own", "the line's own keys win");
        assert_eq!(lines[1]["kubernetes"]["pod"], "i-7");
        assert_eq!(lines[1]["labels"]["data_center"], "dc1");
        assert_eq!(lines[2]["create"]["_id"], "i-7.133");
        assert_eq!(lines[3]["message"], "plain text");
        assert_eq!(lines[3]["service"], "web");
    }

    #[test]
    fn batches_are_bounded_in_lines() {
        let chunk = "x\n".repeat(BATCH_LINES_MAX + 5);
        let batch = batch(&labels(), 0, chunk.as_bytes());
        assert_eq!(
            (batch.lines, batch.consumed, batch.full),
            (BATCH_LINES_MAX, BATCH_LINES_MAX * 2, true)
        );
    }

    #[test]
    fn refused_items_fail_the_batch_except_duplicates_and_bad_documents() {
        let ok = json!({"errors": true, "items": [{"create": {"status": 409}}, {"create": {"status": 201}}, {"create": {"status": 400, "error": {}}}]});
        assert!(check_answer(&ok).is_ok());
        let busy = json!({"errors": true, "items": [{"create": {"status": 429, "error": {"reason": "full"}}}]});
        assert!(check_answer(&busy).is_err());
    }

    #[test]
    fn offsets_survive_in_their_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_offset(dir.path()), 0);
        write_offset(dir.path(), 1234).unwrap();
        assert_eq!(read_offset(dir.path()), 1234);
    }
}

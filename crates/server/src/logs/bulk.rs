//! The Elasticsearch bulk format: NDJSON action lines, each followed by a source line (except
//! `delete`). Parsing is lenient where Elasticsearch is strict: a malformed action line fails
//! that item only, with its line number, instead of the whole request.

use serde::Deserialize;

/// What a bulk item asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BulkAction {
    /// Add, or replace the document with the same `_id`.
    Index,
    /// Add; fail if the `_id` exists.
    Create,
    /// Not supported: answered with a per-item error.
    Delete,
    /// Not supported: answered with a per-item error.
    Update,
}

impl BulkAction {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            BulkAction::Index => "index",
            BulkAction::Create => "create",
            BulkAction::Delete => "delete",
            BulkAction::Update => "update",
        }
    }

    fn from_key(key: &str) -> Option<Self> {
        match key {
            "index" => Some(BulkAction::Index),
            "create" => Some(BulkAction::Create),
            "delete" => Some(BulkAction::Delete),
            "update" => Some(BulkAction::Update),
            _ => None,
        }
    }
}

/// One parsed item of a bulk request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BulkItem<'a> {
    /// The action.
    pub action: BulkAction,
    /// The target index: from the action line, else the URL's.
    pub index: Option<String>,
    /// The document id, when given.
    pub id: Option<String>,
    /// The source line (absent for `delete`, or when the body ended early).
    pub source: Option<&'a [u8]>,
    /// 1-based line number of the action line.
    pub line: usize,
}

/// An item that could not be parsed, in the position it takes in the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BulkLineError {
    /// The action, when it could be read.
    pub action: BulkAction,
    /// The index, when it could be read.
    pub index: Option<String>,
    /// The id, when it could be read.
    pub id: Option<String>,
    /// What is wrong, starting with the line number.
    pub reason: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionMeta {
    #[serde(rename = "_index")]
    index: Option<String>,
    #[serde(rename = "_id")]
    id: Option<serde_json::Value>,
    // Accepted and ignored, as a single-node store has no use for them.
    #[serde(rename = "routing", alias = "_routing")]
    _routing: Option<serde_json::Value>,
    #[serde(rename = "pipeline")]
    _pipeline: Option<serde_json::Value>,
    #[serde(rename = "require_alias")]
    _require_alias: Option<serde_json::Value>,
    #[serde(rename = "require_data_stream")]
    _require_data_stream: Option<serde_json::Value>,
    #[serde(rename = "dynamic_templates")]
    _dynamic_templates: Option<serde_json::Value>,
    #[serde(rename = "op_type")]
    _op_type: Option<serde_json::Value>,
    #[serde(rename = "version")]
    _version: Option<serde_json::Value>,
    #[serde(rename = "version_type")]
    _version_type: Option<serde_json::Value>,
    #[serde(rename = "if_seq_no")]
    _if_seq_no: Option<serde_json::Value>,
    #[serde(rename = "if_primary_term")]
    _if_primary_term: Option<serde_json::Value>,
    #[serde(rename = "retry_on_conflict")]
    _retry_on_conflict: Option<serde_json::Value>,
    #[serde(rename = "_source")]
    _source: Option<serde_json::Value>,
}

/// Parses a bulk body. Every item, parsed or not, is returned in order, so that the response
/// has one entry per item. `default_index` is the `{index}` of `/{index}/_bulk`.
pub(crate) fn parse<'a>(
    body: &'a [u8],
    default_index: Option<&str>,
) -> Vec<Result<BulkItem<'a>, BulkLineError>> {
    let mut lines = lines(body)
        .enumerate()
        .map(|(i, line)| (i + 1, trim_cr(line)))
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .peekable();
    // Two lines per item in the common case: one allocation instead of a dozen regrowths.
    let newlines = memchr::memchr_iter(b'\n', body).count();
    let mut items = Vec::with_capacity(newlines / 2 + 1);
    // Shippers repeat the same few action lines (`{"create":{"_index":"app-logs"}}`, one per
    // index a batch writes to): an action line equal to a recent one is not parsed again.
    let mut recent: Vec<(&[u8], Action)> = Vec::with_capacity(RECENT_ACTIONS_MAX);
    while let Some((line_number, line)) = lines.next() {
        let parsed = match recent.iter().find(|(recent_line, _)| *recent_line == line) {
            Some((_, action)) => Ok(action.clone()),
            None => {
                let parsed = parse_action(line, line_number, default_index);
                if let Ok(action) = &parsed {
                    if recent.len() == RECENT_ACTIONS_MAX {
                        recent.remove(0);
                    }
                    recent.push((line, action.clone()));
                }
                parsed
            }
        };
        match parsed {
            Ok((action, index, id)) => {
                let source = if action == BulkAction::Delete {
                    None
                } else {
                    lines.next().map(|(_, source)| source)
                };
                items.push(Ok(BulkItem {
                    action,
                    index,
                    id,
                    source,
                    line: line_number,
                }));
            }
            Err(error) => {
                // The next line is this action's source unless it reads as an action itself.
                if lines
                    .peek()
                    .is_some_and(|(n, next)| parse_action(next, *n, default_index).is_err())
                {
                    lines.next();
                }
                items.push(Err(error));
            }
        }
    }
    items
}

type Action = (BulkAction, Option<String>, Option<String>);

/// Distinct action lines remembered while parsing a body.
const RECENT_ACTIONS_MAX: usize = 8;

fn parse_action(
    line: &[u8],
    line_number: usize,
    default_index: Option<&str>,
) -> Result<Action, BulkLineError> {
    let malformed = |reason: String| BulkLineError {
        action: BulkAction::Index,
        index: default_index.map(str::to_owned),
        id: None,
        reason: format!("line {line_number}: malformed action/metadata line: {reason}"),
    };
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(line).map_err(|e| malformed(e.to_string()))?;
    let mut entries = object.into_iter();
    let (Some((key, meta)), None) = (entries.next(), entries.next()) else {
        return Err(malformed(
            "expected one of {\"index\": {...}}, {\"create\": {...}}, {\"delete\": {...}}, {\"update\": {...}}"
                .to_owned(),
        ));
    };
    let action = BulkAction::from_key(&key).ok_or_else(|| {
        malformed(format!(
            "unknown action [{key}], expected index, create, delete or update"
        ))
    })?;
    let meta: ActionMeta = serde_json::from_value(meta).map_err(|e| BulkLineError {
        action,
        index: default_index.map(str::to_owned),
        id: None,
        reason: format!("line {line_number}: invalid [{key}] metadata: {e}"),
    })?;
    let id = match meta.id {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(id)) => Some(id),
        Some(serde_json::Value::Number(id)) => Some(id.to_string()),
        Some(other) => {
            return Err(BulkLineError {
                action,
                index: meta.index,
                id: None,
                reason: format!("line {line_number}: _id must be a string, got {other}"),
            });
        }
    };
    let index = meta.index.or_else(|| default_index.map(str::to_owned));
    Ok((action, index, id))
}

/// The lines of `body` (as `body.split(|&b| b == b'\n')`, with a vectorised search: a body is
/// megabytes, searched byte by byte that took a microsecond per document).
fn lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut ends = memchr::memchr_iter(b'\n', body);
    let mut start = 0;
    std::iter::from_fn(move || {
        if start > body.len() {
            return None;
        }
        let end = ends.next().unwrap_or(body.len());
        let line = &body[start..end];
        start = end + 1;
        Some(line)
    })
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_actions_and_sources_with_line_numbers() {
        let body = b"{\"index\":{\"_index\":\"payments-2026.11.22\",\"_id\":\"a\"}}\n{\"message\":\"hi\"}\n\n{\"create\":{}}\n{\"m\":1}\r\n{\"delete\":{\"_id\":\"x\"}}\n";
        let items = parse(body, Some("default"));
        assert_eq!(items.len(), 3);
        let first = items[0].as_ref().unwrap();
        assert_eq!(first.action, BulkAction::Index);
        assert_eq!(first.index.as_deref(), Some("payments-2026.11.22"));
        assert_eq!(first.id.as_deref(), Some("a"));
        assert_eq!(first.source, Some(&b"{\"message\":\"hi\"}"[..]));
        assert_eq!(first.line, 1);
        let second = items[1].as_ref().unwrap();
        assert_eq!(second.index.as_deref(), Some("default"));
        assert_eq!(second.source, Some(&b"{\"m\":1}"[..]));
        assert_eq!(second.line, 4);
        let third = items[2].as_ref().unwrap();
        assert_eq!(third.action, BulkAction::Delete);
        assert_eq!(third.source, None);
    }

    #[test]
    fn lines_split_as_the_slice_split_does() {
        for body in [
            &b""[..],
            b"\n",
            b"a",
            b"a\n",
            b"a\nb",
            b"\n\na\n\nbc\n",
            b"{}\r\n{}",
        ] {
            let expected: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
            assert_eq!(lines(body).collect::<Vec<_>>(), expected, "{body:?}");
        }
    }

    #[test]
    fn repeated_action_lines_give_the_same_items() {
        let body = b"{\"create\":{\"_index\":\"app\"}}\n{\"a\":1}\n{\"create\":{\"_index\":\"app\"}}\n{\"a\":2}\n{\"create\":{\"_index\":\"app\",\"_id\":\"x\"}}\n{\"a\":3}\n{\"create\":{\"_index\":\"app\"}}\n{\"a\":4}\n{\"index\":{\"_index\":\"web\"}}\n{\"a\":5}\n{\"create\":{\"_index\":\"app\",\"_id\":\"x\"}}\n{\"a\":6}\n";
        let items: Vec<_> = parse(body, None).into_iter().map(Result::unwrap).collect();
        let seen: Vec<_> = items
            .iter()
            .map(|item| {
                (
                    item.line,
                    item.action,
                    item.index.as_deref(),
                    item.id.as_deref(),
                    item.source,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (
                    1,
                    BulkAction::Create,
                    Some("app"),
                    None,
                    Some(&b"{\"a\":1}"[..])
                ),
                (
                    3,
                    BulkAction::Create,
                    Some("app"),
                    None,
                    Some(&b"{\"a\":2}"[..])
                ),
                (
                    5,
                    BulkAction::Create,
                    Some("app"),
                    Some("x"),
                    Some(&b"{\"a\":3}"[..])
                ),
                (
                    7,
                    BulkAction::Create,
                    Some("app"),
                    None,
                    Some(&b"{\"a\":4}"[..])
                ),
                (
                    9,
                    BulkAction::Index,
                    Some("web"),
                    None,
                    Some(&b"{\"a\":5}"[..])
                ),
                (
                    11,
                    BulkAction::Create,
                    Some("app"),
                    Some("x"),
                    Some(&b"{\"a\":6}"[..])
                ),
            ]
        );
    }

    #[test]
    fn a_malformed_action_fails_only_its_item() {
        let body =
            b"{\"index\":{}}\n{\"a\":1}\n{\"index\":{\n{\"b\":2}\n{\"index\":{}}\n{\"c\":3}\n";
        let items = parse(body, Some("logs"));
        assert_eq!(items.len(), 3);
        assert!(items[0].is_ok());
        let error = items[1].as_ref().unwrap_err();
        assert!(
            error
                .reason
                .starts_with("line 3: malformed action/metadata line"),
            "{}",
            error.reason
        );
        assert_eq!(items[2].as_ref().unwrap().source, Some(&b"{\"c\":3}"[..]));
    }

    #[test]
    fn a_malformed_action_followed_by_an_action_keeps_it() {
        let body = b"not json\n{\"index\":{}}\n{\"c\":3}\n";
        let items = parse(body, Some("logs"));
        assert_eq!(items.len(), 2);
        assert!(items[0].is_err());
        assert_eq!(items[1].as_ref().unwrap().line, 2);
    }

    #[test]
    fn unknown_actions_and_metadata_are_named() {
        let items = parse(
            b"{\"upsert\":{}}\n{}\n{\"index\":{\"_type\":\"doc\"}}\n{}\n",
            None,
        );
        let first = items[0].as_ref().unwrap_err();
        assert!(
            first.reason.contains("unknown action [upsert]"),
            "{}",
            first.reason
        );
        let second = items[1].as_ref().unwrap_err();
        assert!(
            second.reason.contains("line 3") && second.reason.contains("_type"),
            "{}",
            second.reason
        );
    }

    #[test]
    fn numeric_ids_and_missing_source() {
        let items = parse(b"{\"index\":{\"_id\":42}}", None);
        let item = items[0].as_ref().unwrap();
        assert_eq!(item.id.as_deref(), Some("42"));
        assert_eq!(item.source, None);
    }
}

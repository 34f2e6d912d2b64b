//! Elasticsearch's `filter_path` response filtering: `filter_path=errors,items.*.error` keeps
//! only those parts of the answer. Segments match keys exactly or with `*` wildcards; `**`
//! matches any number of levels; arrays are traversed transparently.

use serde_json::{Map, Value};

/// A parsed `filter_path` parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FilterPath {
    paths: Vec<Vec<String>>,
}

impl FilterPath {
    /// Parses the comma-separated list; `None` when it is empty.
    pub(crate) fn parse(parameter: &str) -> Option<Self> {
        let paths: Vec<Vec<String>> = parameter
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.split('.').map(str::to_owned).collect())
            .collect();
        (!paths.is_empty()).then_some(Self { paths })
    }

    /// The filtered value; an empty object when nothing matches (as Elasticsearch answers `{}`).
    /// The bulk answer is filtered member by member with [`FilterPath::select`]; the tests
    /// check that both agree.
    #[cfg(test)]
    pub(crate) fn apply(&self, value: &Value) -> Value {
        let paths: Vec<&[String]> = self.paths.iter().map(Vec::as_slice).collect();
        filter(value, &paths).unwrap_or_else(|| Value::Object(Map::new()))
    }

    /// What the filter keeps of the member `key` of the top-level object, so that a caller can
    /// build only that: `apply` on an object equals putting together, member by member, the
    /// whole member, or [`Selection::filter`] of it, or nothing.
    pub(crate) fn select(&self, key: &str) -> Selection<'_> {
        let mut whole = false;
        let mut rest: Vec<&[String]> = Vec::new();
        for path in &self.paths {
            descend(path, key, &mut whole, &mut rest);
        }
        if whole {
            Selection::Whole
        } else if rest.is_empty() {
            Selection::Nothing
        } else {
            Selection::Paths(rest)
        }
    }
}

/// What a filter keeps of one member (see [`FilterPath::select`]).
pub(crate) enum Selection<'p> {
    /// None of it.
    Nothing,
    /// All of it.
    Whole,
    /// What these sub-paths keep of it.
    Paths(Vec<&'p [String]>),
}

impl Selection<'_> {
    /// The part of `value` (the member, or one element when the member is an array: arrays
    /// are traversed transparently) the sub-paths keep; `None` when nothing.
    pub(crate) fn filter(&self, value: &Value) -> Option<Value> {
        match self {
            Selection::Nothing => None,
            Selection::Whole => Some(value.clone()),
            Selection::Paths(paths) => filter(value, paths),
        }
    }
}

fn filter(value: &Value, paths: &[&[String]]) -> Option<Value> {
    match value {
        Value::Object(object) => {
            let mut kept = Map::new();
            for (key, child) in object {
                let mut whole = false;
                let mut rest: Vec<&[String]> = Vec::new();
                for path in paths {
                    descend(path, key, &mut whole, &mut rest);
                }
                if whole {
                    kept.insert(key.clone(), child.clone());
                } else if !rest.is_empty()
                    && let Some(filtered) = filter(child, &rest)
                {
                    kept.insert(key.clone(), filtered);
                }
            }
            (!kept.is_empty()).then_some(Value::Object(kept))
        }
        Value::Array(items) => {
            let kept: Vec<Value> = items
                .iter()
                .filter_map(|item| filter(item, paths))
                .collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        _ => None,
    }
}

/// What matching `key` against `path` leaves: the whole subtree (`whole`), or sub-paths.
fn descend<'p>(path: &'p [String], key: &str, whole: &mut bool, rest: &mut Vec<&'p [String]>) {
    let Some((first, tail)) = path.split_first() else {
        return;
    };
    if first == "**" {
        // Zero levels: the tail applies to this key; one or more: `**` stays for the children.
        descend(tail, key, whole, rest);
        if tail.is_empty() {
            *whole = true;
        } else {
            rest.push(path);
        }
        return;
    }
    if glob(first, key) {
        if tail.is_empty() {
            *whole = true;
        } else {
            rest.push(tail);
        }
    }
}

/// Matches `text` against a pattern where `*` stands for any run of characters.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((prefix, rest)) => {
            let Some(remaining) = text.strip_prefix(prefix) else {
                return false;
            };
            (0..=remaining.len())
                .filter(|&i| remaining.is_char_boundary(i))
                .any(|i| glob(rest, &remaining[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn bulk_answer() -> Value {
        json!({
            "took": 3,
            "errors": true,
            "items": [
                {"index": {"_id": "a", "status": 201}},
                {"create": {"_id": "b", "status": 409, "error": {"type": "version_conflict_engine_exception", "reason": "x"}}}
            ]
        })
    }

    #[test]
    fn keeps_errors_and_item_errors() {
        let filter = FilterPath::parse("errors,items.*.error").unwrap();
        assert_eq!(
            filter.apply(&bulk_answer()),
            json!({"errors": true, "items": [{"create": {"error": {"type": "version_conflict_engine_exception", "reason": "x"}}}]})
        );
    }

    #[test]
    fn wildcards_and_double_star() {
        let answer = bulk_answer();
        assert_eq!(
            FilterPath::parse("took").unwrap().apply(&answer),
            json!({"took": 3})
        );
        assert_eq!(
            FilterPath::parse("items.*.st*").unwrap().apply(&answer),
            json!({"items": [{"index": {"status": 201}}, {"create": {"status": 409}}]})
        );
        assert_eq!(
            FilterPath::parse("**.type").unwrap().apply(&answer),
            json!({"items": [{"create": {"error": {"type": "version_conflict_engine_exception"}}}]})
        );
        assert_eq!(
            FilterPath::parse("nothing").unwrap().apply(&answer),
            json!({})
        );
        assert_eq!(FilterPath::parse(" , "), None);
    }

    #[test]
    fn selecting_member_by_member_equals_applying() {
        let answer = bulk_answer();
        for parameter in [
            "errors",
            "took,errors",
            "errors,items.*.error",
            "items.*.st*",
            "**.type",
            "**",
            "items",
            "it*",
            "*",
            "nothing",
            "items.index",
        ] {
            let filter = FilterPath::parse(parameter).unwrap();
            let mut kept = Map::new();
            for (key, value) in answer.as_object().unwrap() {
                let selection = filter.select(key);
                let part = match value {
                    Value::Array(items) if matches!(selection, Selection::Paths(_)) => {
                        let items: Vec<Value> =
                            items.iter().filter_map(|i| selection.filter(i)).collect();
                        (!items.is_empty()).then_some(Value::Array(items))
                    }
                    _ => selection.filter(value),
                };
                if let Some(part) = part {
                    kept.insert(key.clone(), part);
                }
            }
            assert_eq!(Value::Object(kept), filter.apply(&answer), "{parameter}");
        }
    }
}

//! Placing values into the stored document by key path, creating the objects on the way, and
//! detecting the two ways a key can already be taken: the key holds a value (a duplicate), or
//! a prefix of it holds something that is not an object.
//!
//! A path is a canonical dotted key (`http.status`, split at its dots) followed by segments
//! kept as sent (unknown keys, struct members, which may contain dots themselves). Inside an
//! array of objects, paths under the array's key are placed in the current element; others
//! (an alias naming a key elsewhere) go to the document root.

use serde_json::{Map, Value};

use crate::object::{Member, StoredObject};

/// Where values go: the document root, or an element of an array of objects.
pub(crate) struct Target<'t> {
    /// The element being filled, or `None` for the root.
    pub(crate) element: Option<&'t mut StoredObject>,
    /// The canonical key of the array the element belongs to (empty for the root).
    pub(crate) prefix: &'t str,
}

impl Target<'static> {
    pub(crate) fn root() -> Self {
        Target {
            element: None,
            prefix: "",
        }
    }
}

/// What to do when the last segment of the path is already present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Keep what is there; the new value is a duplicate.
    Insert,
    /// A repeated key: append to what is there, making an array of both.
    Append,
    /// The value is an empty object: nothing to do if an object is there.
    EnsureObject,
}

/// Why a value could not be placed; it comes back to be recorded in `_ignored`.
#[derive(Debug)]
pub(crate) struct Conflict {
    pub(crate) value: Value,
    pub(crate) reason: String,
}

/// Places `value` at `known` (a canonical dotted key, may be empty) followed by `tail`.
pub(crate) fn place(
    root: &mut StoredObject,
    target: &mut Target<'_>,
    known: &str,
    tail: &[&str],
    value: Value,
    mode: Mode,
) -> Result<(), Conflict> {
    let relative = match target.element {
        Some(_) => {
            relative_to(known, target.prefix).filter(|rest| !rest.is_empty() || !tail.is_empty())
        }
        None => None,
    };
    let (object, known, skipped) = match (target.element.as_deref_mut(), relative) {
        (Some(element), Some(rest)) => (element, rest, segments(target.prefix).count()),
        _ => (root, known, 0),
    };
    let mut path = segments(known).chain(tail.iter().copied());
    let Some(mut last) = path.next() else {
        return Err(Conflict {
            value,
            reason: "an empty key".to_owned(),
        });
    };
    let mut current = object;
    for (depth, next) in path.enumerate() {
        current = match current.child_object(last) {
            Some(child) => child,
            None => {
                let prefix = display(known, tail, skipped, depth, target.prefix);
                return Err(Conflict {
                    value,
                    reason: format!(
                        "conflicting key: `{prefix}` already holds a value that is not an object"
                    ),
                });
            }
        };
        last = next;
    }
    finish(current, last, value, mode)
}

/// What [`probe`] finds at a name: an object (built, or placed whole) or another value.
#[derive(Clone, Copy)]
enum Found<'a> {
    Built(&'a StoredObject),
    Whole(&'a Map<String, Value>),
    Other,
}

impl<'a> Found<'a> {
    fn of_value(value: &'a Value) -> Self {
        match value {
            Value::Object(map) => Found::Whole(map),
            _ => Found::Other,
        }
    }

    fn child(self, name: &str) -> Option<Found<'a>> {
        match self {
            Found::Built(object) => object.member(name).map(|member| match member {
                Member::Object(object) => Found::Built(object),
                Member::Value(value) => Found::of_value(value),
            }),
            Found::Whole(map) => map.get(name).map(Found::of_value),
            Found::Other => None,
        }
    }
}

/// Whether [`place`] would store a value at `known` with `mode`, without changing anything:
/// for a value whose normalisation has effects of its own (an array of objects indexes its
/// elements' values as it walks them), to find a conflict before the walk rather than after.
pub(crate) fn probe(
    root: &StoredObject,
    target: &Target<'_>,
    known: &str,
    mode: Mode,
) -> Result<(), String> {
    let relative = match target.element {
        Some(_) => relative_to(known, target.prefix).filter(|rest| !rest.is_empty()),
        None => None,
    };
    let (object, known, skipped) = match (target.element.as_deref(), relative) {
        (Some(element), Some(rest)) => (element, rest, segments(target.prefix).count()),
        _ => (root, known, 0),
    };
    let mut current = Found::Built(object);
    let mut path = segments(known).peekable();
    let mut depth = 0;
    while let Some(segment) = path.next() {
        let last = path.peek().is_none();
        match current.child(segment) {
            None => return Ok(()),
            Some(_) if last && mode == Mode::Append => return Ok(()),
            Some(Found::Built(_) | Found::Whole(_)) if last && mode == Mode::EnsureObject => {
                return Ok(());
            }
            Some(_) if last => return Err(DUPLICATE.to_owned()),
            Some(child @ (Found::Built(_) | Found::Whole(_))) => current = child,
            Some(Found::Other) => {
                let prefix = display(known, &[], skipped, depth, target.prefix);
                return Err(format!(
                    "conflicting key: `{prefix}` already holds a value that is not an object"
                ));
            }
        }
        depth += 1;
    }
    Err("an empty key".to_owned())
}

/// The reason recorded for a duplicate key.
pub(crate) const DUPLICATE: &str = "duplicate key: the first value in document order is kept";

fn finish(object: &mut StoredObject, last: &str, value: Value, mode: Mode) -> Result<(), Conflict> {
    // One search for the usual case, a new key.
    let existing = match object.entry(last) {
        Err(vacant) => {
            vacant.insert(last, Member::Value(value));
            return Ok(());
        }
        Ok(existing) => existing,
    };
    match mode {
        Mode::EnsureObject if existing.is_object() => Ok(()),
        Mode::Insert | Mode::EnsureObject => Err(Conflict {
            value,
            reason: DUPLICATE.to_owned(),
        }),
        Mode::Append => {
            let mut items = match std::mem::replace(existing, Member::Value(Value::Null)) {
                Member::Value(Value::Array(items)) => items,
                other => vec![other.into_value()],
            };
            match value {
                Value::Array(more) => items.extend(more),
                value => items.push(value),
            }
            *existing = Member::Value(Value::Array(items));
            Ok(())
        }
    }
}

/// `known` relative to `prefix`: `Some("")` for the prefix itself, `None` if not under it.
fn relative_to<'k>(known: &'k str, prefix: &str) -> Option<&'k str> {
    let rest = known.strip_prefix(prefix)?;
    if rest.is_empty() {
        return Some(rest);
    }
    rest.strip_prefix('.')
}

/// The segments of a canonical key: none for the empty key.
fn segments(known: &str) -> impl Iterator<Item = &str> + Clone {
    let segments = if known.is_empty() { 0 } else { usize::MAX };
    known.split('.').take(segments)
}

/// The absolute dotted key of the first `depth + 1` segments of the path, for messages.
fn display(known: &str, tail: &[&str], skipped: usize, depth: usize, prefix: &str) -> String {
    let absolute = if skipped > 0 {
        segments(prefix)
    } else {
        segments("")
    };
    absolute
        .chain(segments(known))
        .chain(tail.iter().copied())
        .take(skipped + depth + 1)
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> StoredObject {
        match value {
            Value::Object(map) => StoredObject::from_map(map),
            _ => panic!("not an object"),
        }
    }

    fn json_of(object: StoredObject) -> Value {
        Value::Object(object.into_map())
    }

    #[test]
    fn creates_objects_on_the_way_and_merges_into_them() {
        let mut root = StoredObject::new();
        let mut target = Target::root();
        place(
            &mut root,
            &mut target,
            "http.status",
            &[],
            json!(200),
            Mode::Insert,
        )
        .unwrap();
        place(
            &mut root,
            &mut target,
            "http",
            &["route.x"],
            json!("/"),
            Mode::Insert,
        )
        .unwrap();
        place(&mut root, &mut target, "", &["a.b"], json!(1), Mode::Insert).unwrap();
        assert_eq!(
            json_of(root),
            json!({"http": {"status": 200, "route.x": "/"}, "a.b": 1})
        );
    }

    #[test]
    fn duplicates_and_prefix_conflicts_come_back() {
        let mut root = object(json!({"http": {"status": 200}, "labels": {"a": "x"}}));
        let mut target = Target::root();
        let err = place(
            &mut root,
            &mut target,
            "http.status",
            &[],
            json!(201),
            Mode::Insert,
        )
        .unwrap_err();
        assert_eq!(err.value, json!(201));
        assert_eq!(err.reason, DUPLICATE);
        let err = place(
            &mut root,
            &mut target,
            "labels.a.b",
            &[],
            json!("y"),
            Mode::Insert,
        )
        .unwrap_err();
        assert_eq!(
            err.reason,
            "conflicting key: `labels.a` already holds a value that is not an object"
        );
        let err = place(
            &mut root,
            &mut target,
            "http.status",
            &[],
            json!({}),
            Mode::EnsureObject,
        )
        .unwrap_err();
        assert_eq!(err.reason, DUPLICATE);
        place(
            &mut root,
            &mut target,
            "http",
            &[],
            json!({}),
            Mode::EnsureObject,
        )
        .unwrap();
        assert_eq!(root.get("http"), Some(json!({"status": 200})));
    }

    #[test]
    fn probe_predicts_place() {
        let root = object(json!({"http": {"status": 200}, "labels": {"a": "x"}, "tags": ["a"]}));
        let target = Target::root();
        assert_eq!(
            probe(&root, &target, "http.status", Mode::Insert),
            Err(DUPLICATE.to_owned())
        );
        assert_eq!(probe(&root, &target, "http.method", Mode::Insert), Ok(()));
        assert_eq!(probe(&root, &target, "calls", Mode::Insert), Ok(()));
        assert_eq!(probe(&root, &target, "tags", Mode::Append), Ok(()));
        assert_eq!(probe(&root, &target, "http", Mode::EnsureObject), Ok(()));
        assert_eq!(
            probe(&root, &target, "labels.a.b", Mode::Insert),
            Err(
                "conflicting key: `labels.a` already holds a value that is not an object"
                    .to_owned()
            )
        );
    }

    #[test]
    fn append_makes_arrays() {
        let mut root = StoredObject::new();
        let mut target = Target::root();
        place(
            &mut root,
            &mut target,
            "tags",
            &[],
            json!("a"),
            Mode::Append,
        )
        .unwrap();
        place(
            &mut root,
            &mut target,
            "tags",
            &[],
            json!(["b", "c"]),
            Mode::Append,
        )
        .unwrap();
        place(
            &mut root,
            &mut target,
            "tags",
            &[],
            json!("d"),
            Mode::Append,
        )
        .unwrap();
        assert_eq!(root.get("tags"), Some(json!(["a", "b", "c", "d"])));
    }

    #[test]
    fn elements_take_keys_under_their_array_and_the_root_takes_the_rest() {
        let mut root = StoredObject::new();
        let mut element = StoredObject::new();
        let mut target = Target {
            element: Some(&mut element),
            prefix: "calls",
        };
        place(
            &mut root,
            &mut target,
            "calls.status",
            &[],
            json!(200),
            Mode::Insert,
        )
        .unwrap();
        place(
            &mut root,
            &mut target,
            "calls",
            &["extra"],
            json!(1),
            Mode::Insert,
        )
        .unwrap();
        place(
            &mut root,
            &mut target,
            "level",
            &[],
            json!("INFO"),
            Mode::Insert,
        )
        .unwrap();
        place(
            &mut root,
            &mut target,
            "calls.deep.x",
            &[],
            json!(1),
            Mode::Insert,
        )
        .unwrap();
        let err = place(
            &mut root,
            &mut target,
            "calls.status.y",
            &[],
            json!(1),
            Mode::Insert,
        )
        .unwrap_err();
        assert_eq!(
            err.reason,
            "conflicting key: `calls.status` already holds a value that is not an object"
        );
        assert_eq!(
            json_of(element),
            json!({"status": 200, "extra": 1, "deep": {"x": 1}})
        );
        assert_eq!(json_of(root), json!({"level": "INFO"}));
    }
}

//! Parsing a document once into [`Raw`]: a JSON tree that keeps the members of an object in
//! document order and keeps duplicate keys (serde_json's `Value` silently keeps only the
//! last), while enforcing the depth and key-count limits as it goes. Strings without escapes
//! borrow from the input.
//!
//! The same seed reads bytes and an already parsed `serde_json::Value`, so both entry points
//! share the limits and the walk.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

use crate::error::DocumentError;
use crate::limits::Limits;

/// The members of an object, in document order, duplicates included.
pub(crate) type Members<'de> = Vec<(Cow<'de, str>, Raw<'de>)>;

/// A parsed JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Raw<'de> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'de, str>),
    Array(Vec<Raw<'de>>),
    Object(Members<'de>),
}

impl Raw<'_> {
    /// What the value is, for messages: `a string`, `an object`, ...
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Raw::Null => "null",
            Raw::Bool(_) => "a boolean",
            Raw::Number(_) => "a number",
            Raw::String(_) => "a string",
            Raw::Array(_) => "an array",
            Raw::Object(_) => "an object",
        }
    }
}

/// Parses a document, which must be a JSON object within `limits`.
pub(crate) fn parse<'de>(
    document: &'de [u8],
    limits: &Limits,
) -> Result<Members<'de>, DocumentError> {
    if document.len() > limits.document_bytes_max {
        return Err(DocumentError::TooLarge {
            bytes: document.len(),
            bytes_max: limits.document_bytes_max,
        });
    }
    let state = State::new(limits);
    // UTF-8 is checked once for the whole document (fast on ASCII), so that the parser does
    // not check each string again; invalid UTF-8 takes the byte parser, whose error says
    // where it is.
    let parsed = match std::str::from_utf8(document) {
        Ok(text) => parse_with(serde_json::Deserializer::from_str(text), &state),
        Err(_) => parse_with(serde_json::Deserializer::from_slice(document), &state),
    };
    finish(parsed, &state)
}

fn parse_with<'de, R: serde_json::de::Read<'de>>(
    mut deserializer: serde_json::Deserializer<R>,
    state: &State,
) -> Result<Raw<'de>, serde_json::Error> {
    Seed::root(state)
        .deserialize(&mut deserializer)
        .and_then(|raw| deserializer.end().map(|()| raw))
}

/// Reads an already parsed document, which must be an object within the depth and key
/// limits (its size is the caller's to check).
pub(crate) fn from_value<'de>(
    document: &'de Value,
    limits: &Limits,
) -> Result<Members<'de>, DocumentError> {
    let state = State::new(limits);
    let parsed = Seed::root(&state).deserialize(document);
    finish(parsed, &state)
}

fn finish<'de>(
    parsed: Result<Raw<'de>, serde_json::Error>,
    state: &State,
) -> Result<Members<'de>, DocumentError> {
    match parsed {
        Ok(Raw::Object(members)) => Ok(members),
        // The root seed refuses anything but an object; kept total for the type's sake.
        Ok(other) => Err(DocumentError::NotAnObject {
            found: other.kind(),
        }),
        Err(err) => Err(state.error.take().unwrap_or_else(|| not_json(&err))),
    }
}

fn not_json(err: &serde_json::Error) -> DocumentError {
    let text = err.to_string();
    let position = format!(" at line {} column {}", err.line(), err.column());
    let message = text.strip_suffix(&position).unwrap_or(&text).to_owned();
    DocumentError::NotJson {
        message,
        line: err.line(),
        column: err.column(),
    }
}

/// What the seeds share: the limits, the key count so far, and the refusal, if any (serde
/// errors carry only text, so the typed error waits here).
struct State {
    depth_max: usize,
    keys_max: usize,
    keys: Cell<usize>,
    error: Cell<Option<DocumentError>>,
}

impl State {
    fn new(limits: &Limits) -> Self {
        State {
            depth_max: limits.depth_max_effective(),
            keys_max: limits.keys_max,
            keys: Cell::new(0),
            error: Cell::new(None),
        }
    }

    fn refuse<E: de::Error>(&self, error: DocumentError) -> E {
        let message = E::custom(&error);
        self.error.set(Some(error));
        message
    }
}

/// Where a value is, as a chain of links on the stack, rendered only for errors.
#[derive(Clone, Copy)]
enum Path<'p> {
    Root,
    Member { parent: &'p Path<'p>, name: &'p str },
    Element { parent: &'p Path<'p>, index: usize },
}

impl Path<'_> {
    fn render(&self) -> String {
        let mut links = Vec::new();
        let mut link = self;
        loop {
            match link {
                Path::Root => break,
                Path::Member { parent, .. } | Path::Element { parent, .. } => {
                    links.push(link);
                    link = parent;
                }
            }
        }
        let mut path = String::new();
        for link in links.iter().rev() {
            match link {
                Path::Root => {}
                Path::Member { name, .. } => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(name);
                }
                Path::Element { index, .. } => {
                    path.push('[');
                    path.push_str(&index.to_string());
                    path.push(']');
                }
            }
        }
        path
    }
}

/// Reads one value at `depth` (the number of objects and arrays around it, dotted keys
/// counting once per segment).
#[derive(Clone, Copy)]
struct Seed<'s, 'p> {
    state: &'s State,
    depth: usize,
    path: &'p Path<'p>,
}

impl<'s> Seed<'s, 'static> {
    fn root(state: &'s State) -> Self {
        Seed {
            state,
            depth: 0,
            path: &Path::Root,
        }
    }
}

impl Seed<'_, '_> {
    fn is_root(&self) -> bool {
        matches!(self.path, Path::Root)
    }

    /// A value that is not an object: refused at the root.
    fn leaf<'de, E: de::Error>(&self, raw: Raw<'de>) -> Result<Raw<'de>, E> {
        if self.is_root() {
            return Err(self
                .state
                .refuse(DocumentError::NotAnObject { found: raw.kind() }));
        }
        Ok(raw)
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_, '_> {
    type Value = Raw<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Raw<'de>, D::Error> {
        if self.depth > self.state.depth_max {
            return Err(self.state.refuse(DocumentError::TooDeep {
                path: self.path.render(),
                depth: self.depth,
                depth_max: self.state.depth_max,
            }));
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_, '_> {
    type Value = Raw<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Raw<'de>, E> {
        self.leaf(Raw::Null)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Raw<'de>, E> {
        self.leaf(Raw::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Raw<'de>, E> {
        self.leaf(Raw::Number(value.into()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Raw<'de>, E> {
        self.leaf(Raw::Number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Raw<'de>, E> {
        // JSON has no NaN or infinity and serde_json refuses numbers out of f64's range, so
        // this is only reached through a non-JSON deserializer.
        let number = Number::from_f64(value).ok_or_else(|| E::custom("a non-finite number"))?;
        self.leaf(Raw::Number(number))
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Raw<'de>, E> {
        self.leaf(Raw::String(Cow::Borrowed(value)))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Raw<'de>, E> {
        self.leaf(Raw::String(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Raw<'de>, E> {
        self.leaf(Raw::String(Cow::Owned(value)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw<'de>, A::Error> {
        if self.is_root() {
            return Err(self
                .state
                .refuse(DocumentError::NotAnObject { found: "an array" }));
        }
        let mut elements = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        loop {
            let path = Path::Element {
                parent: self.path,
                index: elements.len(),
            };
            let seed = Seed {
                state: self.state,
                depth: self.depth + 1,
                path: &path,
            };
            match seq.next_element_seed(seed)? {
                Some(element) => elements.push(element),
                None => return Ok(Raw::Array(elements)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw<'de>, A::Error> {
        // serde_json gives no size hint; a log line's root has a dozen keys or more.
        let expected = if self.is_root() { 16 } else { 0 };
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(expected).min(64));
        while let Some(Key(name)) = map.next_key()? {
            let path = Path::Member {
                parent: self.path,
                name: &name,
            };
            let keys = self.state.keys.get() + 1;
            self.state.keys.set(keys);
            if keys > self.state.keys_max {
                return Err(self.state.refuse(DocumentError::TooManyKeys {
                    path: path.render(),
                    keys_max: self.state.keys_max,
                }));
            }
            let segments = 1 + name.bytes().filter(|&byte| byte == b'.').count();
            let seed = Seed {
                state: self.state,
                depth: self.depth + segments,
                path: &path,
            };
            let value = map.next_value_seed(seed)?;
            members.push((name, value));
        }
        Ok(Raw::Object(members))
    }
}

/// An object key, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a string key")
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(value)))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(depth_max: usize, keys_max: usize) -> Limits {
        Limits {
            depth_max,
            keys_max,
            ..Limits::default()
        }
    }

    #[test]
    fn keeps_duplicates_and_document_order() {
        let members = parse(br#"{"b":1,"a":2,"b":3}"#, &Limits::default()).unwrap();
        let names: Vec<&str> = members.iter().map(|(name, _)| name.as_ref()).collect();
        assert_eq!(names, ["b", "a", "b"]);
        assert_eq!(members[2].1, Raw::Number(3.into()));
    }

    #[test]
    fn borrows_strings_without_escapes() {
        let members = parse(br#"{"a":"plain","b\n":"esc\"aped"}"#, &Limits::default()).unwrap();
        assert!(matches!(members[0].0, Cow::Borrowed("a")));
        assert!(matches!(members[0].1, Raw::String(Cow::Borrowed("plain"))));
        assert!(matches!(&members[1].0, Cow::Owned(name) if name == "b\n"));
        assert!(matches!(&members[1].1, Raw::String(Cow::Owned(s)) if s == "esc\"aped"));
    }

    #[test]
    fn size_is_checked_before_parsing() {
        let limits = Limits {
            document_bytes_max: 4,
            ..Limits::default()
        };
        // Not even JSON: the size comes first.
        let err = parse(b"12345", &limits).unwrap_err();
        assert_eq!(
            err,
            DocumentError::TooLarge {
                bytes: 5,
                bytes_max: 4
            }
        );
        assert_eq!(
            err.to_string(),
            "the document is 5 bytes, over the limit of 4 bytes (document_bytes_max)"
        );
        assert!(parse(b"{}", &limits).is_ok());
    }

    #[test]
    fn not_json_names_line_and_column() {
        let err = parse(b"{\n  \"a\": tru }", &Limits::default()).unwrap_err();
        let DocumentError::NotJson { line, column, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!((*line, *column), (2, 11));
        assert_eq!(
            err.to_string(),
            "the document is not valid JSON: expected ident at line 2, column 11"
        );
        assert!(matches!(
            parse(b"{} {}", &Limits::default()),
            Err(DocumentError::NotJson { .. })
        ));
        assert!(matches!(
            parse(b"", &Limits::default()),
            Err(DocumentError::NotJson { .. })
        ));
    }

    #[test]
    fn the_root_must_be_an_object() {
        for (document, found) in [
            (&b"[1]"[..], "an array"),
            (b"\"x\"", "a string"),
            (b"12", "a number"),
            (b"null", "null"),
            (b"true", "a boolean"),
        ] {
            let err = parse(document, &Limits::default()).unwrap_err();
            assert_eq!(err, DocumentError::NotAnObject { found });
        }
        assert_eq!(
            DocumentError::NotAnObject { found: "an array" }.to_string(),
            "the document is an array, not a JSON object"
        );
    }

    #[test]
    fn depth_counts_objects_arrays_and_dotted_segments() {
        let limits = limits(2, 1000);
        assert!(parse(br#"{"a":{"b":1}}"#, &limits).is_ok());
        assert!(parse(br#"{"a.b":1}"#, &limits).is_ok());
        assert!(parse(br#"{"a":[1]}"#, &limits).is_ok());
        // An empty container at the limit holds nothing deeper.
        assert!(parse(br#"{"a":{"b":{}}}"#, &limits).is_ok());

        let err = parse(br#"{"a":{"b":{"c":1}}}"#, &limits).unwrap_err();
        assert_eq!(
            err,
            DocumentError::TooDeep {
                path: "a.b.c".to_owned(),
                depth: 3,
                depth_max: 2
            }
        );
        assert_eq!(
            err.to_string(),
            "`a.b.c` is nested 3 levels deep, over the limit of 2 levels (depth_max)"
        );
        let err = parse(br#"{"a.b":{"c.d":1}}"#, &limits).unwrap_err();
        assert!(
            matches!(err, DocumentError::TooDeep { ref path, depth: 4, .. } if path == "a.b.c.d")
        );
        let err = parse(br#"{"x":1,"a":[[1]]}"#, &limits).unwrap_err();
        assert!(
            matches!(err, DocumentError::TooDeep { ref path, depth: 3, .. } if path == "a[0][0]")
        );
    }

    #[test]
    fn depth_limit_has_a_ceiling() {
        let deep = format!("{}1{}", r#"{"a":"#.repeat(120), "}".repeat(120));
        let err = parse(deep.as_bytes(), &limits(usize::MAX, usize::MAX)).unwrap_err();
        assert!(
            matches!(
                err,
                DocumentError::TooDeep {
                    depth: 101,
                    depth_max: 100,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn keys_are_counted_at_every_level() {
        let limits = limits(20, 3);
        assert!(parse(br#"{"a":{"b":1},"c":[{"d":1}]}"#, &limits).is_err());
        assert!(parse(br#"{"a":{"b":1},"c":[1]}"#, &limits).is_ok());
        let err = parse(br#"{"a":{"b":1},"c":[{"d":1}]}"#, &limits).unwrap_err();
        assert_eq!(
            err,
            DocumentError::TooManyKeys {
                path: "c[0].d".to_owned(),
                keys_max: 3
            }
        );
        assert_eq!(
            err.to_string(),
            "the document has more than 3 keys, counted at every level (keys_max); \
             the limit was passed at `c[0].d`"
        );
    }

    #[test]
    fn reads_parsed_values_with_the_same_limits() {
        let value: Value = serde_json::from_str(r#"{"a":{"b":{"c":1}},"s":"x"}"#).unwrap();
        let members = from_value(&value, &Limits::default()).unwrap();
        assert_eq!(members.len(), 2);
        assert!(matches!(
            from_value(&value, &limits(2, 1000)),
            Err(DocumentError::TooDeep { .. })
        ));
        assert!(matches!(
            from_value(&Value::Null, &Limits::default()),
            Err(DocumentError::NotAnObject { found: "null" })
        ));
    }
}

//! The walk: one pass over the parsed document in document order, resolving every key
//! against the dictionary, coercing values, placing them into the stored document and
//! collecting what to index, what was ignored and which keys are unknown.
//!
//! State kept while walking:
//!
//! - `name`: the dotted name being resolved (`http.status`, `log.level`, `foo.bar`);
//! - `known_len`: how much of `name` is a canonical key (the object the walk is in);
//! - `tail[tail_start..]`: the names, as sent, of the unknown objects entered since.
//!
//! So a value found at `name` is stored at `name[..known_len]` split at its dots, then the
//! tail segments, then its own name as sent.

use std::borrow::Cow;

use caravan_schema::{Dictionary, FieldDef, FieldType};
use serde_json::{Map, Value};

use crate::coerce::{self, Rejected};
use crate::object::StoredObject;
use crate::place::{self, Conflict, Mode, Target};
use crate::raw::Raw;
use crate::timestamp::Instant;
use crate::{
    IGNORED_KEY, Ignored, IgnoredKind, IndexedValue, Normalized, TIMESTAMP_KEY, TypedValue,
};

/// The reason recorded for an `_ignored` member that is not a list of records.
const RESERVED_IGNORED: &str = "`_ignored` is reserved for the values Caravan could not store \
     under their key: it holds records of {key, value, reason}";

/// Normalises a parsed document (the crate docs give the rules).
pub(crate) fn normalize_members(
    members: &[(Cow<'_, str>, Raw<'_>)],
    dictionary: Option<&Dictionary>,
    ingest_time_ms: i64,
) -> Normalized {
    let mut walker = Walker::new(dictionary);
    let mut root = StoredObject::new();
    walker.walk_object(&mut root, &mut Target::root(), members);
    walker.finish(root, ingest_time_ms)
}

struct Walker<'d, 'r> {
    dictionary: Option<&'d Dictionary>,
    name: String,
    known_len: usize,
    tail: Vec<&'r str>,
    tail_start: usize,
    /// How many objects the walk is in; 1 at the document root.
    nesting: usize,
    /// Reused buffer for key paths when converting values.
    scratch: String,
    timestamp: Option<Instant>,
    indexed: Vec<IndexedValue>,
    ignored: Vec<Ignored>,
    /// Well-formed `_ignored` records sent with the document, kept as they are.
    carried: Vec<Value>,
    unknown_keys: Vec<String>,
    ignored_above: Vec<String>,
    coerced_values: u32,
    renamed_keys: u32,
}

impl<'d, 'r> Walker<'d, 'r> {
    fn new(dictionary: Option<&'d Dictionary>) -> Self {
        Walker {
            dictionary,
            name: String::with_capacity(64),
            known_len: 0,
            tail: Vec::new(),
            tail_start: 0,
            nesting: 0,
            scratch: String::new(),
            timestamp: None,
            indexed: Vec::with_capacity(16),
            ignored: Vec::new(),
            carried: Vec::new(),
            unknown_keys: Vec::new(),
            ignored_above: Vec::new(),
            coerced_values: 0,
            renamed_keys: 0,
        }
    }

    fn walk_object<'de: 'r>(
        &mut self,
        root: &mut StoredObject,
        target: &mut Target<'_>,
        members: &'r [(Cow<'de, str>, Raw<'de>)],
    ) {
        self.nesting += 1;
        for (member, value) in members {
            let parent_len = self.name.len();
            if self.nesting > 1 {
                self.name.push('.');
            }
            let member_start = self.name.len();
            self.name.push_str(member);
            self.walk_member(root, target, member, member_start, value);
            self.name.truncate(parent_len);
        }
        self.nesting -= 1;
    }

    fn walk_member<'de: 'r>(
        &mut self,
        root: &mut StoredObject,
        target: &mut Target<'_>,
        member: &'r str,
        member_start: usize,
        value: &'r Raw<'de>,
    ) {
        let at_root = self.nesting == 1 && target.element.is_none();
        if at_root && member == IGNORED_KEY {
            return self.carry_ignored(value);
        }
        let Some(def) = self.dictionary.and_then(|d| d.resolve(&self.name)) else {
            if at_root && member == TIMESTAMP_KEY {
                return self.walk_timestamp(value);
            }
            return self.walk_unresolved(root, target, member, member_start, value);
        };
        // Only map value definitions have a `*` in their key; the free key is the name.
        let free = def.key.ends_with(".*");
        if !free && def.key != self.name {
            self.renamed_keys += 1;
        }
        if !free && def.key == TIMESTAMP_KEY {
            return self.walk_timestamp(value);
        }
        match def.field_type {
            FieldType::Object | FieldType::Map => self.walk_container(root, target, def, value),
            FieldType::Struct => self.walk_struct(root, target, def, value),
            FieldType::Keyword
            | FieldType::Text
            | FieldType::Long
            | FieldType::Double
            | FieldType::Boolean
            | FieldType::Date
            | FieldType::Binary => self.walk_value(root, target, def, free, value),
        }
    }

    /// An object or map key: `name` is its canonical key (neither can be an alias).
    fn walk_container<'de: 'r>(
        &mut self,
        root: &mut StoredObject,
        target: &mut Target<'_>,
        def: &'d FieldDef,
        value: &'r Raw<'de>,
    ) {
        debug_assert_eq!(self.name, def.key);
        match value {
            Raw::Object(members) if members.is_empty() => {
                let result = place::place(
                    root,
                    target,
                    &self.name,
                    &[],
                    empty_object(),
                    Mode::EnsureObject,
                );
                self.settle_here(result);
            }
            Raw::Object(members) => self.descend(root, target, members),
            Raw::Array(items) => self.walk_object_array(root, target, def.repeated, value, items),
            Raw::Null => {
                let result = place::place(
                    root,
                    target,
                    &self.name,
                    &[],
                    Value::Null,
                    mode(def.repeated),
                );
                self.settle_here(result);
            }
            other => {
                let reason = format!(
                    "expected an object (`{}` holds keys), got {}",
                    self.name,
                    other.kind()
                );
                let value = self.stored_here(other);
                self.ignore(self.name.clone(), value, IgnoredKind::Malformed, reason);
            }
        }
    }

    /// Walks the members of a known object (or map, or free key holding an object) whose
    /// canonical key is `name`.
    fn descend<'de: 'r>(
        &mut self,
        root: &mut StoredObject,
        target: &mut Target<'_>,
        members: &'r [(Cow<'de, str>, Raw<'de>)],
    ) {
        let saved = (self.known_len, self.tail_start);
        self.known_len = self.name.len();
        self.tail_start = self.tail.len();
        self.walk_object(root, target, members);
        (self.known_len, self.tail_start) = saved;
    }

    /// An array sent for an object key: each object is normalised into an element of its
    /// own; other elements are ignored.
    fn walk_object_array<'de: 'r>(
        &mut self,
        root: &mut StoredObject,
        target: &mut Target<'_>,
        repeated: bool,
        value: &'r Raw<'de>,
        items: &'r [Raw<'de>],
    ) {
        let key = self.name.clone();
        if let Err(reason) = place::probe(root, target, &key, mode(repeated)) {
            let value = self.stored_here(value);
            return self.ignore(key, value, IgnoredKind::Duplicate, reason);
        }
        let mut elements = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Raw::Object(members) => {
                    let mut element = StoredObject::new();
                    if !members.is_empty() {
                        let mut element_target = Target {
                            element: Some(&mut element),
                            prefix: &key,
                        };
                        self.descend(root, &mut element_target, members);
                    }
                    elements.push(Value::Object(element.into_map()));
                }
                Raw::Null => elements.push(Value::Null),
                other => {
                    let reason = format!(
                        "expected an object (`{key}` holds keys), got {} in an array",
                        other.kind()
                    );
                    let value = self.stored_at(&key, other);
                    self.ignore(key.clone(), value, IgnoredKind::Malformed, reason);
                }
            }
        }
        if elements.is_empty() && !items.is_empty() {
            return;
        }
        let result = place::place(
            root,
            target,
            &key,
            &[],
            Value::Array(elements),
            mode(repeated),
        );
        if let Err(conflict) = result {
            self.conflict(key, conflict);
        }
    }

    /// A struct key: its members are stored as sent, merged member by member with what is
    /// already stored there (so `context.a` and `context: {a}` are the same key).
    fn walk_struct<'de: 'r>(
        &mut self,
        root: &mut StoredObject,
        target: &mut Target<'_>,
        def: &'d FieldDef,
        value: &'r Raw<'de>,
    ) {
        let key = def.key.as_str();
        match value {
            Raw::Object(members) if members.is_empty() => {
                let result =
                    place::place(root, target, key, &[], empty_object(), Mode::EnsureObject);
                self.settle(key, result);
            }
            Raw::Object(members) => {
                for (member, value) in members {
                    self.store_struct_member(root, target, key, member, value);
                }
            }
            Raw::Array(items) => {
                let mut elements = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Raw::Object(_) | Raw::Null => elements.push(self.stored_at(key, item)),
                        other => {
                            let reason = format!(
                                "expected an object (`{key}` is a struct), got {} in an array",
                                other.kind()
                            );
                            let value = self.stored_at(key, other);
                            self.ignore(key.to_owned(), value, IgnoredKind::Malformed, reason);
                        }
                    }
                }
                if elements.is_empty() && !items.is_empty() {
                    return;
                }
                let result = place::place(
                    root,
                    target,
                    key,
                    &[],
                    Value::Array(elements),
                    mode(def.repeated),
                );
                self.settle(key, result);
            }
            Raw::Null => {
                let result = place::place(root, target, key, &[], Value::Null, mode(def.repeated));
                self.settle(key, result);
            }
            other => {
                let reason = format!(
                    "expected an object (`{key}` is a struct), got {}",
                    other.kind()
                );
                let value = self.stored_at(key, other);
                self.ignore(key.to_owned(), value, IgnoredKind::Malformed, reason);
            }
        }
    }

    /// One member of a struct, stored whole under its name as sent.
    fn store_struct_member<'de: 'r>(
        &mut self,
        root: &mut StoredObject,
        target: &mut Target<'_>,
        key: &str,
        member: &str,
        value: &'r Raw<'de>,
    ) {
        let full = format!("{key}.{member}");
        let value = self.stored_at(&full, value);
        let result = place::place(root, target, key, &[member], value, Mode::Insert);
        if let Err(conflict) = result {
            self.conflict(full, conflict);
        }
    }

    /// A key with a value type (or a map free key).
    fn walk_value<'de: 'r>(
        &mut self,
        root: &mut StoredObject,
        target: &mut Target<'_>,
        def: &'d FieldDef,
        free: bool,
        value: &'r Raw<'de>,
    ) {
        match value {
            // A free key holding an object: its members extend the free key (`labels.a.b`).
            Raw::Object(members) if free && members.is_empty() => {
                let result = place::place(
                    root,
                    target,
                    &self.name,
                    &[],
                    empty_object(),
                    Mode::EnsureObject,
                );
                return self.settle_here(result);
            }
            Raw::Object(members) if free => return self.descend(root, target, members),
            _ => {}
        }
        let key: Cow<'d, str> = if free {
            Cow::Owned(self.name.clone())
        } else {
            Cow::Borrowed(def.key.as_str())
        };
        match value {
            Raw::Array(items) => self.store_array(root, target, def, &key, items),
            scalar => match coerce::coerce(scalar, def) {
                Ok(coerced) => {
                    let result =
                        place::place(root, target, &key, &[], coerced.stored, mode(def.repeated));
                    match result {
                        Ok(()) => {
                            self.coerced_values += u32::from(coerced.changed);
                            if let Some(typed) = coerced.typed {
                                self.index(&key, def, typed);
                            }
                        }
                        Err(conflict) => self.conflict(key.into_owned(), conflict),
                    }
                }
                Err(rejected) => self.reject(&key, scalar, rejected),
            },
        }
    }

    /// An array for a value key: each element coerced on its own; bad elements are ignored,
    /// the rest stored as an array.
    fn store_array<'de: 'r>(
        &mut self,
        root: &mut StoredObject,
        target: &mut Target<'_>,
        def: &'d FieldDef,
        key: &str,
        items: &'r [Raw<'de>],
    ) {
        let mut stored = Vec::with_capacity(items.len());
        let mut typed = Vec::with_capacity(items.len());
        let mut changed = 0;
        for item in items {
            match coerce::coerce(item, def) {
                Ok(coerced) => {
                    stored.push(coerced.stored);
                    typed.extend(coerced.typed);
                    changed += u32::from(coerced.changed);
                }
                Err(rejected) => self.reject(key, item, rejected),
            }
        }
        if stored.is_empty() && !items.is_empty() {
            return;
        }
        match place::place(
            root,
            target,
            key,
            &[],
            Value::Array(stored),
            mode(def.repeated),
        ) {
            Ok(()) => {
                self.coerced_values += changed;
                for typed in typed {
                    self.index(key, def, typed);
                }
            }
            Err(conflict) => self.conflict(key.to_owned(), conflict),
        }
    }

    /// `@timestamp` (or an alias of it): one date, kept aside and stored at the end.
    fn walk_timestamp(&mut self, value: &Raw<'_>) {
        let result = match value {
            Raw::Array(_) => Err(Rejected {
                kind: IgnoredKind::Malformed,
                reason: "expected one date, got an array".to_owned(),
            }),
            other => coerce::date(other),
        };
        match result {
            Ok((_, coerced)) if self.timestamp.is_some() => self.ignore(
                TIMESTAMP_KEY.to_owned(),
                coerced.stored,
                IgnoredKind::Duplicate,
                place::DUPLICATE.to_owned(),
            ),
            Ok((instant, coerced)) => {
                self.timestamp = Some(instant);
                self.coerced_values += u32::from(coerced.changed);
            }
            Err(rejected) => self.reject(TIMESTAMP_KEY, value, rejected),
        }
    }

    /// A name the dictionary does not know: stored under the longest prefix that is a known
    /// object or struct, or as sent where it is.
    fn walk_unresolved<'de: 'r>(
        &mut self,
        root: &mut StoredObject,
        target: &mut Target<'_>,
        member: &'r str,
        member_start: usize,
        value: &'r Raw<'de>,
    ) {
        if let Some((dot, def)) = self.container_prefix(member_start) {
            let rest = &member[dot - member_start + 1..];
            if def.field_type == FieldType::Struct {
                return self.store_struct_member(root, target, &def.key, rest, value);
            }
            if self.tail.len() == self.tail_start {
                // A known object: the rest of the name is an unknown key inside it.
                let saved = self.known_len;
                self.known_len = dot;
                self.walk_unknown(root, target, rest, value);
                self.known_len = saved;
                return;
            }
        }
        self.walk_unknown(root, target, member, value);
    }

    /// The longest proper prefix of `name` ending inside the current member that resolves,
    /// if it is an object or a struct: its end and definition.
    fn container_prefix(&self, member_start: usize) -> Option<(usize, &'d FieldDef)> {
        let dictionary = self.dictionary?;
        for (offset, _) in self.name[member_start..].rmatch_indices('.') {
            let dot = member_start + offset;
            match dictionary.resolve(&self.name[..dot]) {
                None => continue,
                Some(def) if matches!(def.field_type, FieldType::Object | FieldType::Struct) => {
                    return Some((dot, def));
                }
                Some(_) => return None,
            }
        }
        None
    }

    /// An unknown key named `segment` (as sent) at the current place: objects are entered
    /// (their members may be known: `log: {level}` is the alias `log.level`), anything else is
    /// stored as sent and reported.
    fn walk_unknown<'de: 'r>(
        &mut self,
        root: &mut StoredObject,
        target: &mut Target<'_>,
        segment: &'r str,
        value: &'r Raw<'de>,
    ) {
        let mode = match value {
            Raw::Object(members) if !members.is_empty() => {
                self.tail.push(segment);
                self.walk_object(root, target, members);
                self.tail.pop();
                return;
            }
            Raw::Object(_) => Mode::EnsureObject,
            _ => Mode::Insert,
        };
        let stored = self.stored_here(value);
        self.tail.push(segment);
        let result = place::place(
            root,
            target,
            &self.name[..self.known_len],
            &self.tail[self.tail_start..],
            stored,
            mode,
        );
        self.tail.pop();
        match result {
            // An empty object is a place, not a value: listing it would depend on whether the
            // same object has members elsewhere in the document.
            Ok(()) if mode == Mode::EnsureObject => {}
            Ok(()) => self.unknown_keys.push(self.name.clone()),
            Err(conflict) => self.conflict(self.name.clone(), conflict),
        }
    }

    /// The `_ignored` member at the root: well-formed records are carried over, anything else
    /// is itself ignored.
    fn carry_ignored(&mut self, value: &Raw<'_>) {
        let Raw::Array(items) = value else {
            let stored = self.stored_at(IGNORED_KEY, value);
            return self.ignore(
                IGNORED_KEY.to_owned(),
                stored,
                IgnoredKind::Reserved,
                RESERVED_IGNORED.to_owned(),
            );
        };
        for item in items {
            let stored = self.stored_at(IGNORED_KEY, item);
            if is_record(item) {
                self.carried.push(stored);
            } else {
                self.ignore(
                    IGNORED_KEY.to_owned(),
                    stored,
                    IgnoredKind::Reserved,
                    RESERVED_IGNORED.to_owned(),
                );
            }
        }
    }

    fn index(&mut self, key: &str, def: &FieldDef, value: TypedValue) {
        if !def.indexed {
            return;
        }
        if let (TypedValue::Keyword(text), Some(max)) = (&value, def.ignore_above) {
            let max = max as usize;
            if text.len() > max && text.chars().count() > max {
                self.ignored_above.push(key.to_owned());
                return;
            }
        }
        self.indexed.push(IndexedValue {
            key: key.to_owned(),
            value,
        });
    }

    fn reject(&mut self, key: &str, value: &Raw<'_>, rejected: Rejected) {
        let stored = self.stored_at(key, value);
        self.ignore(key.to_owned(), stored, rejected.kind, rejected.reason);
    }

    /// Records a placement that failed at the current name, if it did.
    fn settle_here(&mut self, result: Result<(), Conflict>) {
        if let Err(conflict) = result {
            self.conflict(self.name.clone(), conflict);
        }
    }

    fn settle(&mut self, key: &str, result: Result<(), Conflict>) {
        if let Err(conflict) = result {
            self.conflict(key.to_owned(), conflict);
        }
    }

    fn conflict(&mut self, key: String, conflict: Conflict) {
        self.ignore(key, conflict.value, IgnoredKind::Duplicate, conflict.reason);
    }

    fn ignore(&mut self, key: String, value: Value, kind: IgnoredKind, reason: String) {
        self.ignored.push(Ignored {
            key,
            value,
            kind,
            reason,
        });
    }

    /// `value` as stored, its path being the current name.
    fn stored_here(&mut self, value: &Raw<'_>) -> Value {
        self.scratch.clear();
        self.scratch.push_str(&self.name);
        let mut path = std::mem::take(&mut self.scratch);
        let stored = to_value(value, &mut path, &mut self.ignored);
        self.scratch = path;
        stored
    }

    /// `value` as stored, its path being `key`.
    fn stored_at(&mut self, key: &str, value: &Raw<'_>) -> Value {
        let mut path = std::mem::take(&mut self.scratch);
        path.clear();
        path.push_str(key);
        let stored = to_value(value, &mut path, &mut self.ignored);
        self.scratch = path;
        stored
    }

    fn finish(mut self, mut root: StoredObject, ingest_time_ms: i64) -> Normalized {
        let (instant, timestamp_defaulted) = match self.timestamp {
            Some(instant) => (instant, false),
            None => (Instant::from_millis_clamped(ingest_time_ms), true),
        };
        let timestamp = Value::String(instant.format());
        if let Some(taken) = root.insert(TIMESTAMP_KEY, timestamp) {
            // Only a schema giving `@timestamp` keys of its own can get here.
            self.ignore(
                TIMESTAMP_KEY.to_owned(),
                taken,
                IgnoredKind::Reserved,
                "`@timestamp` is reserved for the document's date".to_owned(),
            );
        }
        let timestamp_indexed = self
            .dictionary
            .and_then(|d| d.get(TIMESTAMP_KEY))
            .is_some_and(|def| def.indexed);
        if timestamp_indexed {
            self.indexed.push(IndexedValue {
                key: TIMESTAMP_KEY.to_owned(),
                value: TypedValue::Date(instant.millis()),
            });
        }
        if !self.carried.is_empty() || !self.ignored.is_empty() {
            let mut records = std::mem::take(&mut self.carried);
            records.extend(self.ignored.iter().map(Ignored::to_record));
            debug_assert!(!root.contains_key(IGNORED_KEY));
            root.insert(IGNORED_KEY, Value::Array(records));
        }
        self.unknown_keys.sort_unstable();
        self.unknown_keys.dedup();
        Normalized {
            source: root,
            timestamp_ms: instant.millis(),
            timestamp_defaulted,
            indexed: self.indexed,
            ignored: self.ignored,
            unknown_keys: self.unknown_keys,
            ignored_above: self.ignored_above,
            coerced_values: self.coerced_values,
            renamed_keys: self.renamed_keys,
        }
    }
}

fn mode(repeated: bool) -> Mode {
    if repeated { Mode::Append } else { Mode::Insert }
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// Whether `value` is an `_ignored` record: exactly `key` (a string), `value` and `reason`
/// (a string).
fn is_record(value: &Raw<'_>) -> bool {
    let Raw::Object(members) = value else {
        return false;
    };
    let mut seen = [false; 3];
    for (name, value) in members {
        let slot = match (name.as_ref(), value) {
            ("key", Raw::String(_)) => 0,
            ("value", _) => 1,
            ("reason", Raw::String(_)) => 2,
            _ => return false,
        };
        if std::mem::replace(&mut seen[slot], true) {
            return false;
        }
    }
    seen == [true; 3]
}

/// Converts a value as sent to the stored form. A duplicate key inside an object keeps the
/// first value; the others are recorded in `ignored` under their dotted path.
fn to_value(value: &Raw<'_>, path: &mut String, ignored: &mut Vec<Ignored>) -> Value {
    match value {
        Raw::Null => Value::Null,
        Raw::Bool(value) => Value::Bool(*value),
        Raw::Number(number) => Value::Number(number.clone()),
        Raw::String(text) => Value::String(text.clone().into_owned()),
        Raw::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| to_value(item, path, ignored))
                .collect(),
        ),
        Raw::Object(members) => {
            let mut map = Map::new();
            for (name, value) in members {
                let len = path.len();
                path.push('.');
                path.push_str(name);
                let stored = to_value(value, path, ignored);
                if map.contains_key(name.as_ref()) {
                    ignored.push(Ignored {
                        key: path.clone(),
                        value: stored,
                        kind: IgnoredKind::Duplicate,
                        reason: place::DUPLICATE.to_owned(),
                    });
                } else {
                    map.insert(name.clone().into_owned(), stored);
                }
                path.truncate(len);
            }
            Value::Object(map)
        }
    }
}

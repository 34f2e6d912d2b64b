//! The stored document while it is built: objects whose members are kept sorted by name in a
//! vector, written out as JSON at the end.
//!
//! Why not `serde_json::Map` (a `BTreeMap`): every value of every document is placed by key
//! path from the root, and in the server the map's lookups (a linear scan of each node, one
//! `memcmp` call per member), its two lookups per object on the path and its node allocations
//! were a third of the normaliser's time (BENCHMARKS.md, session 5). A sorted vector finds a
//! member in a binary search that mostly decides on the first byte, finds or inserts it in the
//! same search, allocates once per object, and gives the map's key order, so the stored bytes
//! are the same.
//!
//! Values placed whole (coerced scalars, arrays, unknown keys' values as sent) stay
//! `serde_json::Value`s: only the objects `place` walks into are [`StoredObject`]s. An object
//! placed whole becomes one when a later path goes through it.

use std::cmp::Ordering;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

/// An object of the stored document: members sorted by name, each name once.
#[derive(Debug, Clone, Default)]
pub struct StoredObject {
    members: Vec<(String, Member)>,
    /// The member found or inserted last: the next path often goes through it again
    /// (`kubernetes.pod` after `kubernetes.namespace`).
    last: usize,
}

/// A member of a [`StoredObject`].
#[derive(Debug, Clone)]
pub(crate) enum Member {
    /// An object that paths were placed into.
    Object(StoredObject),
    /// A value placed whole.
    Value(Value),
}

impl Member {
    /// The member as a JSON value.
    pub(crate) fn into_value(self) -> Value {
        match self {
            Member::Object(object) => Value::Object(object.into_map()),
            Member::Value(value) => value,
        }
    }

    /// Whether the member is an object (built, or placed whole).
    pub(crate) fn is_object(&self) -> bool {
        matches!(self, Member::Object(_) | Member::Value(Value::Object(_)))
    }
}

impl StoredObject {
    /// An empty object.
    pub(crate) fn new() -> Self {
        StoredObject::default()
    }

    /// How many members the object has.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the object has no member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    fn search(&self, name: &str) -> Result<usize, usize> {
        self.members
            .binary_search_by(|(member, _)| compare_names(member, name))
    }

    /// The member named `name`.
    pub(crate) fn member(&self, name: &str) -> Option<&Member> {
        self.search(name).ok().map(|at| &self.members[at].1)
    }

    /// The member named `name` as a JSON value (built objects are converted).
    pub fn get(&self, name: &str) -> Option<Value> {
        self.member(name).cloned().map(Member::into_value)
    }

    /// Whether a member is named `name`.
    pub fn contains_key(&self, name: &str) -> bool {
        self.search(name).is_ok()
    }

    /// The member named `name` for changing it, or the place to insert it.
    pub(crate) fn entry(&mut self, name: &str) -> Result<&mut Member, Vacant<'_>> {
        let last = self.last;
        if self
            .members
            .get(last)
            .is_some_and(|(member, _)| member == name)
        {
            return Ok(&mut self.members[last].1);
        }
        match self.search(name) {
            Ok(at) => {
                self.last = at;
                Ok(&mut self.members[at].1)
            }
            Err(at) => Err(Vacant { object: self, at }),
        }
    }

    /// Sets the member `name`, giving back the one it replaces.
    pub(crate) fn insert(&mut self, name: &str, value: Value) -> Option<Value> {
        match self.entry(name) {
            Ok(member) => Some(std::mem::replace(member, Member::Value(value)).into_value()),
            Err(vacant) => {
                vacant.insert(name, Member::Value(value));
                None
            }
        }
    }

    /// The object at `name`, created if absent, converted if an object was placed there whole;
    /// `None` if something else is there.
    pub(crate) fn child_object(&mut self, name: &str) -> Option<&mut StoredObject> {
        let member = match self.entry(name) {
            Ok(member) => member,
            Err(vacant) => vacant.insert(name, Member::Object(StoredObject::new())),
        };
        if let Member::Value(Value::Object(map)) = member {
            let map = std::mem::take(map);
            *member = Member::Object(StoredObject::from_map(map));
        }
        match member {
            Member::Object(object) => Some(object),
            Member::Value(_) => None,
        }
    }

    /// The object of a JSON map (its members stay values).
    pub fn from_map(map: Map<String, Value>) -> Self {
        // A map iterates in key order: the vector is sorted as it is built.
        StoredObject {
            members: map
                .into_iter()
                .map(|(name, value)| (name, Member::Value(value)))
                .collect(),
            last: 0,
        }
    }

    /// The object as a JSON map.
    pub fn into_map(self) -> Map<String, Value> {
        self.members
            .into_iter()
            .map(|(name, member)| (name, member.into_value()))
            .collect()
    }

    /// The object as a JSON map, leaving it as it is.
    pub fn to_map(&self) -> Map<String, Value> {
        self.clone().into_map()
    }

    /// Appends the object as compact JSON to `out`, members in name order (as
    /// `serde_json::to_writer` writes a map).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // Serialising into a Vec cannot fail: serde_json's only errors there are I/O errors
        // (none for a Vec), non-string keys and non-finite floats, which a `Value` cannot hold.
        serde_json::to_writer(out, self).expect("a stored object serialises into a Vec");
    }
}

/// `a.cmp(b)`, deciding on the first byte when it differs, as it mostly does between the
/// members of an object: the general comparison is a call to `memcmp`.
fn compare_names(a: &str, b: &str) -> Ordering {
    match (a.as_bytes().first(), b.as_bytes().first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

/// Equal when they are the same JSON object, whether their objects were built by paths or
/// placed whole.
impl PartialEq for StoredObject {
    fn eq(&self, other: &Self) -> bool {
        self.to_map() == other.to_map()
    }
}

/// Where a missing member goes (from [`StoredObject::entry`]).
pub(crate) struct Vacant<'o> {
    object: &'o mut StoredObject,
    at: usize,
}

impl<'o> Vacant<'o> {
    /// Inserts the member, keeping the order.
    pub(crate) fn insert(self, name: &str, member: Member) -> &'o mut Member {
        self.object
            .members
            .insert(self.at, (name.to_owned(), member));
        self.object.last = self.at;
        &mut self.object.members[self.at].1
    }
}

impl Serialize for StoredObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.members.len()))?;
        for (name, member) in &self.members {
            match member {
                Member::Object(object) => map.serialize_entry(name, object)?,
                Member::Value(value) => map.serialize_entry(name, value)?,
            }
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn members_stay_sorted_and_write_as_a_map_would() {
        let mut object = StoredObject::new();
        for name in ["level", "@timestamp", "http", "a.b", "zeta", "Z", ""] {
            assert!(object.insert(name, json!(name.len())).is_none());
        }
        assert_eq!(object.insert("http", json!(0)), Some(json!(4)));
        let child = object.child_object("kubernetes").unwrap();
        child.insert("pod", json!("p"));
        child.insert("namespace", json!("n"));
        assert!(object.child_object("http").is_none());
        let mut written = Vec::new();
        object.write_json(&mut written);
        let map = object.to_map();
        assert_eq!(written, serde_json::to_vec(&map).unwrap());
        assert_eq!(
            Value::Object(map),
            json!({"level": 5, "@timestamp": 10, "http": 0, "a.b": 3, "zeta": 4, "Z": 1, "": 0,
                   "kubernetes": {"pod": "p", "namespace": "n"}})
        );
    }

    #[test]
    fn names_compare_as_strings() {
        let names = ["", "a", "a\0", "ab", "b", "ba", "\u{e9}", "zz", "Z", "@t"];
        for a in names {
            for b in names {
                assert_eq!(compare_names(a, b), a.cmp(b), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn an_object_placed_whole_is_entered_as_built() {
        let Value::Object(map) = json!({"foo": {"b": 1}, "x": 2}) else {
            unreachable!()
        };
        let mut object = StoredObject::from_map(map);
        object.child_object("foo").unwrap().insert("a", json!(0));
        assert!(object.member("foo").unwrap().is_object());
        assert_eq!(object.get("foo"), Some(json!({"a": 0, "b": 1})));
        assert!(object.contains_key("x") && !object.contains_key("y"));
    }
}

//! The compiled field dictionary: every key of a schema, its type and how it is indexed,
//! with O(1) lookup of keys, aliases and map free keys for the log normaliser.
//!
//! A [`Dictionary`] is immutable. It is built by the compiler, by [`Dictionary::extend`] or by
//! deserialisation, and every path goes through the same invariant checks, so a dictionary
//! read from disk is as trustworthy as a freshly compiled one:
//!
//! - fields are sorted by key, and no name (key or alias) appears twice;
//! - every proper prefix of a key (`kubernetes` for `kubernetes.pod`) is an `object` key;
//! - a `map` key has a `map_value` (and no other key does), whose key is `<map>.*`;
//! - no alias lies under a map or inside a struct.
//!
//! The lookup index is rebuilt on construction; the serialised form holds only the fields.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ExtensionConflict, ExtensionConflictKind};
use crate::validate;

/// The type of a key, as the log store and Elasticsearch see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// An exact string: proto `string` and enums.
    Keyword,
    /// Analysed full text: proto `string` with `text: true`.
    Text,
    /// A signed 64-bit integer: every proto integer type.
    Long,
    /// A 64-bit float: proto `float` and `double`.
    Double,
    /// Proto `bool`.
    Boolean,
    /// `google.protobuf.Timestamp`: an RFC 3339 string or epoch milliseconds in JSON logs.
    Date,
    /// Proto `bytes`: base64 in JSON, stored, never indexed.
    Binary,
    /// A nested message: its fields are keys of their own (`http.status`).
    Object,
    /// `map<string, X>`: an object with free keys, each holding an `X` (see `map_value`).
    Map,
    /// `google.protobuf.Struct`: any JSON object, stored, never indexed.
    Struct,
}

impl FieldType {
    /// The lowercase name used in the dictionary JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Keyword => "keyword",
            FieldType::Text => "text",
            FieldType::Long => "long",
            FieldType::Double => "double",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::Binary => "binary",
            FieldType::Object => "object",
            FieldType::Map => "map",
            FieldType::Struct => "struct",
        }
    }

    /// Whether keys of this type hold a single value (not objects, maps or structs).
    pub fn is_value(self) -> bool {
        !matches!(self, FieldType::Object | FieldType::Map | FieldType::Struct)
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One key of the dictionary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    /// The dotted key (`kubernetes.namespace`, `my/fieldname`); `<map>.*` for map values.
    pub key: String,
    /// The key's type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Other full keys normalised to this one at ingest and in queries.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Whether the proto field is `repeated`: the value may be a JSON array.
    #[serde(default)]
    pub repeated: bool,
    /// Whether the key is searchable (false for `index: false`, bytes and structs).
    pub indexed: bool,
    /// Whether queries naming no field search this key.
    #[serde(default)]
    pub default_field: bool,
    /// Keyword values longer than this are stored but not indexed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_above: Option<u32>,
    /// For enums: the only values allowed, in declaration order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enum_values: Vec<String>,
    /// For maps: the definition every free key shares, with key `<map>.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_value: Option<Box<FieldDef>>,
}

/// The compiled schema: every key, sorted, plus the lookup index.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "DictionaryData")]
pub struct Dictionary {
    /// The fully qualified root message of the common schema.
    root: String,
    /// The root messages of the extensions merged in, in merge order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    extensions: Vec<String>,
    /// Every key, sorted by key.
    fields: Vec<FieldDef>,
    /// Keys and aliases to their index in `fields`; rebuilt, never serialised. Built with
    /// `fields` in [`Dictionary::new`] and never mutated, so every index is in bounds.
    /// foldhash: every key of every ingested document is looked up here, and the table's
    /// keys come from the schema, not from documents (SipHash's flood resistance buys
    /// nothing).
    #[serde(skip)]
    by_name: HashMap<String, usize, foldhash::fast::RandomState>,
}

/// The serialised form, checked into a [`Dictionary`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DictionaryData {
    root: String,
    #[serde(default)]
    extensions: Vec<String>,
    fields: Vec<FieldDef>,
}

impl TryFrom<DictionaryData> for Dictionary {
    type Error = Error;

    fn try_from(data: DictionaryData) -> Result<Self, Error> {
        Dictionary::new(data.root, data.extensions, data.fields)
    }
}

impl PartialEq for Dictionary {
    fn eq(&self, other: &Self) -> bool {
        // `by_name` is derived from `fields`.
        self.root == other.root
            && self.extensions == other.extensions
            && self.fields == other.fields
    }
}

impl Eq for Dictionary {}

/// A resolved name: the stored key and its definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookup<'a> {
    /// The key to store the value under: the key itself for a key or an alias, the name as
    /// given for a map free key (`labels.team`).
    pub key: &'a str,
    /// The definition; for a map free key, the map's value definition (key `labels.*`).
    pub def: &'a FieldDef,
}

impl Dictionary {
    /// Builds a dictionary, sorting the fields and checking the invariants (module docs).
    pub(crate) fn new(
        root: String,
        extensions: Vec<String>,
        mut fields: Vec<FieldDef>,
    ) -> Result<Self, Error> {
        fields.sort_by(|a, b| a.key.cmp(&b.key));
        let mut by_name = HashMap::with_capacity_and_hasher(fields.len() * 2, Default::default());
        for (index, field) in fields.iter().enumerate() {
            check_field(field)?;
            if by_name.insert(field.key.clone(), index).is_some() {
                return Err(invalid(format!("key `{}` appears twice", field.key)));
            }
        }
        for field in &fields {
            for prefix in prefixes(&field.key) {
                match by_name.get(prefix).map(|&index| &fields[index]) {
                    Some(parent) if parent.field_type == FieldType::Object => {}
                    Some(parent) => {
                        return Err(invalid(format!(
                            "key `{}` lies under `{prefix}`, which is {} rather than object",
                            field.key, parent.field_type
                        )));
                    }
                    None => {
                        return Err(invalid(format!(
                            "key `{}` lies under `{prefix}`, which is not a key",
                            field.key
                        )));
                    }
                }
            }
        }
        for (index, field) in fields.iter().enumerate() {
            for alias in &field.aliases {
                if let Some(&other) = by_name.get(alias.as_str()) {
                    return Err(invalid(format!(
                        "alias `{alias}` of `{}` is already taken by `{}`",
                        field.key, fields[other].key
                    )));
                }
                by_name.insert(alias.clone(), index);
            }
        }
        let dictionary = Dictionary {
            root,
            extensions,
            fields,
            by_name,
        };
        for field in &dictionary.fields {
            for alias in &field.aliases {
                if let Some(container) = dictionary.free_key_container(alias) {
                    return Err(invalid(format!(
                        "alias `{alias}` of `{}` lies under `{}`, whose sub-keys are free",
                        field.key, container.key
                    )));
                }
            }
        }
        Ok(dictionary)
    }

    /// The fully qualified name of the common schema's root message.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The root messages of the tenant extensions merged in by [`Dictionary::extend`].
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// Every key, sorted by key.
    pub fn fields(&self) -> &[FieldDef] {
        &self.fields
    }

    /// The keys searched when a query names no field, sorted.
    pub fn default_fields(&self) -> impl Iterator<Item = &FieldDef> {
        self.fields.iter().filter(|field| field.default_field)
    }

    /// The definition of a key, by its exact key (aliases and free keys do not resolve).
    pub fn get(&self, key: &str) -> Option<&FieldDef> {
        let &index = self.by_name.get(key)?;
        let field = &self.fields[index];
        (field.key == key).then_some(field)
    }

    /// Resolves a key, an alias or a map free key (`labels.team`) to its definition, in
    /// O(1) for keys and aliases and O(depth) for free keys. For a free key this is the
    /// map's value definition, whose key is `labels.*`; see [`Dictionary::lookup`] for the
    /// key to store the value under.
    pub fn resolve(&self, name: &str) -> Option<&FieldDef> {
        if let Some(&index) = self.by_name.get(name) {
            return Some(&self.fields[index]);
        }
        let (container, free_key) = self.split_free_key(name)?;
        if container.field_type != FieldType::Map
            || free_key.split('.').any(|segment| segment.is_empty())
        {
            return None;
        }
        container.map_value.as_deref()
    }

    /// Like [`Dictionary::resolve`], also giving the key a value named `name` is stored
    /// under: `userId` for the alias `user_id`, `labels.team` itself for a free key.
    pub fn lookup<'a>(&'a self, name: &'a str) -> Option<Lookup<'a>> {
        let def = self.resolve(name)?;
        // Only map value definitions have a `*` in their key: keys and aliases cannot.
        let key = if def.key.ends_with(".*") {
            name
        } else {
            def.key.as_str()
        };
        Some(Lookup { key, def })
    }

    /// Merges a tenant extension into this (common) dictionary. The extension may add keys,
    /// including under common objects, but never redefine a common key or alias, nor reach
    /// under a common map or struct. Every conflict is reported.
    pub fn extend(&self, extension: &Dictionary) -> Result<Dictionary, Error> {
        let mut conflicts = Vec::new();
        let mut added = Vec::new();
        for field in &extension.fields {
            let conflict = |kind| ExtensionConflict {
                name: field.key.clone(),
                kind,
            };
            if let Some(common) = self.get(&field.key) {
                let shared_object = common.field_type == FieldType::Object
                    && field.field_type == FieldType::Object
                    && field.aliases.is_empty();
                if !shared_object {
                    conflicts.push(conflict(ExtensionConflictKind::KeyRedefined {
                        common_type: common.field_type,
                        extension_type: field.field_type,
                    }));
                }
                continue;
            }
            if let Some(common) = self.alias_owner(&field.key) {
                conflicts.push(conflict(ExtensionConflictKind::KeyIsCommonAlias {
                    common_key: common.key.clone(),
                }));
            } else if let Some(container) = self.free_key_container(&field.key) {
                conflicts.push(conflict(ExtensionConflictKind::UnderCommonFreeKeys {
                    common_key: container.key.clone(),
                }));
            }
            for alias in &field.aliases {
                let conflict = |kind| ExtensionConflict {
                    name: alias.clone(),
                    kind,
                };
                if self.get(alias).is_some() {
                    conflicts.push(conflict(ExtensionConflictKind::AliasIsCommonKey {
                        extension_key: field.key.clone(),
                    }));
                } else if let Some(common) = self.alias_owner(alias) {
                    conflicts.push(conflict(ExtensionConflictKind::AliasIsCommonAlias {
                        extension_key: field.key.clone(),
                        common_key: common.key.clone(),
                    }));
                } else if let Some(container) = self.free_key_container(alias) {
                    conflicts.push(conflict(ExtensionConflictKind::UnderCommonFreeKeys {
                        common_key: container.key.clone(),
                    }));
                }
            }
            added.push(field.clone());
        }
        if !conflicts.is_empty() {
            return Err(Error::ExtensionConflicts { conflicts });
        }
        let mut fields = self.fields.clone();
        fields.extend(added);
        let mut extensions = self.extensions.clone();
        extensions.push(extension.root.clone());
        extensions.extend(extension.extensions.iter().cloned());
        Dictionary::new(self.root.clone(), extensions, fields)
    }

    /// The key that has `alias` as an alias, if any.
    fn alias_owner(&self, alias: &str) -> Option<&FieldDef> {
        let &index = self.by_name.get(alias)?;
        let field = &self.fields[index];
        (field.key != alias).then_some(field)
    }

    /// The closest map or struct key that `name` lies under, if any.
    fn free_key_container(&self, name: &str) -> Option<&FieldDef> {
        let (container, _) = self.split_free_key(name)?;
        matches!(container.field_type, FieldType::Map | FieldType::Struct).then_some(container)
    }

    /// Splits `name` at its longest prefix that is a known name, returning that prefix's
    /// definition and the rest.
    fn split_free_key<'a>(&self, name: &'a str) -> Option<(&FieldDef, &'a str)> {
        let mut end = name.len();
        while let Some(dot) = name[..end].rfind('.') {
            if let Some(&index) = self.by_name.get(&name[..dot]) {
                return Some((&self.fields[index], &name[dot + 1..]));
            }
            end = dot;
        }
        None
    }
}

/// The proper prefixes of a dotted key: `a`, `a.b` for `a.b.c`.
fn prefixes(key: &str) -> impl Iterator<Item = &str> {
    key.match_indices('.').map(move |(dot, _)| &key[..dot])
}

fn invalid(message: String) -> Error {
    Error::InvalidDictionary(message)
}

/// Checks one field on its own: names, and that its attributes fit its type.
fn check_field(field: &FieldDef) -> Result<(), Error> {
    validate::check_key(&field.key)
        .map_err(|reason| invalid(format!("key `{}`: {reason}", field.key)))?;
    for alias in &field.aliases {
        validate::check_key(alias)
            .map_err(|reason| invalid(format!("alias `{alias}` of `{}`: {reason}", field.key)))?;
    }
    if field.field_type == FieldType::Map {
        let Some(value) = &field.map_value else {
            return Err(invalid(format!("map `{}` has no map_value", field.key)));
        };
        if value.key != format!("{}.*", field.key) || !value.field_type.is_value() {
            return Err(invalid(format!(
                "map `{}` needs a value definition with key `{}.*` and a value type",
                field.key, field.key
            )));
        }
        if !value.aliases.is_empty() || value.map_value.is_some() {
            return Err(invalid(format!(
                "the value definition of map `{}` cannot have aliases or a map value",
                field.key
            )));
        }
    } else if field.map_value.is_some() {
        return Err(invalid(format!(
            "`{}` is {}, only maps have a map_value",
            field.key, field.field_type
        )));
    }
    if !field.enum_values.is_empty() && field.field_type != FieldType::Keyword {
        return Err(invalid(format!(
            "`{}` is {}, only keywords have enum values",
            field.key, field.field_type
        )));
    }
    if matches!(field.field_type, FieldType::Object | FieldType::Map) && !field.aliases.is_empty() {
        return Err(invalid(format!(
            "`{}` is {} and cannot have aliases",
            field.key, field.field_type
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn leaf(key: &str, field_type: FieldType) -> FieldDef {
        FieldDef {
            key: key.to_owned(),
            field_type,
            aliases: Vec::new(),
            repeated: false,
            indexed: true,
            default_field: false,
            ignore_above: None,
            enum_values: Vec::new(),
            map_value: None,
        }
    }

    fn map(key: &str, value_type: FieldType) -> FieldDef {
        FieldDef {
            map_value: Some(Box::new(leaf(&format!("{key}.*"), value_type))),
            ..leaf(key, FieldType::Map)
        }
    }

    fn common() -> Dictionary {
        let fields = vec![
            FieldDef {
                aliases: vec!["user_id".to_owned(), "user-id".to_owned()],
                ..leaf("userId", FieldType::Keyword)
            },
            leaf("http", FieldType::Object),
            leaf("http.status", FieldType::Long),
            map("labels", FieldType::Keyword),
            leaf("payload", FieldType::Struct),
        ];
        Dictionary::new("test.LogSchema".to_owned(), Vec::new(), fields).unwrap()
    }

    #[test]
    fn resolves_keys_aliases_and_free_keys() {
        let dictionary = common();
        assert_eq!(dictionary.resolve("userId").unwrap().key, "userId");
        assert_eq!(dictionary.resolve("user-id").unwrap().key, "userId");
        assert_eq!(dictionary.lookup("user_id").unwrap().key, "userId");
        assert_eq!(
            dictionary.resolve("http.status").unwrap().field_type,
            FieldType::Long
        );

        let free = dictionary.lookup("labels.team").unwrap();
        assert_eq!(free.key, "labels.team");
        assert_eq!(free.def.key, "labels.*");
        assert_eq!(free.def.field_type, FieldType::Keyword);
        assert!(dictionary.resolve("labels.a.b").is_some());

        assert!(dictionary.resolve("labels.").is_none());
        assert!(dictionary.resolve("http.unknown").is_none());
        assert!(dictionary.resolve("userId.x").is_none());
        assert!(dictionary.resolve("payload.anything").is_none());
        assert!(dictionary.resolve("nope").is_none());
        assert!(dictionary.get("user_id").is_none());
    }

    #[test]
    fn serialised_form_round_trips_and_rebuilds_the_index() {
        let dictionary = common();
        let json = serde_json::to_string(&dictionary).unwrap();
        assert!(!json.contains("by_name"), "{json}");
        let back: Dictionary = serde_json::from_str(&json).unwrap();
        assert_eq!(back, dictionary);
        assert_eq!(back.resolve("user_id").unwrap().key, "userId");
    }

    #[test]
    fn deserialisation_checks_invariants() {
        let orphan = r#"{"root":"r","fields":[{"key":"a.b","type":"long","indexed":true}]}"#;
        let err = serde_json::from_str::<Dictionary>(orphan).unwrap_err();
        assert!(err.to_string().contains("`a.b` lies under `a`"), "{err}");

        let taken = r#"{"root":"r","fields":[
            {"key":"a","type":"long","indexed":true},
            {"key":"b","type":"long","indexed":true,"aliases":["a"]}]}"#;
        let err = serde_json::from_str::<Dictionary>(taken).unwrap_err();
        assert!(err.to_string().contains("alias `a` of `b`"), "{err}");

        let unknown = r#"{"root":"r","fields":[],"extra":1}"#;
        assert!(serde_json::from_str::<Dictionary>(unknown).is_err());
    }

    #[test]
    fn extension_adds_keys_and_shares_objects() {
        let extension = Dictionary::new(
            "payments.LogSchema".to_owned(),
            Vec::new(),
            vec![
                leaf("http", FieldType::Object),
                leaf("http.route", FieldType::Keyword),
                FieldDef {
                    aliases: vec!["amount_cents".to_owned()],
                    ..leaf("amount", FieldType::Long)
                },
            ],
        )
        .unwrap();
        let merged = common().extend(&extension).unwrap();
        assert_eq!(merged.extensions(), ["payments.LogSchema".to_owned()]);
        assert_eq!(merged.resolve("amount_cents").unwrap().key, "amount");
        assert_eq!(
            merged.resolve("http.route").unwrap().field_type,
            FieldType::Keyword
        );
        assert_eq!(merged.resolve("user_id").unwrap().key, "userId");
        assert_eq!(merged.fields().len(), common().fields().len() + 2);
    }

    #[test]
    fn extension_conflicts_are_all_listed() {
        let extension = Dictionary::new(
            "payments.LogSchema".to_owned(),
            Vec::new(),
            vec![
                // Redefines a common key with another type.
                leaf("userId", FieldType::Long),
                // Is a common alias.
                leaf("user_id", FieldType::Keyword),
                // Aliases a common key and a common alias.
                FieldDef {
                    aliases: vec!["http".to_owned(), "user-id".to_owned()],
                    ..leaf("customer", FieldType::Keyword)
                },
                // Reaches under a common struct and a common map.
                FieldDef {
                    aliases: vec!["labels.team".to_owned()],
                    ..leaf("team", FieldType::Keyword)
                },
                leaf("labels", FieldType::Object),
            ],
        )
        .unwrap();
        let Err(Error::ExtensionConflicts { conflicts }) = common().extend(&extension) else {
            panic!("extension should conflict");
        };
        let names: Vec<_> = conflicts.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "http",
                "user-id",
                "labels",
                "labels.team",
                "userId",
                "user_id"
            ]
        );
        let text = Error::ExtensionConflicts { conflicts }.to_string();
        assert!(
            text.contains("key `userId` (long) redefines the common key `userId` (keyword)"),
            "{text}"
        );
        assert!(
            text.contains("key `user_id` is an alias of the common key `userId`"),
            "{text}"
        );
        assert!(
            text.contains("alias `http` of `customer` is a common key"),
            "{text}"
        );
        assert!(
            text.contains(
                "alias `user-id` of `customer` is already an alias of the common key `userId`"
            ),
            "{text}"
        );
        assert!(
            text.contains("`labels.team` lies under the common key `labels`"),
            "{text}"
        );
        assert!(
            text.contains("key `labels` (object) redefines the common key `labels` (map)"),
            "{text}"
        );
    }
}

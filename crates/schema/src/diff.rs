//! The evolution check between two dictionaries: what a schema change adds, removes and
//! breaks. A type change of an existing key is a conflict: indices made from the old and the
//! new template would map the key differently, which is exactly an Elasticsearch mapping
//! conflict across an index pattern.

use std::collections::BTreeMap;
use std::fmt;

use crate::dictionary::{Dictionary, FieldDef, FieldType};

/// A key and its type, as listed in a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySummary {
    /// The key.
    pub key: String,
    /// Its type.
    pub field_type: FieldType,
}

/// Aliases added to or removed from a key present on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasChange {
    /// The key.
    pub key: String,
    /// Aliases only in the new dictionary, sorted.
    pub added: Vec<String>,
    /// Aliases only in the old dictionary, sorted.
    pub removed: Vec<String>,
}

/// An existing key whose type changes: a mapping conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeConflict {
    /// The key (`labels.*` when a map's value type changes).
    pub key: String,
    /// The old type.
    pub old: FieldType,
    /// The new type.
    pub new: FieldType,
}

/// A change to an existing key that keeps its type (indexing, default field, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeChange {
    /// The key.
    pub key: String,
    /// The attribute, as named in the dictionary JSON (`indexed`, `ignore_above`, ...).
    pub attribute: &'static str,
    /// The old value, displayed.
    pub old: String,
    /// The new value, displayed.
    pub new: String,
}

/// What changes from one dictionary to another. Every list is sorted by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaDiff {
    /// Keys only in the new dictionary.
    pub added: Vec<KeySummary>,
    /// Keys only in the old dictionary.
    pub removed: Vec<KeySummary>,
    /// Alias changes of keys in both.
    pub alias_changes: Vec<AliasChange>,
    /// Type changes of keys in both: mapping conflicts.
    pub conflicts: Vec<TypeConflict>,
    /// Other changes of keys in both.
    pub changes: Vec<AttributeChange>,
}

impl SchemaDiff {
    /// Whether an existing key changes type: the new schema would cause mapping conflicts.
    pub fn has_conflicts(&self) -> bool {
        !self.conflicts.is_empty()
    }

    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.alias_changes.is_empty()
            && self.conflicts.is_empty()
            && self.changes.is_empty()
    }
}

/// Compares two dictionaries, `old` being the one in use.
pub fn diff(old: &Dictionary, new: &Dictionary) -> SchemaDiff {
    let old_fields: BTreeMap<&str, &FieldDef> = by_key(old);
    let new_fields: BTreeMap<&str, &FieldDef> = by_key(new);
    let mut result = SchemaDiff::default();

    for (key, field) in &new_fields {
        if !old_fields.contains_key(key) {
            result.added.push(summary(field));
        }
    }
    for (key, old_field) in &old_fields {
        let Some(new_field) = new_fields.get(key) else {
            result.removed.push(summary(old_field));
            continue;
        };
        compare(old_field, new_field, &mut result);
    }
    result
}

fn by_key(dictionary: &Dictionary) -> BTreeMap<&str, &FieldDef> {
    dictionary
        .fields()
        .iter()
        .map(|field| (field.key.as_str(), field))
        .collect()
}

fn summary(field: &FieldDef) -> KeySummary {
    KeySummary {
        key: field.key.clone(),
        field_type: field.field_type,
    }
}

fn compare(old: &FieldDef, new: &FieldDef, result: &mut SchemaDiff) {
    if old.field_type != new.field_type {
        result.conflicts.push(TypeConflict {
            key: old.key.clone(),
            old: old.field_type,
            new: new.field_type,
        });
        return;
    }
    if let (Some(old_value), Some(new_value)) = (&old.map_value, &new.map_value) {
        // A map's attributes are its values' attributes: compare those only.
        compare(old_value, new_value, result);
        return;
    }

    let mut added: Vec<String> = new
        .aliases
        .iter()
        .filter(|alias| !old.aliases.contains(alias))
        .cloned()
        .collect();
    let mut removed: Vec<String> = old
        .aliases
        .iter()
        .filter(|alias| !new.aliases.contains(alias))
        .cloned()
        .collect();
    if !added.is_empty() || !removed.is_empty() {
        added.sort();
        removed.sort();
        result.alias_changes.push(AliasChange {
            key: old.key.clone(),
            added,
            removed,
        });
    }

    let mut change = |attribute, old_value: String, new_value: String| {
        if old_value != new_value {
            result.changes.push(AttributeChange {
                key: old.key.clone(),
                attribute,
                old: old_value,
                new: new_value,
            });
        }
    };
    let optional = |value: Option<u32>| value.map_or_else(|| "none".to_owned(), |v| v.to_string());
    change(
        "repeated",
        old.repeated.to_string(),
        new.repeated.to_string(),
    );
    change("indexed", old.indexed.to_string(), new.indexed.to_string());
    change(
        "default_field",
        old.default_field.to_string(),
        new.default_field.to_string(),
    );
    change(
        "ignore_above",
        optional(old.ignore_above),
        optional(new.ignore_above),
    );
    change(
        "enum_values",
        old.enum_values.join("|"),
        new.enum_values.join("|"),
    );
}

impl fmt::Display for SchemaDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(f, "no changes");
        }
        for conflict in &self.conflicts {
            writeln!(
                f,
                "! conflict  {}: {} -> {} (Elasticsearch mapping conflict)",
                conflict.key, conflict.old, conflict.new
            )?;
        }
        for key in &self.added {
            writeln!(f, "+ added     {} ({})", key.key, key.field_type)?;
        }
        for key in &self.removed {
            writeln!(f, "- removed   {} ({})", key.key, key.field_type)?;
        }
        for change in &self.alias_changes {
            let mut parts: Vec<String> = change.added.iter().map(|a| format!("+{a}")).collect();
            parts.extend(change.removed.iter().map(|a| format!("-{a}")));
            writeln!(f, "~ aliases   {}: {}", change.key, parts.join(" "))?;
        }
        for change in &self.changes {
            writeln!(
                f,
                "~ changed   {}: {} {} -> {}",
                change.key, change.attribute, change.old, change.new
            )?;
        }
        Ok(())
    }
}

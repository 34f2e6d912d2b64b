//! Naming rules for keys and aliases, and the schema-wide uniqueness checks: no two fields
//! store under one key, and an alias never collides with a key or another alias.

use std::collections::HashMap;

use crate::dictionary::{FieldDef, FieldType};
use crate::error::{Issue, IssueKind, Location};

/// The key naming rule, for documentation and error help.
pub const KEY_NAME_RULE: &str = "a key is 1 to 16 dot-separated segments, at most 255 bytes; \
     a segment is 1 or more of A-Z a-z 0-9 _ @ / - and does not start with `_`";

/// The longest key, in bytes.
pub const KEY_LEN_MAX: usize = 255;

/// The most segments a key may have (nesting depth); Elasticsearch's own default limit is 20.
pub const KEY_DEPTH_MAX: usize = 16;

/// Checks one key segment (a field name or a `name` option).
pub(crate) fn check_segment(segment: &str) -> Result<(), &'static str> {
    if segment.is_empty() {
        return Err("a segment cannot be empty");
    }
    if segment.starts_with('_') {
        return Err("a segment cannot start with `_` (reserved for Elasticsearch metadata)");
    }
    if segment.contains('.') {
        return Err("a name is a single segment: nest messages instead of using `.`");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '@' | '/' | '-');
    if !segment.chars().all(allowed) {
        return Err("only A-Z a-z 0-9 _ @ / - are allowed");
    }
    Ok(())
}

/// Checks a full dotted key or alias.
pub(crate) fn check_key(key: &str) -> Result<(), &'static str> {
    if key.len() > KEY_LEN_MAX {
        return Err("longer than 255 bytes");
    }
    if key.split('.').count() > KEY_DEPTH_MAX {
        return Err("more than 16 segments");
    }
    key.split('.').try_for_each(check_segment)
}

/// A key found in the schema, with where it was declared.
#[derive(Debug, Clone)]
pub(crate) struct Collected {
    pub(crate) def: FieldDef,
    pub(crate) location: Location,
}

/// Checks uniqueness across the whole schema: duplicate keys, alias names, aliases
/// colliding with keys or with each other, and aliases under maps. Reports every issue.
pub(crate) fn check_names(collected: &[Collected]) -> Vec<Issue> {
    let mut issues = Vec::new();
    let issue = |item: &Collected, kind| Issue {
        location: item.location.clone(),
        key: Some(item.def.key.clone()),
        kind,
    };

    let mut keys: HashMap<&str, &Collected> = HashMap::new();
    for item in collected {
        if let Some(first) = keys.get(item.def.key.as_str()) {
            issues.push(issue(
                item,
                IssueKind::DuplicateKey {
                    first: first.location.clone(),
                },
            ));
        } else {
            keys.insert(&item.def.key, item);
        }
    }

    let mut aliases: HashMap<&str, &Collected> = HashMap::new();
    for item in collected {
        for alias in &item.def.aliases {
            if let Err(reason) = check_key(alias) {
                issues.push(issue(
                    item,
                    IssueKind::InvalidKeyName {
                        name: alias.clone(),
                        reason,
                    },
                ));
                continue;
            }
            let (owner, other_is_alias) =
                match (keys.get(alias.as_str()), aliases.get(alias.as_str())) {
                    (Some(owner), _) => (Some(*owner), false),
                    (None, Some(owner)) => (Some(*owner), true),
                    (None, None) => (None, false),
                };
            if let Some(owner) = owner {
                issues.push(issue(
                    item,
                    IssueKind::AliasCollision {
                        alias: alias.clone(),
                        other_key: owner.def.key.clone(),
                        other_is_alias,
                        other: owner.location.clone(),
                    },
                ));
                continue;
            }
            if let Some(map_key) = container_of(alias, &keys) {
                issues.push(issue(
                    item,
                    IssueKind::AliasUnderMap {
                        alias: alias.clone(),
                        map_key: map_key.to_owned(),
                    },
                ));
                continue;
            }
            aliases.insert(alias, item);
        }
    }
    issues
}

/// The map or struct key that `name` lies under, if any.
fn container_of<'a>(name: &str, keys: &HashMap<&'a str, &Collected>) -> Option<&'a str> {
    name.match_indices('.').find_map(|(dot, _)| {
        let (&key, item) = keys.get_key_value(&name[..dot])?;
        matches!(item.def.field_type, FieldType::Map | FieldType::Struct).then_some(key)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_rule() {
        for good in [
            "userId",
            "my/fieldname",
            "@timestamp",
            "user-id",
            "a_b",
            "HTTP2",
        ] {
            assert_eq!(check_segment(good), Ok(()), "{good}");
        }
        for bad in ["", "_id", "a.b", "a b", "é", "a*", "a:b"] {
            assert!(check_segment(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_rule() {
        assert_eq!(check_key("kubernetes.namespace"), Ok(()));
        assert!(check_key("a..b").is_err());
        assert!(check_key(&["a"; 16].join(".")).is_ok());
        assert!(check_key(&["a"; 17].join(".")).is_err());
        assert!(check_key(&"a".repeat(256)).is_err());
    }
}

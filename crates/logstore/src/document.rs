//! What the store is given and what it gives back: documents, typed values, tenant names.
//!
//! Validation lives here and does no I/O: the store calls it before anything reaches the
//! write-ahead log, so a rejected batch changes nothing.

use crate::day::{Day, TIMESTAMP_MS_END, TIMESTAMP_MS_MIN};
use crate::error::LogStoreError;

/// Longest accepted tenant name (a DNS label).
pub const TENANT_BYTES_MAX: usize = 63;

/// Longest accepted `_id`, in bytes (Elasticsearch's bound).
pub const ID_BYTES_MAX: usize = 512;

/// Longest accepted dictionary key, in bytes.
pub const FIELD_KEY_BYTES_MAX: usize = 256;

/// How a document is written when its `_id` may already exist.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WriteMode {
    /// Add the document. The caller guarantees the `_id` is new (generated ids), or has checked
    /// with [`crate::LogStore::id_exists`] (Elasticsearch `create`). The cheap, common path.
    #[default]
    Create,
    /// Elasticsearch `index` with an explicit `_id`: delete any document of the tenant with the
    /// same `_id` (in every partition, committed or not), then add this one. Costs a term lookup
    /// per partition of the tenant.
    Upsert,
}

/// A typed value of a dictionary key, already normalised by the caller: the normaliser's
/// [`caravan_normalize::TypedValue`] (keyword, text, long, double, boolean, date in epoch
/// milliseconds). Non-finite doubles are stored in `_source` but not indexed.
pub use caravan_normalize::TypedValue as FieldValue;

/// One log document handed to [`crate::LogStore::append`].
#[derive(Clone, Debug, PartialEq)]
pub struct LogDocument {
    /// The tenant (a DNS label): the first level of partitioning.
    pub tenant: String,
    /// The `_id`, unique within the tenant (1 to [`ID_BYTES_MAX`] bytes).
    pub id: String,
    /// `@timestamp` in milliseconds since the Unix epoch; its UTC day is the partition.
    pub timestamp_ms: i64,
    /// The original document (`_source`): a JSON object, stored as given and not re-parsed.
    pub source: Vec<u8>,
    /// The dictionary keys of the document with their typed values (dotted keys, e.g.
    /// `kubernetes.namespace`). Only these are searchable, besides `_id` and `@timestamp`.
    pub fields: Vec<(String, FieldValue)>,
    /// What happens when the `_id` already exists.
    pub mode: WriteMode,
}

impl LogDocument {
    /// The UTC day of the document's timestamp: its partition within the tenant.
    pub fn day(&self) -> Day {
        Day::from_timestamp_ms(self.timestamp_ms)
    }
}

/// A document read back from the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredLog {
    /// The `_id`.
    pub id: String,
    /// `@timestamp` in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The `_source` bytes, as appended.
    pub source: Vec<u8>,
}

/// A half-open time range `[from_ms, to_ms)` in milliseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRange {
    /// Inclusive start.
    pub from_ms: i64,
    /// Exclusive end.
    pub to_ms: i64,
}

impl TimeRange {
    /// Everything the store can hold.
    pub const ALL: TimeRange = TimeRange {
        from_ms: TIMESTAMP_MS_MIN,
        to_ms: TIMESTAMP_MS_END,
    };

    /// The days the range overlaps, or `None` when it is empty.
    pub fn days(self) -> Option<std::ops::RangeInclusive<Day>> {
        let from_ms = self.from_ms.max(TIMESTAMP_MS_MIN);
        let to_ms = self.to_ms.min(TIMESTAMP_MS_END);
        if from_ms >= to_ms {
            return None;
        }
        Some(Day::from_timestamp_ms(from_ms)..=Day::from_timestamp_ms(to_ms - 1))
    }

    /// Whether the range covers all of `day`.
    pub fn covers(self, day: Day) -> bool {
        self.from_ms <= day.start_ms() && day.end_ms() <= self.to_ms
    }
}

/// Checks that `tenant` is a DNS label; tenant names become directory names.
pub fn validate_tenant(tenant: &str) -> Result<(), LogStoreError> {
    let reason = if tenant.is_empty() {
        Some("is empty")
    } else if tenant.len() > TENANT_BYTES_MAX {
        Some("is longer than 63 bytes")
    } else if !tenant
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Some("may only contain a-z, 0-9 and '-'")
    } else if tenant.starts_with('-') || tenant.ends_with('-') {
        Some("may not start or end with '-'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(LogStoreError::InvalidTenant {
            tenant: tenant.chars().take(TENANT_BYTES_MAX + 1).collect(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Checks one document against the store's rules.
pub(crate) fn validate_document(document: &LogDocument) -> Result<(), LogStoreError> {
    validate_tenant(&document.tenant)?;
    let invalid = |reason: String| LogStoreError::InvalidDocument {
        tenant: document.tenant.clone(),
        id: document.id.chars().take(64).collect(),
        reason,
    };
    if document.id.is_empty() {
        return Err(invalid("_id is empty".to_string()));
    }
    if document.id.len() > ID_BYTES_MAX {
        return Err(invalid(format!(
            "_id is {} bytes long, more than {ID_BYTES_MAX}",
            document.id.len()
        )));
    }
    if !(TIMESTAMP_MS_MIN..TIMESTAMP_MS_END).contains(&document.timestamp_ms) {
        return Err(invalid(format!(
            "@timestamp {} ms is outside 1900-01-01..2200-01-01",
            document.timestamp_ms
        )));
    }
    for (key, _) in &document.fields {
        if key.is_empty() || key.len() > FIELD_KEY_BYTES_MAX {
            return Err(invalid(format!(
                "field key {:?} must be 1 to {FIELD_KEY_BYTES_MAX} bytes",
                key.chars().take(64).collect::<String>()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(tenant: &str, id: &str, timestamp_ms: i64) -> LogDocument {
        LogDocument {
            tenant: tenant.to_string(),
            id: id.to_string(),
            timestamp_ms,
            source: b"{}".to_vec(),
            fields: vec![],
            mode: WriteMode::Create,
        }
    }

    #[test]
    fn tenant_names_are_dns_labels() {
        for good in ["a", "team-1", "0", &"a".repeat(63)] {
            assert!(validate_tenant(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a_b",
            "a/b",
            "..",
            "é",
            &"a".repeat(64),
        ] {
            assert!(validate_tenant(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn documents_are_checked_before_anything_is_written() {
        assert!(validate_document(&document("t", "1", 0)).is_ok());
        assert!(validate_document(&document("T", "1", 0)).is_err());
        assert!(validate_document(&document("t", "", 0)).is_err());
        assert!(validate_document(&document("t", &"x".repeat(513), 0)).is_err());
        assert!(validate_document(&document("t", "1", TIMESTAMP_MS_END)).is_err());
        let mut with_empty_key = document("t", "1", 0);
        with_empty_key
            .fields
            .push((String::new(), FieldValue::Long(1)));
        let error = validate_document(&with_empty_key).unwrap_err().to_string();
        assert!(error.contains("field key"), "{error}");
    }

    #[test]
    fn time_range_days_and_coverage() {
        let day = Day::from_ymd(2026, 3, 1).unwrap();
        let range = TimeRange {
            from_ms: day.start_ms(),
            to_ms: day.end_ms(),
        };
        assert_eq!(range.days(), Some(day..=day));
        assert!(range.covers(day));
        let partial = TimeRange {
            from_ms: day.start_ms() + 1,
            to_ms: day.end_ms() + 1,
        };
        assert_eq!(partial.days(), Some(day..=day.plus_days(1)));
        assert!(!partial.covers(day));
        let empty = TimeRange {
            from_ms: 5,
            to_ms: 5,
        };
        assert_eq!(empty.days(), None);
    }
}

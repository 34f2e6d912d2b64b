//! Per-tenant, per-day log accounting, and the daily byte quota it enforces.
//!
//! Counters live in memory, are loaded from the store at start and written back every few
//! seconds and at shutdown: a crash loses at most that interval of counting (never documents),
//! which can let a tenant exceed its quota by as much. Prometheus series are labelled by tenant
//! only, never by key, to keep cardinality low.

use std::collections::HashMap;
use std::sync::Mutex;

use caravan_api::DayUsage;
use caravan_store::{ControlStore, LogUsageRow, StoreError};
use caravan_tenancy::TenantName;
use prometheus::{IntCounterVec, Opts, Registry};

/// Unknown keys tracked per tenant and day; further keys are only counted together.
pub(crate) const UNKNOWN_KEYS_TRACKED_MAX: usize = 1_000;

/// What happened to one item, for the books.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ItemOutcome<'a> {
    /// Stored.
    Accepted {
        bytes: u64,
        coerced: bool,
        ignored_values: u64,
        unknown_keys: &'a [String],
    },
    /// Refused, for this reason (a short stable word such as `quota`).
    Rejected { bytes: u64, reason: &'static str },
}

/// The books: counters per tenant and day, and their Prometheus mirror.
pub(crate) struct UsageBook {
    days: Mutex<Books>,
    documents: IntCounterVec,
    bytes: IntCounterVec,
    ignored_values: IntCounterVec,
    coerced_documents: IntCounterVec,
    unknown_keys: IntCounterVec,
}

#[derive(Default)]
struct Books {
    usage: HashMap<(TenantName, String), DayUsage>,
    dirty: bool,
}

impl UsageBook {
    /// Empty books, with their series registered in `registry`.
    pub(crate) fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
                let counter = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(counter.clone()))?;
                Ok(counter)
            };
        Ok(Self {
            days: Mutex::new(Books::default()),
            documents: counter(
                "caravan_logs_documents_total",
                "Log documents received, by tenant and outcome (accepted, or the rejection reason).",
                &["tenant", "outcome"],
            )?,
            bytes: counter(
                "caravan_logs_bytes_total",
                "Bytes of log documents received, by tenant and outcome.",
                &["tenant", "outcome"],
            )?,
            ignored_values: counter(
                "caravan_logs_ignored_values_total",
                "Values kept aside in _ignored records because they did not fit their key's type, by tenant.",
                &["tenant"],
            )?,
            coerced_documents: counter(
                "caravan_logs_coerced_documents_total",
                "Accepted documents with at least one value coerced to its key's type, by tenant.",
                &["tenant"],
            )?,
            unknown_keys: counter(
                "caravan_logs_unknown_keys_total",
                "Occurrences of keys that are not in the schema (stored, not indexed), by tenant.",
                &["tenant"],
            )?,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Books> {
        self.days
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Loads the counters of `day` (and later) from the store.
    pub(crate) fn load(&self, store: &dyn ControlStore, from_day: &str) -> Result<(), StoreError> {
        let rows = store.log_usage(None, from_day)?;
        let mut books = self.lock();
        for row in rows {
            let usage: DayUsage = serde_json::from_str(&row.usage_json).unwrap_or_else(|error| {
                tracing::warn!(tenant = %row.tenant, day = %row.day, %error, "unreadable usage counters; starting them again");
                DayUsage { day: row.day.clone(), ..DayUsage::default() }
            });
            books.usage.insert((row.tenant, row.day), usage);
        }
        Ok(())
    }

    /// Bytes accepted for `tenant` on `day` so far.
    pub(crate) fn bytes_accepted(&self, tenant: &TenantName, day: &str) -> u64 {
        self.lock()
            .usage
            .get(&(tenant.clone(), day.to_owned()))
            .map_or(0, |usage| usage.bytes_accepted)
    }

    /// Records one item.
    pub(crate) fn record(&self, tenant: &TenantName, day: &str, outcome: &ItemOutcome<'_>) {
        let label = tenant.as_str();
        let mut books = self.lock();
        books.dirty = true;
        let usage = books
            .usage
            .entry((tenant.clone(), day.to_owned()))
            .or_insert_with(|| DayUsage {
                day: day.to_owned(),
                ..DayUsage::default()
            });
        usage.documents_received += 1;
        match *outcome {
            ItemOutcome::Accepted {
                bytes,
                coerced,
                ignored_values,
                unknown_keys,
            } => {
                usage.bytes_received += bytes;
                usage.documents_accepted += 1;
                usage.bytes_accepted += bytes;
                usage.documents_coerced += u64::from(coerced);
                usage.documents_with_ignored += u64::from(ignored_values > 0);
                usage.ignored_values += ignored_values;
                for key in unknown_keys {
                    if let Some(count) = usage.unknown_keys.get_mut(key) {
                        *count += 1;
                    } else if usage.unknown_keys.len() < UNKNOWN_KEYS_TRACKED_MAX {
                        usage.unknown_keys.insert(key.clone(), 1);
                    } else {
                        usage.unknown_keys_other += 1;
                    }
                }
                self.documents.with_label_values(&[label, "accepted"]).inc();
                self.bytes
                    .with_label_values(&[label, "accepted"])
                    .inc_by(bytes);
                self.ignored_values
                    .with_label_values(&[label])
                    .inc_by(ignored_values);
                if coerced {
                    self.coerced_documents.with_label_values(&[label]).inc();
                }
                self.unknown_keys
                    .with_label_values(&[label])
                    .inc_by(unknown_keys.len() as u64);
            }
            ItemOutcome::Rejected { bytes, reason } => {
                usage.bytes_received += bytes;
                *usage.rejected.entry(reason.to_owned()).or_default() += 1;
                self.documents.with_label_values(&[label, reason]).inc();
                self.bytes.with_label_values(&[label, reason]).inc_by(bytes);
            }
        }
    }

    /// The counters of one tenant from `from_day` on, by day.
    pub(crate) fn tenant_days(&self, tenant: &TenantName, from_day: &str) -> Vec<DayUsage> {
        let books = self.lock();
        let mut days: Vec<DayUsage> = books
            .usage
            .iter()
            .filter(|((t, day), _)| t == tenant && day.as_str() >= from_day)
            .map(|(_, usage)| usage.clone())
            .collect();
        days.sort_by(|a, b| a.day.cmp(&b.day));
        days
    }

    /// Forgets a deleted tenant's counters.
    pub(crate) fn forget(&self, tenant: &TenantName) {
        self.lock().usage.retain(|(t, _), _| t != tenant);
    }

    /// The rows to write if anything changed since the last call, clearing the flag.
    pub(crate) fn take_dirty_rows(&self) -> Option<Vec<LogUsageRow>> {
        let mut books = self.lock();
        if !books.dirty {
            return None;
        }
        books.dirty = false;
        Some(
            books
                .usage
                .iter()
                .map(|((tenant, day), usage)| LogUsageRow {
                    tenant: tenant.clone(),
                    day: day.clone(),
                    // Serialising maps of strings and integers cannot fail.
                    usage_json: serde_json::to_string(usage).unwrap_or_default(),
                })
                .collect(),
        )
    }

    /// Marks the books dirty again after a failed write, so that the next flush retries.
    pub(crate) fn mark_dirty(&self) {
        self.lock().dirty = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_accepted_and_rejected_items() {
        let registry = Registry::new();
        let book = UsageBook::new(&registry).unwrap();
        let tenant = TenantName::new("payments").unwrap();
        let unknown = vec!["colour".to_owned()];
        book.record(
            &tenant,
            "2026-11-22",
            &ItemOutcome::Accepted {
                bytes: 100,
                coerced: true,
                ignored_values: 2,
                unknown_keys: &unknown,
            },
        );
        book.record(
            &tenant,
            "2026-11-22",
            &ItemOutcome::Accepted {
                bytes: 50,
                coerced: false,
                ignored_values: 0,
                unknown_keys: &unknown,
            },
        );
        book.record(
            &tenant,
            "2026-11-22",
            &ItemOutcome::Rejected {
                bytes: 10,
                reason: "quota",
            },
        );
        assert_eq!(book.bytes_accepted(&tenant, "2026-11-22"), 150);
        let days = book.tenant_days(&tenant, "2026-11-01");
        assert_eq!(days.len(), 1);
        let day = &days[0];
        assert_eq!(
            (
                day.documents_received,
                day.documents_accepted,
                day.bytes_received
            ),
            (3, 2, 160)
        );
        assert_eq!(
            (
                day.documents_coerced,
                day.documents_with_ignored,
                day.ignored_values
            ),
            (1, 1, 2)
        );
        assert_eq!(day.rejected.get("quota"), Some(&1));
        assert_eq!(day.unknown_keys.get("colour"), Some(&2));
        let rows = book.take_dirty_rows().unwrap();
        assert_eq!(rows.len(), 1);
        assert!(book.take_dirty_rows().is_none());
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        assert!(
            text.contains(r#"caravan_logs_documents_total{outcome="quota",tenant="payments"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn unknown_keys_are_bounded() {
        let book = UsageBook::new(&Registry::new()).unwrap();
        let tenant = TenantName::new("payments").unwrap();
        let keys: Vec<String> = (0..UNKNOWN_KEYS_TRACKED_MAX + 5)
            .map(|i| format!("k{i}"))
            .collect();
        book.record(
            &tenant,
            "2026-11-22",
            &ItemOutcome::Accepted {
                bytes: 1,
                coerced: false,
                ignored_values: 0,
                unknown_keys: &keys,
            },
        );
        let day = &book.tenant_days(&tenant, "2026-11-22")[0];
        assert_eq!(day.unknown_keys.len(), UNKNOWN_KEYS_TRACKED_MAX);
        assert_eq!(day.unknown_keys_other, 5);
    }
}

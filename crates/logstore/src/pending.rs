//! Ids that are acknowledged but not yet visible to searches.
//!
//! `id_exists` must see a document from the moment `append` returns, but tantivy only
//! searches what is committed. The write-ahead-log thread records each acknowledged id here
//! (before acknowledging); after each commit cycle the indexer forgets the ids whose partition
//! committed past them (and whose reader was reloaded). The set is bounded by what the
//! write-ahead log holds (`wal_bytes_max`), since an id leaves it at the latest when its
//! record may be truncated.
//!
//! Cost: one hash insert per document on the acknowledgement path (tens of nanoseconds); a
//! lookup is one hash probe. The ids are hashed with foldhash, seeded at random per process:
//! SipHash took a third of the log thread's time (BENCHMARKS.md), and a random seed keeps
//! clients from choosing `_id`s that collide.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::batch::PreparedDocument;
use crate::day::Day;
use crate::partition::PartitionKey;
use crate::wal::WalPosition;

/// The pending ids of one tenant, with the partition and operation that wrote them.
type Ids = HashMap<String, (Day, WalPosition), foldhash::fast::RandomState>;

/// Per tenant: each pending id, with the partition and operation that wrote it.
type IdsByTenant = HashMap<String, Ids>;

/// Acknowledged ids per tenant, with the partition and operation that wrote them.
#[derive(Default)]
pub(crate) struct PendingIds {
    tenants: Mutex<IdsByTenant>,
}

impl PendingIds {
    fn lock(&self) -> std::sync::MutexGuard<'_, IdsByTenant> {
        // Every mutation is a single insert or retain: a poisoned map is still consistent.
        self.tenants
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records the ids of a durable batch.
    pub(crate) fn insert(&self, position: WalPosition, documents: &[PreparedDocument]) {
        let mut tenants = self.lock();
        let mut index = 0;
        // Batches are usually of one tenant: look the tenant up once per run of documents.
        while index < documents.len() {
            let tenant = &documents[index].key.tenant;
            if !tenants.contains_key(tenant) {
                tenants.insert(tenant.clone(), Ids::default());
            }
            let Some(ids) = tenants.get_mut(tenant) else {
                return;
            };
            while let Some(document) = documents.get(index).filter(|d| d.key.tenant == *tenant) {
                ids.insert(document.id.clone(), (document.key.day, position));
                index += 1;
            }
        }
    }

    /// Whether `id` of `tenant` is acknowledged and possibly not yet searchable.
    pub(crate) fn contains(&self, tenant: &str, id: &str) -> bool {
        self.lock()
            .get(tenant)
            .is_some_and(|ids| ids.contains_key(id))
    }

    /// Forgets the ids that their partition's commit now covers (`next_record` of a partition:
    /// the first record its last commit does not hold).
    pub(crate) fn forget_committed(
        &self,
        next_record: impl Fn(&PartitionKey) -> Option<WalPosition>,
    ) {
        let mut tenants = self.lock();
        let mut key = PartitionKey {
            tenant: String::new(),
            day: Day::from_days_since_epoch(0),
        };
        for (tenant, ids) in tenants.iter_mut() {
            key.tenant.clone_from(tenant);
            ids.retain(|_, (day, position)| {
                key.day = *day;
                next_record(&key).is_none_or(|next| *position >= next)
            });
        }
        tenants.retain(|_, ids| !ids.is_empty());
    }

    /// Forgets the ids of dropped partitions.
    pub(crate) fn forget_partitions(&self, keys: &[PartitionKey]) {
        let mut tenants = self.lock();
        for key in keys {
            if let Some(ids) = tenants.get_mut(&key.tenant) {
                ids.retain(|_, (day, _)| *day != key.day);
            }
        }
        tenants.retain(|_, ids| !ids.is_empty());
    }

    /// Ids held.
    pub(crate) fn len(&self) -> usize {
        self.lock().values().map(Ids::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{LogDocument, WriteMode};
    use crate::schema::LogSchema;

    fn document(tenant: &str, id: &str, day: i32) -> PreparedDocument {
        let document = LogDocument {
            tenant: tenant.to_string(),
            id: id.to_string(),
            timestamp_ms: Day::from_days_since_epoch(day).start_ms(),
            source: vec![],
            fields: vec![],
            mode: WriteMode::Create,
        };
        PreparedDocument::new(&LogSchema::new(), document)
    }

    #[test]
    fn ids_stay_until_their_partition_commits_past_them() {
        let pending = PendingIds::default();
        pending.insert(
            5,
            &[
                document("a", "1", 0),
                document("b", "2", 0),
                document("a", "3", 1),
            ],
        );
        assert!(
            pending.contains("a", "1") && pending.contains("b", "2") && pending.contains("a", "3")
        );
        assert!(!pending.contains("b", "1"));
        // Partition a/day0 committed through record 5.
        pending.forget_committed(|key| {
            (key.tenant == "a" && key.day == Day::from_days_since_epoch(0)).then_some(6)
        });
        assert!(!pending.contains("a", "1"));
        assert!(pending.contains("b", "2") && pending.contains("a", "3"));
        pending.forget_partitions(&[PartitionKey {
            tenant: "a".into(),
            day: Day::from_days_since_epoch(1),
        }]);
        assert!(!pending.contains("a", "3"));
        assert_eq!(pending.len(), 1);
    }
}

//! Partitions: one tantivy index per tenant per UTC day, under
//! `<root>/indexes/<tenant>/<YYYY-MM-DD>/`, and the cache of their open indexes and readers.
//!
//! The cache keeps one `tantivy::Index` per partition for the life of the store (the writer
//! and the reader of a partition must share it, so that the writer's garbage collection never
//! deletes a file a reader is about to open), and at most `readers_open_max` readers (least
//! recently used closed first). Removing a partition renames its directory into `trash/`
//! under the cache lock, so a search either sees the whole partition or none of it, and a
//! document that arrives for that day afterwards creates a fresh partition.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tantivy::directory::MmapDirectory;
use tantivy::{Index, IndexReader, ReloadPolicy, Searcher};

use crate::day::Day;
use crate::document::validate_tenant;
use crate::error::LogStoreError;
use crate::schema::LogSchema;
use crate::wal::WalPosition;

/// A partition: a tenant and a UTC day.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    /// The tenant.
    pub tenant: String,
    /// The UTC day.
    pub day: Day,
}

impl fmt::Display for PartitionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tenant, self.day)
    }
}

/// What a partition holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The tenant.
    pub tenant: String,
    /// The UTC day.
    pub day: Day,
    /// Committed documents (deleted ones excluded).
    pub documents: u64,
    /// Bytes of the partition's files.
    pub disk_bytes: u64,
}

/// A partition that a retention or drop call removed, with what it held then.
pub type DroppedPartition = PartitionInfo;

const PAYLOAD_PREFIX: &str = "caravan-logstore/1 next_record=";

/// The commit payload of a partition: the first write-ahead-log record whose documents are not
/// (all) in the commit. Every record below it is wholly in (or has nothing for the partition),
/// because commits happen only between records; replay skips the partition's documents of
/// the records below it, which makes replay exactly-once.
pub(crate) fn commit_payload(next_record: WalPosition) -> String {
    format!("{PAYLOAD_PREFIX}{next_record}")
}

/// Reads a payload written by [`commit_payload`].
pub(crate) fn parse_commit_payload(payload: &str) -> Option<WalPosition> {
    payload.strip_prefix(PAYLOAD_PREFIX)?.parse().ok()
}

/// The partitions on disk and the cache of their indexes and readers.
pub(crate) struct Partitions {
    indexes_dir: PathBuf,
    trash_dir: PathBuf,
    schema: LogSchema,
    readers_open_max: usize,
    cache: Mutex<Cache>,
    trash_counter: AtomicU64,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<PartitionKey, Entry>,
    readers_open: usize,
    clock: u64,
}

struct Entry {
    index: Index,
    reader: Option<IndexReader>,
    last_used: u64,
}

impl Partitions {
    /// Partitions under `root/indexes`, trash under `root/trash` (emptied now).
    pub(crate) fn open(
        root: &Path,
        schema: LogSchema,
        readers_open_max: usize,
    ) -> Result<Partitions, LogStoreError> {
        let indexes_dir = root.join("indexes");
        let trash_dir = root.join("trash");
        for dir in [&indexes_dir, &trash_dir] {
            fs::create_dir_all(dir).map_err(|e| LogStoreError::io("create directory", dir, e))?;
        }
        // A crash between a drop's rename and its deletion leaves partitions in the trash.
        for entry in
            fs::read_dir(&trash_dir).map_err(|e| LogStoreError::io("list", &trash_dir, e))?
        {
            let path = entry
                .map_err(|e| LogStoreError::io("list", &trash_dir, e))?
                .path();
            remove_dir_all(&path)?;
        }
        Ok(Partitions {
            indexes_dir,
            trash_dir,
            schema,
            readers_open_max,
            cache: Mutex::new(Cache::default()),
            trash_counter: AtomicU64::new(0),
        })
    }

    /// The schema of every partition.
    pub(crate) fn schema(&self) -> &LogSchema {
        &self.schema
    }

    /// The directory of a partition.
    pub(crate) fn dir(&self, key: &PartitionKey) -> PathBuf {
        self.indexes_dir.join(&key.tenant).join(key.day.to_string())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A panic while holding the lock leaves a consistent map (every mutation is a single
        // insert or remove), so a poisoned lock is still usable.
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The partition's index: from the cache, opened from disk, or (when `create`) created.
    /// `None` when it does not exist and `create` is false.
    pub(crate) fn index(
        &self,
        key: &PartitionKey,
        create: bool,
    ) -> Result<Option<Index>, LogStoreError> {
        let mut cache = self.lock();
        if let Some(entry) = cache.entries.get(key) {
            return Ok(Some(entry.index.clone()));
        }
        let Some(index) = self.open_index(key, create)? else {
            return Ok(None);
        };
        cache.clock += 1;
        let last_used = cache.clock;
        cache.entries.insert(
            key.clone(),
            Entry {
                index: index.clone(),
                reader: None,
                last_used,
            },
        );
        Ok(Some(index))
    }

    fn open_index(&self, key: &PartitionKey, create: bool) -> Result<Option<Index>, LogStoreError> {
        let dir = self.dir(key);
        if !dir.join("meta.json").exists() {
            if !create {
                return Ok(None);
            }
            fs::create_dir_all(&dir)
                .map_err(|e| LogStoreError::io("create partition directory", &dir, e))?;
            if let Some(parent) = dir.parent() {
                crate::wal::sync_dir(parent)?;
            }
        }
        let directory =
            MmapDirectory::open(&dir).map_err(|e| LogStoreError::index(key, e.into()))?;
        let index = Index::builder()
            .schema(self.schema.schema.clone())
            .settings(LogSchema::index_settings())
            .open_or_create(directory)
            .map_err(|e| LogStoreError::index(key, e))?;
        Ok(Some(index))
    }

    /// A searcher on the partition's last commit, or `None` if the partition does not exist.
    pub(crate) fn searcher(&self, key: &PartitionKey) -> Result<Option<Searcher>, LogStoreError> {
        let mut cache = self.lock();
        cache.clock += 1;
        let now = cache.clock;
        if !cache.entries.contains_key(key) {
            let Some(index) = self.open_index(key, false)? else {
                return Ok(None);
            };
            cache.entries.insert(
                key.clone(),
                Entry {
                    index,
                    reader: None,
                    last_used: now,
                },
            );
        }
        let needs_reader = cache
            .entries
            .get(key)
            .is_some_and(|entry| entry.reader.is_none());
        if needs_reader {
            if cache.readers_open >= self.readers_open_max {
                evict_least_recently_used_reader(&mut cache);
            }
            if let Some(entry) = cache.entries.get_mut(key) {
                let reader = entry
                    .index
                    .reader_builder()
                    .reload_policy(ReloadPolicy::Manual)
                    .try_into()
                    .map_err(|e| LogStoreError::index(key, e))?;
                entry.reader = Some(reader);
            }
            cache.readers_open += 1;
        }
        let entry = cache.entries.get_mut(key);
        Ok(entry.and_then(|entry| {
            entry.last_used = now;
            entry.reader.as_ref().map(IndexReader::searcher)
        }))
    }

    /// Makes a cached reader see the partition's last commit.
    pub(crate) fn reload(&self, key: &PartitionKey) -> Result<(), LogStoreError> {
        let reader = self
            .lock()
            .entries
            .get(key)
            .and_then(|entry| entry.reader.clone());
        if let Some(reader) = reader {
            reader.reload().map_err(|e| LogStoreError::index(key, e))?;
        }
        Ok(())
    }

    /// Readers open now.
    pub(crate) fn readers_open(&self) -> usize {
        self.lock().readers_open
    }

    /// The tenants with a directory.
    pub(crate) fn tenants(&self) -> Result<Vec<String>, LogStoreError> {
        let mut tenants = Vec::new();
        let entries = match fs::read_dir(&self.indexes_dir) {
            Ok(entries) => entries,
            Err(e) => return Err(LogStoreError::io("list tenants", &self.indexes_dir, e)),
        };
        for entry in entries {
            let entry =
                entry.map_err(|e| LogStoreError::io("list tenants", &self.indexes_dir, e))?;
            if let Some(name) = entry.file_name().to_str()
                && validate_tenant(name).is_ok()
                && entry.path().is_dir()
            {
                tenants.push(name.to_string());
            }
        }
        tenants.sort();
        Ok(tenants)
    }

    /// The partitions of a tenant with a directory, oldest first.
    pub(crate) fn days(&self, tenant: &str) -> Result<Vec<Day>, LogStoreError> {
        let dir = self.indexes_dir.join(tenant);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(LogStoreError::io("list partitions", &dir, e)),
        };
        let mut days = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| LogStoreError::io("list partitions", &dir, e))?;
            if let Some(day) = entry.file_name().to_str().and_then(Day::parse) {
                days.push(day);
            }
        }
        days.sort();
        Ok(days)
    }

    /// Every partition of `tenant` (or of every tenant), ordered by tenant then day.
    pub(crate) fn keys(&self, tenant: Option<&str>) -> Result<Vec<PartitionKey>, LogStoreError> {
        let tenants = match tenant {
            Some(tenant) => vec![tenant.to_string()],
            None => self.tenants()?,
        };
        let mut keys = Vec::new();
        for tenant in tenants {
            for day in self.days(&tenant)? {
                keys.push(PartitionKey {
                    tenant: tenant.clone(),
                    day,
                });
            }
        }
        Ok(keys)
    }

    /// The next record recorded by the partition's last commit (`None`: never committed).
    pub(crate) fn committed_next_record(
        &self,
        key: &PartitionKey,
    ) -> Result<Option<WalPosition>, LogStoreError> {
        let Some(index) = self.index(key, false)? else {
            return Ok(None);
        };
        let metas = index
            .load_metas()
            .map_err(|e| LogStoreError::index(key, e))?;
        Ok(metas.payload.as_deref().and_then(parse_commit_payload))
    }

    /// Documents and bytes of a partition.
    pub(crate) fn info(&self, key: &PartitionKey) -> Result<PartitionInfo, LogStoreError> {
        let documents = match self.index(key, false)? {
            Some(index) => index
                .load_metas()
                .map_err(|e| LogStoreError::index(key, e))?
                .segments
                .iter()
                .map(|segment| u64::from(segment.num_docs()))
                .sum(),
            None => 0,
        };
        Ok(PartitionInfo {
            tenant: key.tenant.clone(),
            day: key.day,
            documents,
            disk_bytes: dir_bytes(&self.dir(key))?,
        })
    }

    /// Removes partitions: out of the cache and onto the trash (atomically for searches, under
    /// the cache lock), then deleted. The caller has closed their writers.
    pub(crate) fn remove(&self, keys: &[PartitionKey]) -> Result<(), LogStoreError> {
        let mut trashed = Vec::new();
        {
            let mut cache = self.lock();
            for key in keys {
                if let Some(entry) = cache.entries.remove(key)
                    && entry.reader.is_some()
                {
                    cache.readers_open -= 1;
                }
                let dir = self.dir(key);
                let trash = self.trash_dir.join(format!(
                    "{}.{}.{}",
                    key.tenant,
                    key.day,
                    self.trash_counter.fetch_add(1, Ordering::Relaxed)
                ));
                match fs::rename(&dir, &trash) {
                    Ok(()) => trashed.push(trash),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(LogStoreError::io("move partition to trash", &dir, e)),
                }
            }
        }
        let mut tenants: Vec<&str> = keys.iter().map(|key| key.tenant.as_str()).collect();
        tenants.dedup();
        for tenant in tenants {
            let dir = self.indexes_dir.join(tenant);
            if let Some(parent) = dir.parent() {
                crate::wal::sync_dir(parent)?;
            }
            if dir.exists() {
                crate::wal::sync_dir(&dir)?;
            }
            // The tenant's directory goes when its last partition goes (not an error if a
            // new partition appeared meanwhile: remove_dir refuses non-empty directories).
            let _ = fs::remove_dir(&dir);
        }
        for trash in trashed {
            remove_dir_all(&trash)?;
        }
        Ok(())
    }
}

fn evict_least_recently_used_reader(cache: &mut Cache) {
    let victim = cache
        .entries
        .iter()
        .filter(|(_, entry)| entry.reader.is_some())
        .min_by_key(|(_, entry)| entry.last_used)
        .map(|(key, _)| key.clone());
    if let Some(entry) = victim.and_then(|key| cache.entries.get_mut(&key)) {
        entry.reader = None;
        cache.readers_open -= 1;
    }
}

fn dir_bytes(dir: &Path) -> Result<u64, LogStoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(LogStoreError::io("list partition files", dir, e)),
    };
    let mut bytes = 0;
    for entry in entries {
        let entry = entry.map_err(|e| LogStoreError::io("list partition files", dir, e))?;
        // Files can vanish under us (tantivy's garbage collection): skip them.
        if let Ok(metadata) = entry.metadata()
            && metadata.is_file()
        {
            bytes += metadata.len();
        }
    }
    Ok(bytes)
}

fn remove_dir_all(path: &Path) -> Result<(), LogStoreError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogStoreError::io("delete directory", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_payload_round_trips_and_rejects_foreign_payloads() {
        assert_eq!(parse_commit_payload(&commit_payload(42)), Some(42));
        assert_eq!(parse_commit_payload("something else"), None);
        assert_eq!(
            parse_commit_payload("caravan-logstore/1 next_record=x"),
            None
        );
    }

    #[test]
    fn partition_key_displays_as_its_relative_directory() {
        let key = PartitionKey {
            tenant: "web".to_string(),
            day: Day::from_ymd(2026, 2, 3).unwrap(),
        };
        assert_eq!(key.to_string(), "web/2026-02-03");
    }
}

//! Retention: which partitions are past their tenant's retention, and the tombstones that keep
//! dropped partitions dropped across a restart.
//!
//! Dropping a partition deletes its directory, but the write-ahead log may still hold records
//! with documents for it (the log is truncated only once every partition has committed).
//! Without a trace, a restart would replay them into a fresh partition and resurrect data
//! that retention removed. So a drop first records a tombstone `(tenant, day, next record)`:
//! replay skips the partition's documents of the records below it. A tombstone is forgotten once
//! the write-ahead log no longer holds any record it covers.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::day::Day;
use crate::error::LogStoreError;
use crate::partition::PartitionKey;
use crate::wal::{WalPosition, sync_dir};

/// The first day kept by a retention of `retention_days` days on `today`: the
/// `retention_days` most recent UTC days are kept, today included (0 keeps nothing).
pub fn first_day_kept(today: Day, retention_days: u32) -> Day {
    let retention_days = i32::try_from(retention_days).unwrap_or(i32::MAX);
    today.plus_days(1i32.saturating_sub(retention_days))
}

/// The tombstones of dropped partitions, persisted in `<root>/tombstones`.
pub(crate) struct Tombstones {
    path: PathBuf,
    entries: Vec<(PartitionKey, WalPosition)>,
}

impl Tombstones {
    /// Loads the tombstones (none if the file does not exist).
    pub(crate) fn load(root: &Path) -> Result<Tombstones, LogStoreError> {
        let path = root.join("tombstones");
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(LogStoreError::io("read tombstones", &path, e)),
        };
        let mut entries = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let parsed = parse_line(line);
            let Some(entry) = parsed else {
                return Err(LogStoreError::io(
                    "parse tombstones",
                    &path,
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("line {}: {line:?}", number + 1),
                    ),
                ));
            };
            entries.push(entry);
        }
        Ok(Tombstones { path, entries })
    }

    #[cfg(test)]
    /// The record below which a dropped partition's documents must not be replayed.
    pub(crate) fn floor(&self, key: &PartitionKey) -> Option<WalPosition> {
        self.entries
            .iter()
            .filter(|(dropped, _)| dropped == key)
            .map(|(_, next_record)| *next_record)
            .max()
    }

    /// Every tombstone.
    pub(crate) fn entries(&self) -> &[(PartitionKey, WalPosition)] {
        &self.entries
    }

    /// Records, durably, that `keys` were dropped when `next_record` was the next record.
    pub(crate) fn add(
        &mut self,
        keys: &[PartitionKey],
        next_record: WalPosition,
    ) -> Result<(), LogStoreError> {
        self.entries.retain(|(key, _)| !keys.contains(key));
        self.entries
            .extend(keys.iter().map(|key| (key.clone(), next_record)));
        self.persist()
    }

    /// Forgets tombstones that cover no record still in the log (the log starts at
    /// `wal_first_position`).
    pub(crate) fn prune(&mut self, wal_first_position: WalPosition) -> Result<(), LogStoreError> {
        let before = self.entries.len();
        // A tombstone covers the records below its position.
        self.entries
            .retain(|(_, next_record)| *next_record > wal_first_position);
        if self.entries.len() != before {
            self.persist()?;
        }
        Ok(())
    }

    fn persist(&self) -> Result<(), LogStoreError> {
        let mut text = String::new();
        for (key, next_record) in &self.entries {
            text.push_str(&format!("{} {} {next_record}\n", key.tenant, key.day));
        }
        let temporary = self.path.with_extension("tmp");
        let write = || -> io::Result<()> {
            let mut file = File::create(&temporary)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            fs::rename(&temporary, &self.path)
        };
        write().map_err(|e| LogStoreError::io("write tombstones", &self.path, e))?;
        match self.path.parent() {
            Some(dir) => sync_dir(dir),
            None => Ok(()),
        }
    }
}

fn parse_line(line: &str) -> Option<(PartitionKey, WalPosition)> {
    let mut parts = line.split(' ');
    let tenant = parts.next()?.to_string();
    let day = Day::parse(parts.next()?)?;
    let next_record = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some((PartitionKey { tenant, day }, next_record))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> Day {
        Day::parse(text).unwrap()
    }

    #[test]
    fn retention_keeps_the_most_recent_days_today_included() {
        let today = day("2026-03-10");
        assert_eq!(first_day_kept(today, 1), today);
        assert_eq!(first_day_kept(today, 10), day("2026-03-01"));
        assert_eq!(
            first_day_kept(today, 0),
            day("2026-03-11"),
            "0 keeps nothing"
        );
        assert_eq!(
            first_day_kept(today, u32::MAX),
            today.plus_days(1 - i32::MAX)
        );
    }

    #[test]
    fn tombstones_persist_and_are_pruned_with_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut tombstones = Tombstones::load(dir.path()).unwrap();
        let key = PartitionKey {
            tenant: "web".into(),
            day: day("2026-03-01"),
        };
        // Dropped when record 10 was next: covers records up to 9.
        tombstones.add(std::slice::from_ref(&key), 10).unwrap();
        let mut reloaded = Tombstones::load(dir.path()).unwrap();
        assert_eq!(reloaded.floor(&key), Some(10));
        reloaded.prune(9).unwrap();
        assert_eq!(
            reloaded.floor(&key),
            Some(10),
            "record 9 is still in the log"
        );
        reloaded.prune(10).unwrap();
        assert_eq!(reloaded.floor(&key), None);
        assert_eq!(Tombstones::load(dir.path()).unwrap().entries().len(), 0);
    }
}

//! The write-ahead log: numbered records in segment files, fsync'd before acknowledgement.
//!
//! Why not `mrecordlog` (Quickwit's WAL)? Version 0.4, the current one, never fsyncs: its
//! `sync()` flushes a `BufWriter` into the page cache (which survives a killed process but
//! not a power loss or a kernel crash), and it exposes no file handle to fsync ourselves. It
//! also keeps every untruncated record in memory, so a WAL bounded at 512 MiB would cost
//! 512 MiB of RAM, and its 128 MiB preallocated files make a small size bound impossible.
//! What the store needs is small: append a group of records, `fdatasync` once, replay in
//! order, delete whole segments once indexed. That is this module, synchronous and owned
//! by one thread (see `store.rs`).
//!
//! Layout: `<root>/wal/wal-<first position, 20 digits>.log`. A record is
//!
//! ```text
//! payload_len:u32  crc32(position || payload):u32  position:u64  payload
//! ```
//!
//! Positions start at 1 and strictly increase, across segments and restarts (the first
//! position after a restart is above every position a partition has recorded as committed,
//! see `LogStore::open`). At open, a torn or corrupt record ends the replay of the last
//! segment, which is cut there (it was never acknowledged: acknowledgement follows the
//! fsync); in an older segment, which was fsync'd whole before the next one started, the
//! rest of that segment is skipped with a warning.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::LogStoreError;

/// Largest record (one append request) the log accepts.
pub const RECORD_BYTES_MAX: u64 = 1 << 30;

/// Largest segment file the log starts a new segment after (the bound on what one replay
/// step reads is the record, not the segment: replay streams).
pub const SEGMENT_BYTES_MAX: u64 = 64 << 20;

/// Smallest segment target, so that a tiny WAL bound still has several segments to delete.
pub const SEGMENT_BYTES_MIN: u64 = 4 << 10;

/// Bytes of a record's header.
pub(crate) const RECORD_HEADER_BYTES: u64 = 16;

const SEGMENT_PREFIX: &str = "wal-";
const SEGMENT_SUFFIX: &str = ".log";

/// A record position in the write-ahead log (one per append request).
pub type WalPosition = u64;

/// The write-ahead log, open for appending.
pub(crate) struct Wal {
    dir: PathBuf,
    /// Full segments, oldest first; each one's last position is the next one's first minus one.
    sealed: VecDeque<Segment>,
    active: Segment,
    active_file: File,
    next_position: WalPosition,
    segment_bytes_target: u64,
    fsyncs: u64,
}

struct Segment {
    first_position: WalPosition,
    path: PathBuf,
    bytes: u64,
}

/// What a replay found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplaySummary {
    /// Records handed to the callback.
    pub records: u64,
    /// Bytes cut from the end of the last segment (a torn, unacknowledged write).
    pub torn_bytes: u64,
    /// Segments whose tail was skipped because of corruption.
    pub corrupt_segments: u64,
}

impl Wal {
    /// Opens (or creates) the log in `dir`, hands every record to `on_record` in position
    /// order, and starts a new segment for appends.
    ///
    /// `min_next_position` is a floor for the next position (positions that partitions have
    /// already recorded as committed must never be reused, even if the log was emptied).
    pub(crate) fn open(
        dir: &Path,
        segment_bytes_target: u64,
        min_next_position: WalPosition,
        mut on_record: impl FnMut(WalPosition, &[u8]) -> Result<(), LogStoreError>,
    ) -> Result<(Wal, ReplaySummary), LogStoreError> {
        fs::create_dir_all(dir)
            .map_err(|e| LogStoreError::io("create write-ahead log directory", dir, e))?;
        let mut segments = list_segments(dir)?;
        let mut summary = ReplaySummary::default();
        let mut next_position = min_next_position.max(1);
        let mut previous_position = 0;
        let segment_count = segments.len();
        for (index, segment) in segments.iter_mut().enumerate() {
            next_position = next_position.max(segment.first_position);
            let is_last = index + 1 == segment_count;
            let outcome = replay_segment(segment, previous_position, &mut on_record)?;
            summary.records += outcome.records;
            if let Some(last) = outcome.last_position {
                previous_position = last;
                next_position = next_position.max(last + 1);
            }
            if let Some(reason) = outcome.stopped_at {
                let (offset, why) = reason;
                if is_last {
                    let cut = segment.bytes - offset;
                    tracing::warn!(path = %segment.path.display(), offset, cut, why, "cutting torn tail of write-ahead log");
                    truncate_file(&segment.path, offset)?;
                    summary.torn_bytes += cut;
                    segment.bytes = offset;
                } else {
                    tracing::error!(path = %segment.path.display(), offset, why, "skipping corrupt tail of sealed write-ahead log segment");
                    summary.corrupt_segments += 1;
                }
            }
        }
        // Segments without any record carry nothing but their name, already folded into
        // `next_position`: remove them so that segment names stay first positions.
        let mut sealed = VecDeque::new();
        for segment in segments {
            if segment.bytes == 0 {
                fs::remove_file(&segment.path).map_err(|e| {
                    LogStoreError::io("remove empty write-ahead log segment", &segment.path, e)
                })?;
            } else {
                sealed.push_back(segment);
            }
        }
        let (active, active_file) = create_segment(dir, next_position)?;
        sync_dir(dir)?;
        let wal = Wal {
            dir: dir.to_path_buf(),
            sealed,
            active,
            active_file,
            next_position,
            segment_bytes_target: segment_bytes_target.clamp(SEGMENT_BYTES_MIN, SEGMENT_BYTES_MAX),
            fsyncs: 0,
        };
        Ok((wal, summary))
    }

    /// The first position that may still be in the log (records below it are gone).
    pub(crate) fn first_position(&self) -> WalPosition {
        self.sealed
            .front()
            .map_or(self.active.first_position, |segment| segment.first_position)
    }

    /// Bytes the log occupies on disk.
    pub(crate) fn bytes(&self) -> u64 {
        self.sealed.iter().map(|segment| segment.bytes).sum::<u64>() + self.active.bytes
    }

    /// How many times the log has fsync'd records.
    pub(crate) fn fsyncs(&self) -> u64 {
        self.fsyncs
    }

    /// Writes a group of records built with [`RecordEncoder`] and fsyncs once. On success the
    /// records are durable and `next_position` is past them.
    ///
    /// On error the log's state on disk is unknown (after a failed fsync the kernel may have
    /// dropped the pages): the caller must stop using it; a reopen replays what is there.
    pub(crate) fn write_group(&mut self, group: &RecordEncoder) -> Result<(), LogStoreError> {
        if group.records == 0 {
            return Ok(());
        }
        debug_assert_eq!(group.first_position, self.next_position);
        self.active_file.write_all(&group.buffer).map_err(|e| {
            LogStoreError::io("write write-ahead log segment", &self.active.path, e)
        })?;
        self.active_file.sync_data().map_err(|e| {
            LogStoreError::io("fsync write-ahead log segment", &self.active.path, e)
        })?;
        self.fsyncs += 1;
        self.active.bytes += group.buffer.len() as u64;
        self.next_position = group.first_position + group.records;
        if self.active.bytes >= self.segment_bytes_target {
            self.roll()?;
        }
        Ok(())
    }

    /// Starts an encoder for the next group of records.
    pub(crate) fn encoder(&self, buffer: Vec<u8>) -> RecordEncoder {
        RecordEncoder::new(self.next_position, buffer)
    }

    /// Deletes what is no longer needed once every record up to `through` is committed in
    /// the indexes: whole sealed segments, and the active one when all of it is committed.
    pub(crate) fn truncate_through(&mut self, through: WalPosition) -> Result<(), LogStoreError> {
        let mut removed = false;
        loop {
            let last_position_of_front = match (self.sealed.front(), self.sealed.get(1)) {
                (Some(_), Some(next)) => next.first_position - 1,
                (Some(_), None) => self.active.first_position - 1,
                (None, _) => break,
            };
            if last_position_of_front > through {
                break;
            }
            if let Some(segment) = self.sealed.pop_front() {
                remove_segment(&segment)?;
                removed = true;
            }
        }
        let everything_committed = through + 1 >= self.next_position;
        if everything_committed && self.active.bytes > 0 {
            self.roll()?;
            if let Some(segment) = self.sealed.pop_front() {
                remove_segment(&segment)?;
                removed = true;
            }
        }
        if removed {
            // Not needed for safety (a resurrected segment replays as "already committed"),
            // but keeps the log's size honest after a crash.
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Seals the active segment and starts a new one at `next_position`.
    fn roll(&mut self) -> Result<(), LogStoreError> {
        let (segment, file) = create_segment(&self.dir, self.next_position)?;
        sync_dir(&self.dir)?;
        let sealed = std::mem::replace(&mut self.active, segment);
        self.active_file = file;
        self.sealed.push_back(sealed);
        Ok(())
    }
}

/// Builds a group of records in one buffer, each with its position, length and checksum.
pub(crate) struct RecordEncoder {
    first_position: WalPosition,
    records: u64,
    buffer: Vec<u8>,
}

impl RecordEncoder {
    fn new(first_position: WalPosition, mut buffer: Vec<u8>) -> RecordEncoder {
        buffer.clear();
        RecordEncoder {
            first_position,
            records: 0,
            buffer,
        }
    }

    /// Appends one record whose payload `encode` writes; returns its position.
    pub(crate) fn push(&mut self, encode: impl FnOnce(&mut Vec<u8>)) -> WalPosition {
        let position = self.first_position + self.records;
        let start = self.buffer.len();
        self.buffer
            .extend_from_slice(&[0u8; RECORD_HEADER_BYTES as usize]);
        encode(&mut self.buffer);
        let payload_len = self.buffer.len() - start - RECORD_HEADER_BYTES as usize;
        // The store refuses batches over RECORD_BYTES_MAX (1 GiB) before encoding.
        debug_assert!(payload_len as u64 <= RECORD_BYTES_MAX);
        let payload_len = u32::try_from(payload_len).unwrap_or(u32::MAX);
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&position.to_le_bytes());
        hasher.update(&self.buffer[start + RECORD_HEADER_BYTES as usize..]);
        let header = &mut self.buffer[start..start + RECORD_HEADER_BYTES as usize];
        header[0..4].copy_from_slice(&payload_len.to_le_bytes());
        header[4..8].copy_from_slice(&hasher.finalize().to_le_bytes());
        header[8..16].copy_from_slice(&position.to_le_bytes());
        self.records += 1;
        position
    }

    /// Bytes encoded so far.
    pub(crate) fn len(&self) -> usize {
        self.buffer.len()
    }

    /// Gives the buffer back for reuse.
    pub(crate) fn into_buffer(self) -> Vec<u8> {
        self.buffer
    }
}

struct SegmentReplay {
    records: u64,
    last_position: Option<WalPosition>,
    /// Offset of the first bad record and why it is bad.
    stopped_at: Option<(u64, &'static str)>,
}

fn replay_segment(
    segment: &Segment,
    previous_position: WalPosition,
    on_record: &mut impl FnMut(WalPosition, &[u8]) -> Result<(), LogStoreError>,
) -> Result<SegmentReplay, LogStoreError> {
    let file = File::open(&segment.path)
        .map_err(|e| LogStoreError::io("open write-ahead log segment", &segment.path, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut replay = SegmentReplay {
        records: 0,
        last_position: None,
        stopped_at: None,
    };
    let mut offset = 0u64;
    let mut previous = previous_position;
    let mut payload = Vec::new();
    let read_error = |e| LogStoreError::io("read write-ahead log segment", &segment.path, e);
    loop {
        let mut header = [0u8; RECORD_HEADER_BYTES as usize];
        match read_full(&mut reader, &mut header).map_err(read_error)? {
            0 => break,
            n if n < header.len() => {
                replay.stopped_at = Some((offset, "record header cut short"));
                break;
            }
            _ => {}
        }
        let payload_len = u64::from(u32::from_le_bytes([
            header[0], header[1], header[2], header[3],
        ]));
        let checksum = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let mut position_bytes = [0u8; 8];
        position_bytes.copy_from_slice(&header[8..16]);
        let position = u64::from_le_bytes(position_bytes);
        if payload_len > RECORD_BYTES_MAX
            || offset + RECORD_HEADER_BYTES + payload_len > segment.bytes
        {
            replay.stopped_at = Some((offset, "record length beyond the end of the segment"));
            break;
        }
        payload.resize(payload_len as usize, 0);
        if read_full(&mut reader, &mut payload).map_err(read_error)? < payload.len() {
            replay.stopped_at = Some((offset, "record payload cut short"));
            break;
        }
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&position_bytes);
        hasher.update(&payload);
        if hasher.finalize() != checksum {
            replay.stopped_at = Some((offset, "record checksum mismatch"));
            break;
        }
        if position <= previous {
            replay.stopped_at = Some((offset, "record position does not increase"));
            break;
        }
        on_record(position, &payload)?;
        previous = position;
        replay.records += 1;
        replay.last_position = Some(position);
        offset += RECORD_HEADER_BYTES + payload_len;
    }
    Ok(replay)
}

/// Reads until `buffer` is full or the end of the file; returns the bytes read.
fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn segment_path(dir: &Path, first_position: WalPosition) -> PathBuf {
    dir.join(format!(
        "{SEGMENT_PREFIX}{first_position:020}{SEGMENT_SUFFIX}"
    ))
}

fn list_segments(dir: &Path) -> Result<Vec<Segment>, LogStoreError> {
    let entries =
        fs::read_dir(dir).map_err(|e| LogStoreError::io("list write-ahead log", dir, e))?;
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| LogStoreError::io("list write-ahead log", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(number) = name
            .strip_prefix(SEGMENT_PREFIX)
            .and_then(|rest| rest.strip_suffix(SEGMENT_SUFFIX))
        else {
            continue;
        };
        if number.len() != 20 || !number.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(first_position) = number.parse::<u64>() else {
            continue;
        };
        let path = entry.path();
        let bytes = entry
            .metadata()
            .map_err(|e| LogStoreError::io("stat write-ahead log segment", &path, e))?
            .len();
        segments.push(Segment {
            first_position,
            path,
            bytes,
        });
    }
    segments.sort_by_key(|segment| segment.first_position);
    Ok(segments)
}

fn create_segment(
    dir: &Path,
    first_position: WalPosition,
) -> Result<(Segment, File), LogStoreError> {
    let path = segment_path(dir, first_position);
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .map_err(|e| LogStoreError::io("create write-ahead log segment", &path, e))?;
    Ok((
        Segment {
            first_position,
            path,
            bytes: 0,
        },
        file,
    ))
}

fn remove_segment(segment: &Segment) -> Result<(), LogStoreError> {
    match fs::remove_file(&segment.path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogStoreError::io(
            "remove write-ahead log segment",
            &segment.path,
            e,
        )),
    }
}

fn truncate_file(path: &Path, len: u64) -> Result<(), LogStoreError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| LogStoreError::io("open write-ahead log segment", path, e))?;
    file.set_len(len)
        .and_then(|()| file.sync_all())
        .map_err(|e| LogStoreError::io("cut write-ahead log segment", path, e))
}

/// Makes a directory's entries (created, renamed, removed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogStoreError> {
    File::open(dir)
        .and_then(|file| file.sync_all())
        .map_err(|e| LogStoreError::io("fsync directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path, segment_bytes: u64) -> (Wal, Vec<(u64, Vec<u8>)>) {
        let mut records = Vec::new();
        let (wal, _) = Wal::open(dir, segment_bytes, 1, |position, payload| {
            records.push((position, payload.to_vec()));
            Ok(())
        })
        .unwrap();
        (wal, records)
    }

    fn append(wal: &mut Wal, payloads: &[&[u8]]) -> Vec<u64> {
        let mut encoder = wal.encoder(Vec::new());
        let positions = payloads
            .iter()
            .map(|payload| encoder.push(|out| out.extend_from_slice(payload)))
            .collect();
        wal.write_group(&encoder).unwrap();
        positions
    }

    #[test]
    fn records_replay_in_order_with_their_positions_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, records) = open(dir.path(), SEGMENT_BYTES_MIN);
        assert!(records.is_empty());
        assert_eq!(append(&mut wal, &[b"a", b"b"]), vec![1, 2]);
        assert_eq!(append(&mut wal, &[b"c"]), vec![3]);
        assert_eq!(wal.fsyncs(), 2);
        drop(wal);
        let (mut wal, records) = open(dir.path(), SEGMENT_BYTES_MIN);
        assert_eq!(
            records,
            vec![(1, b"a".to_vec()), (2, b"b".to_vec()), (3, b"c".to_vec())]
        );
        assert_eq!(append(&mut wal, &[b"d"]), vec![4]);
    }

    #[test]
    fn a_torn_tail_is_cut_and_later_appends_replay() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = open(dir.path(), SEGMENT_BYTES_MAX);
        append(&mut wal, &[b"first", b"second"]);
        let path = wal.active.path.clone();
        drop(wal);
        // Simulate a crash in the middle of the second record.
        let len = fs::metadata(&path).unwrap().len();
        truncate_file(&path, len - 3).unwrap();
        let (mut wal, records) = open(dir.path(), SEGMENT_BYTES_MAX);
        assert_eq!(records, vec![(1, b"first".to_vec())]);
        assert_eq!(append(&mut wal, &[b"third"]), vec![2]);
        drop(wal);
        let (_, records) = open(dir.path(), SEGMENT_BYTES_MAX);
        assert_eq!(
            records,
            vec![(1, b"first".to_vec()), (2, b"third".to_vec())]
        );
    }

    #[test]
    fn a_flipped_byte_stops_replay_at_that_record() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = open(dir.path(), SEGMENT_BYTES_MAX);
        append(&mut wal, &[b"one", b"two", b"three"]);
        let path = wal.active.path.clone();
        drop(wal);
        let mut bytes = fs::read(&path).unwrap();
        let second_payload = 2 * RECORD_HEADER_BYTES as usize + 3;
        bytes[second_payload] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        let (_, records) = open(dir.path(), SEGMENT_BYTES_MAX);
        assert_eq!(records, vec![(1, b"one".to_vec())]);
    }

    #[test]
    fn truncation_deletes_whole_segments_and_keeps_positions_increasing() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = open(dir.path(), SEGMENT_BYTES_MIN);
        let payload = vec![7u8; 3000];
        for _ in 0..10 {
            append(&mut wal, &[&payload]);
        }
        assert!(wal.sealed.len() >= 4, "segments roll at the target size");
        let before = wal.bytes();
        wal.truncate_through(5).unwrap();
        assert!(wal.bytes() < before);
        assert!(wal.first_position() <= 6, "record 6 must survive");
        wal.truncate_through(10).unwrap();
        assert_eq!(wal.bytes(), 0, "everything committed: nothing left");
        assert_eq!(wal.first_position(), 11);
        drop(wal);
        let (mut wal, records) = open(dir.path(), SEGMENT_BYTES_MIN);
        assert!(records.is_empty());
        assert_eq!(
            append(&mut wal, &[b"x"]),
            vec![11],
            "positions are never reused"
        );
    }

    #[test]
    fn min_next_position_is_a_floor() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), SEGMENT_BYTES_MIN, 42, |_, _| Ok(())).unwrap();
        assert_eq!(append(&mut wal, &[b"x"]), vec![42]);
    }
}

//! Batches prepared by the caller: [`AppendBatch`] validates each document, encodes it for the
//! write-ahead log and converts it to a tantivy document in the caller's thread, as soon as the
//! caller has built it.
//!
//! Why there: the documents' bytes are still in that thread's cache, and they are freed by the
//! thread that allocated them. Done later on the log and indexer threads, the same copies read
//! memory another core wrote and freed it across threads, most of those threads' time
//! (BENCHMARKS.md, session 5). The log thread now copies one buffer per request and the
//! indexer routes ready documents.

use std::ops::Range;

use tantivy::TantivyDocument;

use crate::codec;
use crate::document::{LogDocument, WriteMode, validate_document};
use crate::error::LogStoreError;
use crate::partition::PartitionKey;
use crate::schema::LogSchema;
use crate::wal::RECORD_HEADER_BYTES;

/// Documents ready to append: see [`crate::LogStore::batch`] and
/// [`crate::LogStore::append_batch`].
pub struct AppendBatch {
    schema: LogSchema,
    /// The documents' write-ahead-log encoding, one after the other (no batch header), in
    /// chunks of about [`CHUNK_BYTES`] that are never grown: one buffer doubling to megabytes
    /// was fresh memory at each growth, and faulting it in cost as much as the encoding.
    chunks: Vec<Vec<u8>>,
    /// Each document's chunk and bytes in it.
    ranges: Vec<(usize, Range<usize>)>,
    documents: Vec<PreparedDocument>,
}

/// The size of an [`AppendBatch`]'s encoding chunks (a larger document takes a chunk of its
/// own).
const CHUNK_BYTES: usize = 64 << 10;

/// A document as the indexer takes it.
pub(crate) struct PreparedDocument {
    pub key: PartitionKey,
    pub id: String,
    pub mode: WriteMode,
    pub tantivy: TantivyDocument,
}

impl PreparedDocument {
    /// Converts a document (the replay path: decoded from the log).
    pub(crate) fn new(schema: &LogSchema, document: LogDocument) -> Self {
        let tantivy = schema.to_tantivy(&document);
        let key = PartitionKey {
            day: document.day(),
            tenant: document.tenant,
        };
        PreparedDocument {
            key,
            id: document.id,
            mode: document.mode,
            tantivy,
        }
    }
}

impl AppendBatch {
    pub(crate) fn new(schema: LogSchema) -> Self {
        AppendBatch {
            schema,
            chunks: Vec::new(),
            ranges: Vec::new(),
            documents: Vec::new(),
        }
    }

    /// Makes room for `documents` more documents.
    pub fn reserve(&mut self, documents: usize) {
        self.ranges.reserve(documents);
        self.documents.reserve(documents);
    }

    /// Adds a document. An invalid document (tenant, `_id`, `@timestamp` out of range, field
    /// keys) is refused with the reason and leaves the batch as it was.
    pub fn push(&mut self, document: LogDocument) -> Result<(), LogStoreError> {
        validate_document(&document)?;
        self.append_encoded(codec::document_len(&document), |chunk| {
            codec::encode_document(&document, chunk);
        });
        self.documents
            .push(PreparedDocument::new(&self.schema, document));
        Ok(())
    }

    /// Keeps the documents for which `keep(index)` is true (index in order of `push`).
    pub fn retain(&mut self, mut keep: impl FnMut(usize) -> bool) {
        let chunks = std::mem::take(&mut self.chunks);
        let pushed = std::mem::take(&mut self.documents)
            .into_iter()
            .zip(std::mem::take(&mut self.ranges));
        let mut kept = Vec::with_capacity(pushed.len());
        for (index, (document, (chunk, range))) in pushed.enumerate() {
            if keep(index) {
                kept.push((document, &chunks[chunk][range]));
            }
        }
        self.reserve(kept.len());
        for (document, encoded) in kept {
            self.append_encoded(encoded.len(), |chunk| chunk.extend_from_slice(encoded));
            self.documents.push(document);
        }
    }

    /// Appends one document's encoding, `len` bytes that `write` appends, to a chunk with room
    /// for it, and records where it is.
    fn append_encoded(&mut self, len: usize, write: impl FnOnce(&mut Vec<u8>)) {
        let fits = self
            .chunks
            .last()
            .is_some_and(|chunk| chunk.capacity() - chunk.len() >= len);
        if !fits {
            self.chunks.push(Vec::with_capacity(CHUNK_BYTES.max(len)));
        }
        let last = self.chunks.len() - 1;
        let chunk = &mut self.chunks[last];
        let start = chunk.len();
        write(chunk);
        debug_assert_eq!(chunk.len() - start, len, "the encoding's length is exact");
        self.ranges.push((last, start..start + len));
    }

    /// Documents in the batch.
    pub fn len(&self) -> usize {
        self.documents.len()
    }

    /// Whether the batch holds no document.
    pub fn is_empty(&self) -> bool {
        self.documents.is_empty()
    }

    /// Bytes the batch takes in the log, record header included.
    pub(crate) fn record_bytes(&self) -> u64 {
        let payload: usize = self.chunks.iter().map(Vec::len).sum();
        RECORD_HEADER_BYTES + codec::HEADER_BYTES + payload as u64
    }

    /// Appends the record's payload (what `codec::decode` reads) to `out`.
    pub(crate) fn write_record(&self, out: &mut Vec<u8>) {
        codec::encode_header(self.documents.len(), out);
        for chunk in &self.chunks {
            out.extend_from_slice(chunk);
        }
    }

    /// The documents as appended, decoded from the log's encoding (for additional sinks).
    pub(crate) fn decode(&self) -> Result<Vec<LogDocument>, String> {
        let mut record = Vec::with_capacity(self.record_bytes() as usize);
        self.write_record(&mut record);
        codec::decode(&record)
    }

    pub(crate) fn documents(&self) -> &[PreparedDocument] {
        &self.documents
    }

    pub(crate) fn into_documents(self) -> Vec<PreparedDocument> {
        self.documents
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::day::Day;
    use crate::document::FieldValue;

    fn document(id: &str) -> LogDocument {
        LogDocument {
            tenant: "payments".to_owned(),
            id: id.to_owned(),
            timestamp_ms: Day::from_ymd(2026, 11, 22).unwrap().start_ms(),
            source: format!(r#"{{"n":"{id}"}}"#).into_bytes(),
            fields: vec![("n".to_owned(), FieldValue::Keyword(id.to_owned()))],
            mode: WriteMode::Create,
        }
    }

    #[test]
    fn the_record_decodes_to_what_was_pushed_and_kept() {
        let mut batch = AppendBatch::new(LogSchema::new());
        for id in ["a", "b", "c", "d"] {
            batch.push(document(id)).unwrap();
        }
        // Chunks: documents larger than a chunk, and many that fill several.
        let mut large = document("large");
        large.source = vec![b' '; CHUNK_BYTES + 1];
        let many: Vec<_> = (0..2000).map(|n| document(&n.to_string())).collect();
        batch.push(large.clone()).unwrap();
        for document in &many {
            batch.push(document.clone()).unwrap();
        }
        assert!(batch.chunks.len() > 3, "{} chunks", batch.chunks.len());
        let all: Vec<_> = ["a", "b", "c", "d"]
            .into_iter()
            .map(document)
            .chain([large])
            .chain(many.iter().cloned())
            .collect();
        assert_eq!(batch.decode().unwrap(), all);
        batch.retain(|index| index < 4);
        let mut invalid = document("e");
        invalid.id.clear();
        assert!(batch.push(invalid).is_err());
        assert_eq!(batch.len(), 4);
        batch.retain(|index| index % 2 == 1);
        assert_eq!(
            batch.decode().unwrap(),
            [document("b"), document("d")],
            "the kept documents, in order"
        );
        let ids: Vec<_> = batch.documents().iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["b", "d"]);
        let mut record = Vec::new();
        batch.write_record(&mut record);
        assert_eq!(
            record.len() as u64 + RECORD_HEADER_BYTES,
            batch.record_bytes()
        );
        assert_eq!(
            record.len() as u64,
            codec::encoded_len(&[document("b"), document("d")])
        );
    }
}

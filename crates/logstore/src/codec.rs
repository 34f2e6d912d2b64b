//! The binary encoding of a batch of documents in a write-ahead-log record.
//!
//! Little-endian, length-prefixed, no allocation beyond the output buffer. The record framing
//! (length, checksum, position) is the WAL's business (`wal.rs`); this module only turns a
//! batch into bytes and back, so it is pure and tested without files.
//!
//! ```text
//! batch    = version:u8 count:u32 document*
//! document = mode:u8 tenant:str8 id:str16 timestamp_ms:i64 source:bytes32 count:u32 field*
//! field    = key:str16 tag:u8 value        (tag: 0 keyword, 1 text: str32; 2 long: i64;
//!                                           3 double: f64 bits; 4 boolean: u8; 5 date: i64)
//! ```

use crate::document::{FieldValue, LogDocument, WriteMode};

/// The encoding's version byte; a reader refuses any other.
const VERSION: u8 = 1;

/// Bytes of the batch header (version and count).
pub(crate) const HEADER_BYTES: u64 = 1 + 4;

/// Bytes needed to encode `documents` (exact).
#[cfg(test)]
pub(crate) fn encoded_len(documents: &[LogDocument]) -> u64 {
    HEADER_BYTES + documents.iter().map(document_len).sum::<usize>() as u64
}

/// Bytes needed to encode one document (exact).
pub(crate) fn document_len(document: &LogDocument) -> usize {
    let mut len = 1 + (1 + document.tenant.len()) + (2 + document.id.len()) + 8;
    len += 4 + document.source.len() + 4;
    for (key, value) in &document.fields {
        len += 2 + key.len() + 1;
        len += match value {
            FieldValue::Keyword(text) | FieldValue::Text(text) => 4 + text.len(),
            FieldValue::Long(_) | FieldValue::Double(_) | FieldValue::Date(_) => 8,
            FieldValue::Boolean(_) => 1,
        };
    }
    len
}

/// Appends the encoding of `documents` to `out`.
#[cfg(test)]
pub(crate) fn encode(documents: &[LogDocument], out: &mut Vec<u8>) {
    encode_header(documents.len(), out);
    for document in documents {
        encode_document(document, out);
    }
}

/// Appends the batch header: the encoding's version and the number of documents that follow.
pub(crate) fn encode_header(documents: usize, out: &mut Vec<u8>) {
    out.push(VERSION);
    put_u32(out, documents);
}

/// Appends the encoding of one document of a batch.
///
/// Every length fits its prefix: tenants, ids and keys are validated before (63, 512 and 256
/// bytes), and a batch is refused unless its encoding is at most `wal::RECORD_BYTES_MAX`
/// (1 GiB), so no source or value reaches 4 GiB. Should one ever not fit, the prefix
/// saturates and the record fails to decode: it never wraps silently.
pub(crate) fn encode_document(document: &LogDocument, out: &mut Vec<u8>) {
    out.push(match document.mode {
        WriteMode::Create => 0,
        WriteMode::Upsert => 1,
    });
    out.push(u8::try_from(document.tenant.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(document.tenant.as_bytes());
    put_str16(out, &document.id);
    out.extend_from_slice(&document.timestamp_ms.to_le_bytes());
    put_u32(out, document.source.len());
    out.extend_from_slice(&document.source);
    put_u32(out, document.fields.len());
    for (key, value) in &document.fields {
        put_str16(out, key);
        match value {
            FieldValue::Keyword(text) => {
                out.push(0);
                put_u32(out, text.len());
                out.extend_from_slice(text.as_bytes());
            }
            FieldValue::Text(text) => {
                out.push(1);
                put_u32(out, text.len());
                out.extend_from_slice(text.as_bytes());
            }
            FieldValue::Long(value) => {
                out.push(2);
                out.extend_from_slice(&value.to_le_bytes());
            }
            FieldValue::Double(value) => {
                out.push(3);
                out.extend_from_slice(&value.to_bits().to_le_bytes());
            }
            FieldValue::Boolean(value) => {
                out.push(4);
                out.push(u8::from(*value));
            }
            FieldValue::Date(value) => {
                out.push(5);
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
    }
}

/// Decodes a batch encoded by [`encode`].
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<LogDocument>, String> {
    let mut reader = Reader { bytes, offset: 0 };
    let version = reader.u8()?;
    if version != VERSION {
        return Err(format!("unknown batch encoding version {version}"));
    }
    let count = reader.u32()? as usize;
    // Each document needs at least 28 bytes: do not trust `count` for the allocation.
    let mut documents = Vec::with_capacity(count.min(bytes.len() / 28));
    for _ in 0..count {
        let mode = match reader.u8()? {
            0 => WriteMode::Create,
            1 => WriteMode::Upsert,
            other => return Err(format!("unknown write mode {other}")),
        };
        let tenant_len = usize::from(reader.u8()?);
        let tenant = reader.string(tenant_len)?;
        let id_len = usize::from(reader.u16()?);
        let id = reader.string(id_len)?;
        let timestamp_ms = reader.i64()?;
        let source_len = reader.u32()? as usize;
        let source = reader.take(source_len)?.to_vec();
        let field_count = reader.u32()? as usize;
        let mut fields = Vec::with_capacity(field_count.min(reader.remaining() / 3));
        for _ in 0..field_count {
            let key_len = usize::from(reader.u16()?);
            let key = reader.string(key_len)?;
            let value = match reader.u8()? {
                0 => {
                    let len = reader.u32()? as usize;
                    FieldValue::Keyword(reader.string(len)?)
                }
                1 => {
                    let len = reader.u32()? as usize;
                    FieldValue::Text(reader.string(len)?)
                }
                2 => FieldValue::Long(reader.i64()?),
                3 => FieldValue::Double(f64::from_bits(reader.i64()? as u64)),
                4 => FieldValue::Boolean(reader.u8()? != 0),
                5 => FieldValue::Date(reader.i64()?),
                other => return Err(format!("unknown field value tag {other}")),
            };
            fields.push((key, value));
        }
        documents.push(LogDocument {
            tenant,
            id,
            timestamp_ms,
            source,
            fields,
            mode,
        });
    }
    if reader.remaining() != 0 {
        return Err(format!("{} trailing bytes", reader.remaining()));
    }
    Ok(documents)
}

fn put_u32(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
}

fn put_str16(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&u16::try_from(text.len()).unwrap_or(u16::MAX).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.offset
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        if self.remaining() < len {
            return Err(format!(
                "truncated: needs {len} bytes at offset {}, {} left",
                self.offset,
                self.remaining()
            ));
        }
        let slice = &self.bytes[self.offset..self.offset + len];
        self.offset += len;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn string(&mut self, len: usize) -> Result<String, String> {
        let offset = self.offset;
        String::from_utf8(self.take(len)?.to_vec())
            .map_err(|_| format!("invalid UTF-8 in string at offset {offset}"))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn field_value() -> impl Strategy<Value = FieldValue> {
        prop_oneof![
            ".{0,20}".prop_map(FieldValue::Keyword),
            ".{0,40}".prop_map(FieldValue::Text),
            any::<i64>().prop_map(FieldValue::Long),
            // NaN != NaN: compare finite doubles (bits are kept either way).
            (-1e12f64..1e12).prop_map(FieldValue::Double),
            any::<bool>().prop_map(FieldValue::Boolean),
            any::<i64>().prop_map(FieldValue::Date),
        ]
    }

    fn document() -> impl Strategy<Value = LogDocument> {
        (
            "[a-z0-9]{1,63}",
            ".{1,40}",
            any::<i64>(),
            proptest::collection::vec(any::<u8>(), 0..200),
            proptest::collection::vec(("[a-z.]{1,20}", field_value()), 0..8),
            any::<bool>(),
        )
            .prop_map(
                |(tenant, id, timestamp_ms, source, fields, upsert)| LogDocument {
                    tenant,
                    id,
                    timestamp_ms,
                    source,
                    fields,
                    mode: if upsert {
                        WriteMode::Upsert
                    } else {
                        WriteMode::Create
                    },
                },
            )
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(documents in proptest::collection::vec(document(), 0..6)) {
            let mut bytes = Vec::new();
            encode(&documents, &mut bytes);
            prop_assert_eq!(bytes.len() as u64, encoded_len(&documents));
            prop_assert_eq!(decode(&bytes).unwrap(), documents);
        }

        #[test]
        fn truncated_input_is_an_error_not_a_panic(documents in proptest::collection::vec(document(), 1..4), cut in 0usize..1000) {
            let mut bytes = Vec::new();
            encode(&documents, &mut bytes);
            let cut = cut % bytes.len();
            prop_assert!(decode(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn unknown_version_is_refused() {
        let error = decode(&[9, 0, 0, 0, 0]).unwrap_err();
        assert!(error.contains("version 9"), "{error}");
    }
}

//! Decoding the `CodeGeneratorRequest` without losing custom options.
//!
//! `prost_types::compiler::CodeGeneratorRequest` decodes each file into a
//! `prost_types::FileDescriptorProto`, which drops unknown fields, and the
//! `(caravan.field)` options are exactly that: extensions of `FieldOptions`. So the files
//! are kept as the bytes protoc sent and passed on, re-wrapped as an encoded
//! `FileDescriptorSet`, to `caravan_schema::compile_descriptor_set`, which decodes them with
//! prost-reflect and keeps the extensions.

use prost::Message;

/// The parts of `google.protobuf.compiler.CodeGeneratorRequest` the plugin uses, field
/// numbers as in `plugin.proto`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Request {
    /// The files named on the protoc command line.
    #[prost(string, repeated, tag = "1")]
    pub(crate) file_to_generate: Vec<String>,
    /// The `--estemplate_opt` values, joined with `,`.
    #[prost(string, optional, tag = "2")]
    pub(crate) parameter: Option<String>,
    /// Every file to generate and everything it imports, dependencies first, still encoded.
    #[prost(bytes = "vec", repeated, tag = "15")]
    pub(crate) proto_file: Vec<Vec<u8>>,
}

/// `google.protobuf.FileDescriptorSet`, with its files still encoded.
#[derive(Clone, PartialEq, Message)]
struct EncodedFileDescriptorSet {
    #[prost(bytes = "vec", repeated, tag = "1")]
    file: Vec<Vec<u8>>,
}

impl Request {
    /// Decodes a request as read from stdin.
    pub(crate) fn decode_bytes(bytes: &[u8]) -> Result<Self, String> {
        Request::decode(bytes)
            .map_err(|err| format!("cannot decode the CodeGeneratorRequest: {err}"))
    }

    /// The files as an encoded `FileDescriptorSet`, extensions intact.
    pub(crate) fn encoded_descriptor_set(&self) -> Vec<u8> {
        EncodedFileDescriptorSet {
            file: self.proto_file.clone(),
        }
        .encode_to_vec()
    }
}

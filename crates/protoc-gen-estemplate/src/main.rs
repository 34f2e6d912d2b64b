//! `protoc-gen-estemplate`: a protoc plugin turning a Caravan log schema into Elasticsearch
//! index templates or a field dictionary.
//!
//! ```text
//! protoc -I schema --estemplate_out=out \
//!   --estemplate_opt=format=es-template,index_patterns=payments-*;payments-v2-* \
//!   schema/log_schema.proto
//! ```
//!
//! The plugin is glue: it reads a `CodeGeneratorRequest` on stdin, hands the descriptors to
//! `caravan_schema::compile_descriptor_set` and the result to `caravan_schema::render`, the
//! same calls `caravan schema` makes, so the files it writes are byte for byte what the CLI
//! renders. Options are listed in `params`; list values are separated by `;` or `|`.
//!
//! Errors (bad options, invalid schema, unreadable template) go back to protoc in the
//! response's `error` field and the plugin exits 0, as the plugin protocol requires; protoc
//! prints the message and fails. The plugin exits non-zero only when it cannot talk to
//! protoc at all (stdin or stdout failing).

mod params;
mod request;

use std::io::{self, Read, Write};
use std::process::ExitCode;

use caravan_schema::{RenderOptions, compile_descriptor_set, render};
use prost::Message;
use prost_types::compiler::CodeGeneratorResponse;
use prost_types::compiler::code_generator_response::{Feature, File};

use crate::request::Request;

fn main() -> ExitCode {
    let mut input = Vec::new();
    if let Err(err) = io::stdin().read_to_end(&mut input) {
        eprintln!("protoc-gen-estemplate: cannot read the request from stdin: {err}");
        return ExitCode::FAILURE;
    }
    let response = respond(&input);
    let mut stdout = io::stdout().lock();
    if let Err(err) = stdout
        .write_all(&response.encode_to_vec())
        .and_then(|()| stdout.flush())
    {
        eprintln!("protoc-gen-estemplate: cannot write the response to stdout: {err}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The response to an encoded request: the generated files, or the error.
fn respond(input: &[u8]) -> CodeGeneratorResponse {
    let (file, error) = match generate(input) {
        Ok(files) => (files, None),
        Err(message) => (Vec::new(), Some(message)),
    };
    CodeGeneratorResponse {
        error,
        // Proto3 `optional` fields are plain keys to us.
        supported_features: Some(Feature::Proto3Optional as u64),
        file,
    }
}

fn generate(input: &[u8]) -> Result<Vec<File>, String> {
    let request = Request::decode_bytes(input)?;
    let params = params::parse(request.parameter.as_deref().unwrap_or_default())?;
    let template = match &params.template_path {
        // The binary edge may read files; the library never does.
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|err| format!("cannot read template `{path}`: {err}"))?,
        ),
        None => None,
    };
    let dictionary = compile_descriptor_set(
        &request.encoded_descriptor_set(),
        &request.file_to_generate,
        &params.compile,
    )
    .map_err(|err| err.to_string())?;

    params
        .formats
        .iter()
        .map(|&format| {
            let options = RenderOptions {
                format,
                template: template.clone(),
                ..params.render.clone()
            };
            let content = render(&dictionary, &options).map_err(|err| err.to_string())?;
            Ok(File {
                name: Some(params.file_name(format)),
                content: Some(content),
                ..File::default()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_input_is_an_error_response() {
        let response = respond(b"\xff\xff\xff");
        assert!(response.error.unwrap().contains("cannot decode"));
        assert!(response.file.is_empty());
        assert_eq!(
            response.supported_features,
            Some(Feature::Proto3Optional as u64)
        );
    }

    #[test]
    fn bad_parameters_are_an_error_response() {
        let request = Request {
            file_to_generate: vec!["x.proto".to_owned()],
            parameter: Some("colour=red".to_owned()),
            proto_file: Vec::new(),
        };
        let response = respond(&request.encode_to_vec());
        assert!(response.error.unwrap().contains("unknown option `colour`"));
    }
}

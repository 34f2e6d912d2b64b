//! Round trips through the real `protoc`: the plugin's files must equal the library render
//! byte for byte, and a bad schema must fail through the response, never a panic.
//!
//! These tests need `protoc` (Debian: `protobuf-compiler`, with `libprotobuf-dev` for the
//! well-known types). They fail, loudly, when it is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use caravan_schema::{CompileOptions, Format, OPTIONS_PROTO, RenderOptions, compile_files, render};

const PLUGIN: &str = env!("CARGO_BIN_EXE_protoc-gen-estemplate");

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/schema")
}

fn protoc() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("protoc"))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "protoc not found on PATH: install it (Debian: apt-get install -y protobuf-compiler \
             libprotobuf-dev) to run the plugin round-trip tests"
        )
    })
}

/// A temporary directory holding `caravan/options.proto`, as `caravan schema init` writes it.
fn options_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("caravan")).unwrap();
    std::fs::write(dir.path().join("caravan/options.proto"), OPTIONS_PROTO).unwrap();
    dir
}

/// Runs protoc with the plugin on `file` (found under `proto_dir`), writing into `out`.
fn run_protoc(proto_dir: &Path, file: &str, parameter: &str, out: &Path) -> Output {
    let options = options_dir();
    let output = Command::new(protoc())
        .arg(format!("--plugin=protoc-gen-estemplate={PLUGIN}"))
        .arg(format!("--estemplate_out={}", out.display()))
        .arg(format!("--estemplate_opt={parameter}"))
        .arg("-I")
        .arg(proto_dir)
        .arg("-I")
        .arg(options.path())
        .arg(proto_dir.join(file))
        .output()
        .unwrap();
    drop(options);
    output
}

fn library_render(options: &RenderOptions) -> String {
    let source = std::fs::read_to_string(example_dir().join("log_schema.proto")).unwrap();
    let dictionary =
        compile_files([("log_schema.proto", source)], &CompileOptions::default()).unwrap();
    render(&dictionary, options).unwrap()
}

const PARAMETER: &str = "index_patterns=payments-*;payments-v2-*,lifecycle_policy=logs-10d,\
                         retention_days=10,priority=200,schema_version=2024.06.1";

fn render_options(format: Format) -> RenderOptions {
    RenderOptions {
        format,
        index_patterns: vec!["payments-*".to_owned(), "payments-v2-*".to_owned()],
        lifecycle_policy: Some("logs-10d".to_owned()),
        retention_days: Some(10),
        priority: Some(200),
        schema_version: Some("2024.06.1".to_owned()),
        ..RenderOptions::default()
    }
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "protoc failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn plugin_output_equals_the_library_render_for_every_format() {
    for format in Format::ALL {
        let out = tempfile::tempdir().unwrap();
        let parameter = format!("format={format},{PARAMETER}");
        let output = run_protoc(&example_dir(), "log_schema.proto", &parameter, out.path());
        assert_success(&output);

        let written = std::fs::read(out.path().join(format.default_file_name())).unwrap();
        let expected = library_render(&render_options(format));
        assert!(
            written == expected.as_bytes(),
            "{format}: plugin output differs from the library render:\n{}",
            String::from_utf8_lossy(&written)
        );
    }
}

#[test]
fn plugin_writes_several_formats_and_custom_names() {
    let out = tempfile::tempdir().unwrap();
    let parameter = format!("format=dictionary|es-legacy-template,{PARAMETER}");
    assert_success(&run_protoc(
        &example_dir(),
        "log_schema.proto",
        &parameter,
        out.path(),
    ));
    for format in [Format::Dictionary, Format::EsLegacyTemplate] {
        let written = std::fs::read_to_string(out.path().join(format.default_file_name())).unwrap();
        assert_eq!(written, library_render(&render_options(format)));
    }

    let out = tempfile::tempdir().unwrap();
    let parameter = format!("format=es-template,out=payments.json,{PARAMETER}");
    assert_success(&run_protoc(
        &example_dir(),
        "log_schema.proto",
        &parameter,
        out.path(),
    ));
    let written = std::fs::read_to_string(out.path().join("payments.json")).unwrap();
    assert_eq!(written, library_render(&render_options(Format::EsTemplate)));
}

#[test]
fn plugin_uses_a_template_file() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("keys.json.j2");
    let text = r#"{"root": {{ root | tojson }}, "keys": {{ fields | map(attribute="key") | list | tojson }}}"#;
    std::fs::write(&template, text).unwrap();

    let out = tempfile::tempdir().unwrap();
    let parameter = format!("format=dictionary,template={}", template.display());
    assert_success(&run_protoc(
        &example_dir(),
        "log_schema.proto",
        &parameter,
        out.path(),
    ));
    let written = std::fs::read_to_string(out.path().join("dictionary.json")).unwrap();
    let expected = library_render(&RenderOptions {
        template: Some(text.to_owned()),
        ..RenderOptions::default()
    });
    assert_eq!(written, expected);
    let json: serde_json::Value = serde_json::from_str(&written).unwrap();
    assert_eq!(json["root"], "acme.logs.v1.LogSchema");
}

#[test]
fn a_bad_schema_fails_through_the_response_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.proto"),
        r#"syntax = "proto3";
import "caravan/options.proto";
message LogSchema {
  int64 count = 1 [(caravan.field) = { text: true }];
  Node node = 2;
}
message Node { Node child = 1; }
"#,
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let output = run_protoc(dir.path(), "bad.proto", "format=dictionary", out.path());
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert!(!output.status.success(), "protoc should fail:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("bad.proto:4:3: key `count`: option `text` does not apply"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "bad.proto:7:16: key `node.child`: message contains itself: Node.child -> Node [cycle]"
        ),
        "{stderr}"
    );
    assert!(std::fs::read_dir(out.path()).unwrap().next().is_none());
}

#[test]
fn bad_options_fail_through_the_response() {
    let out = tempfile::tempdir().unwrap();
    let output = run_protoc(
        &example_dir(),
        "log_schema.proto",
        "format=es-template",
        out.path(),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("needs at least one index pattern"),
        "{stderr}"
    );

    let output = run_protoc(&example_dir(), "log_schema.proto", "colour=red", out.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("unknown option `colour`"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

//! The schema: local compile and diff through the CLI, and the registry over HTTP.

use std::path::{Path, PathBuf};
use std::process::Command;

use caravan_schema::{CompileOptions, Format, RenderOptions};
use serde_json::{Value, json};

use crate::harness::{TestServer, caravan_bin, stderr_failed, stdout_ok};

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/schema")
}

fn example_source() -> String {
    std::fs::read_to_string(example_dir().join("log_schema.proto")).unwrap()
}

fn caravan(args: &[&str]) -> std::process::Output {
    Command::new(caravan_bin()).args(args).output().unwrap()
}

#[test]
fn cli_compile_is_byte_identical_to_the_library() {
    let example = example_dir().join("log_schema.proto");
    let dictionary = caravan_schema::compile_files(
        [("log_schema.proto", example_source())],
        &CompileOptions::default(),
    )
    .unwrap();
    for format in ["dictionary", "es-template", "es-legacy-template"] {
        let output = caravan(&[
            "schema",
            "compile",
            example.to_str().unwrap(),
            "--format",
            format,
            "--index-pattern",
            "payments-*",
        ]);
        let cli = stdout_ok(&output);
        let options = RenderOptions {
            format: format.parse::<Format>().unwrap(),
            index_patterns: vec!["payments-*".to_owned()],
            ..RenderOptions::default()
        };
        let library = caravan_schema::render(&dictionary, &options).unwrap();
        assert_eq!(cli, library, "{format}");
        let _: Value = serde_json::from_str(&cli).unwrap();
    }
}

#[test]
fn init_compile_and_diff() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().to_str().unwrap();
    stdout_ok(&caravan(&["schema", "init", target]));
    assert!(dir.path().join("caravan/options.proto").exists());
    let refused = stderr_failed(&caravan(&["schema", "init", target]));
    assert!(refused.contains("already exists"), "{refused}");

    let schema = dir.path().join("log_schema.proto");
    let dictionary = stdout_ok(&caravan(&["schema", "compile", schema.to_str().unwrap()]));
    let dictionary: Value = serde_json::from_str(&dictionary).unwrap();
    let user_id = dictionary["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "userId")
        .unwrap();
    assert_eq!(user_id["aliases"], json!(["user_id", "user-id"]));

    // A compatible change: a key added.
    let added = dir.path().join("added.proto");
    std::fs::write(
        &added,
        example_source().replace(
            "string span_id = 11",
            "string tenant_id = 30;\n  string span_id = 11",
        ),
    )
    .unwrap();
    let diff = stdout_ok(&caravan(&[
        "schema",
        "diff",
        schema.to_str().unwrap(),
        added.to_str().unwrap(),
    ]));
    assert!(diff.contains("+ added     tenant_id (keyword)"), "{diff}");

    // A type change: the mapping conflict is caught before production, with a non-zero exit.
    let changed = dir.path().join("changed.proto");
    std::fs::write(
        &changed,
        example_source().replace("int64 bytes = 9;", "string bytes = 9;"),
    )
    .unwrap();
    let output = caravan(&[
        "schema",
        "diff",
        schema.to_str().unwrap(),
        changed.to_str().unwrap(),
    ]);
    let stderr = stderr_failed(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("! conflict  bytes: long -> keyword"),
        "{stdout}"
    );
    assert!(stderr.contains("1 key(s) change type"), "{stderr}");

    // A broken schema names file, line and column.
    let broken = dir.path().join("broken.proto");
    std::fs::write(
        &broken,
        example_source().replace(
            "string trace_id = 10 [(caravan.field) = { aliases: [\"traceId\", \"trace-id\"] }];",
            "string trace_id = 10 [(caravan.field) = { aliases: [\"userId\"] }];",
        ),
    )
    .unwrap();
    let stderr = stderr_failed(&caravan(&["schema", "compile", broken.to_str().unwrap()]));
    assert!(stderr.contains("broken.proto:"), "{stderr}");
    assert!(stderr.contains("userId"), "{stderr}");
}

fn push_body(source: &str) -> Value {
    json!({"files": [{"name": "log_schema.proto", "content": source}]})
}

const EXTENSION: &str = r#"
syntax = "proto3";
import "caravan/options.proto";
message LogSchema {
  string payment_id = 1 [(caravan.field) = { aliases: ["paymentId"] }];
  int64 amount_cents = 2;
}
"#;

#[test]
fn registry_versions_refusals_and_extensions() {
    let server = TestServer::start();
    let admin = server.admin_token();
    let admin = Some(admin.as_str());
    server.create_tenant("payments");
    server.create_tenant("search");
    let writer = server.create_token(
        json!({"name": "w", "kind": "tenant", "tenant": "payments", "scopes": ["logs:write"]}),
    );
    let reader = server.create_token(
        json!({"name": "r", "kind": "tenant", "tenant": "payments", "scopes": ["logs:read"]}),
    );
    let search = server.create_token(
        json!({"name": "s", "kind": "tenant", "tenant": "search", "scopes": ["logs:write"]}),
    );

    let (status, body) = server.call("GET", "/api/v1/schema", admin, None);
    assert_eq!(status, 404);
    assert!(
        body["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("caravan schema push"),
        "{body}"
    );

    // Only admins push the common schema.
    let (status, _) = server.call(
        "POST",
        "/api/v1/schema",
        Some(&writer),
        Some(push_body(&example_source())),
    );
    assert_eq!(status, 403);
    let (status, pushed) = server.call(
        "POST",
        "/api/v1/schema",
        admin,
        Some(push_body(&example_source())),
    );
    assert_eq!(status, 201, "{pushed}");
    assert_eq!(pushed["version"], 1);

    // A type change is refused with the list of conflicts; nothing is stored.
    let changed = example_source()
        .replace("int64 bytes = 9;", "string bytes = 9;")
        .replace("int64 duration_ms = 8;", "double duration_ms = 8;");
    let (status, body) = server.call("POST", "/api/v1/schema", admin, Some(push_body(&changed)));
    assert_eq!(status, 409, "{body}");
    let reason = body["error"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("key `bytes` would change type from long to keyword"),
        "{reason}"
    );
    assert!(
        reason.contains("key `duration_ms` would change type from long to double"),
        "{reason}"
    );

    // An invalid schema is a 400 naming the position.
    let broken = example_source().replace("int64 bytes = 9;", "int64 bytes = 9");
    let (status, body) = server.call("POST", "/api/v1/schema", admin, Some(push_body(&broken)));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("log_schema.proto:"),
        "{body}"
    );

    // A compatible change becomes version 2; version 1 stays readable, by any token.
    let added = example_source().replace(
        "string span_id = 11",
        "string tenant_id = 30;\n  string span_id = 11",
    );
    let (status, pushed) = server.call("POST", "/api/v1/schema", admin, Some(push_body(&added)));
    assert_eq!(status, 201, "{pushed}");
    assert_eq!(pushed["version"], 2);
    assert!(
        pushed["changes"].to_string().contains("tenant_id"),
        "{pushed}"
    );
    let (status, v1) = server.call("GET", "/api/v1/schema?version=1", Some(&reader), None);
    assert_eq!(status, 200);
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["files"][0]["content"], example_source());
    let (_, versions) = server.call("GET", "/api/v1/schema/versions", Some(&reader), None);
    assert_eq!(versions.as_array().unwrap().len(), 2);

    // Extensions: the tenant's writer may push; a reader may not; another tenant cannot see it.
    let (status, _) = server.call(
        "POST",
        "/api/v1/tenants/payments/schema",
        Some(&reader),
        Some(push_body(EXTENSION)),
    );
    assert_eq!(status, 403);
    let (status, _) = server.call(
        "POST",
        "/api/v1/tenants/payments/schema",
        Some(&search),
        Some(push_body(EXTENSION)),
    );
    assert_eq!(status, 404);
    let (status, pushed) = server.call(
        "POST",
        "/api/v1/tenants/payments/schema",
        Some(&writer),
        Some(push_body(EXTENSION)),
    );
    assert_eq!(status, 201, "{pushed}");
    let (status, _) = server.call(
        "GET",
        "/api/v1/tenants/payments/schema",
        Some(&search),
        None,
    );
    assert_eq!(status, 404);

    // An extension can never redefine a common key or alias.
    let redefining = EXTENSION.replace(
        "int64 amount_cents = 2;",
        "int64 amount_cents = 2;\n  string user_id = 3;",
    );
    let (status, body) = server.call(
        "POST",
        "/api/v1/tenants/payments/schema",
        Some(&writer),
        Some(push_body(&redefining)),
    );
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("user_id"),
        "{body}"
    );

    // The dictionary in force for the tenant merges both; other tenants only get the common one.
    let (_, dictionary) = server.call(
        "GET",
        "/api/v1/tenants/payments/schema/dictionary",
        Some(&reader),
        None,
    );
    let keys: Vec<&str> = dictionary["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert!(
        keys.contains(&"payment_id") && keys.contains(&"userId"),
        "{keys:?}"
    );
    let (_, dictionary) = server.call(
        "GET",
        "/api/v1/tenants/search/schema/dictionary",
        Some(&search),
        None,
    );
    assert!(!dictionary.to_string().contains("payment_id"));

    // A new common schema may not collide with a tenant's extension.
    let colliding = added.replace(
        "string span_id = 11",
        "int64 amount_cents = 31;\n  string span_id = 11",
    );
    let (status, body) = server.call("POST", "/api/v1/schema", admin, Some(push_body(&colliding)));
    assert_eq!(status, 409, "{body}");
    let reason = body["error"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("tenant payments") && reason.contains("amount_cents"),
        "{reason}"
    );

    // The tenant's Elasticsearch template covers its indexes and both schemas.
    let (status, template) = server.call(
        "GET",
        "/api/v1/tenants/payments/schema/template",
        Some(&reader),
        None,
    );
    assert_eq!(status, 200, "{template}");
    assert_eq!(template["index_patterns"], json!(["payments-*"]));
    assert!(
        template["template"]["mappings"]["properties"]["payment_id"].is_object(),
        "{template}"
    );
    assert!(template["template"]["mappings"]["properties"]["userId"].is_object());
    assert_eq!(template["_meta"]["retention_days"], 10);
    let (status, legacy) = server.call(
        "GET",
        "/api/v1/tenants/payments/schema/template?format=es-legacy-template",
        Some(&reader),
        None,
    );
    assert_eq!(status, 200);
    assert!(legacy["mappings"].is_object(), "{legacy}");
    let (status, _) = server.call(
        "GET",
        "/api/v1/tenants/payments/schema/template?format=xml",
        Some(&reader),
        None,
    );
    assert_eq!(status, 400);

    // The tenant now owns schema versions: deletion needs force, and removes them.
    let (status, body) = server.call("DELETE", "/api/v1/tenants/payments", admin, None);
    assert_eq!(status, 409);
    assert!(
        body["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("extension schema versions"),
        "{body}"
    );
}

#[test]
fn push_and_show_through_the_cli() {
    let server = TestServer::start();
    let example = example_dir().join("log_schema.proto");
    let pushed = stdout_ok(&server.cli(None, &["schema", "push", example.to_str().unwrap()]));
    assert!(pushed.contains("common schema: version 1"), "{pushed}");
    let shown = stdout_ok(&server.cli(None, &["schema", "show"]));
    assert!(
        shown.contains("userId") && shown.contains("user_id, user-id"),
        "{shown}"
    );
    let versions = stdout_ok(&server.cli(
        None,
        &["schema", "show", "--view", "versions", "-o", "json"],
    ));
    let versions: Value = serde_json::from_str(&versions).unwrap();
    assert_eq!(versions[0]["root_message"], "acme.logs.v1.LogSchema");
    server.create_tenant("payments");
    let template = stdout_ok(&server.cli(
        None,
        &[
            "schema",
            "show",
            "--tenant",
            "payments",
            "--view",
            "es-template",
        ],
    ));
    let template: Value = serde_json::from_str(&template).unwrap();
    assert_eq!(template["index_patterns"], json!(["payments-*"]));
}

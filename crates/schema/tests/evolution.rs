//! Schema evolution and tenant extensions, on compiled schemas.

use caravan_schema::{
    CompileOptions, Dictionary, Error, ExtensionConflictKind, FieldType, Format, RenderOptions,
    compile_files, diff, render,
};

fn compile(body: &str) -> Dictionary {
    let source =
        format!("syntax = \"proto3\";\npackage logs;\nimport \"caravan/options.proto\";\n{body}\n");
    compile_files([("s.proto", source)], &CompileOptions::default()).unwrap()
}

const OLD: &str = r#"
message LogSchema {
  string userId = 1 [(caravan.field) = { aliases: ["user_id"] }];
  string service = 2;
  int64 status = 3;
  string legacy = 4;
  map<string, string> labels = 5;
  string path = 6;
}
"#;

#[test]
fn diff_lists_added_removed_aliases_and_conflicts() {
    let old = compile(OLD);
    let new = compile(
        r#"
message LogSchema {
  string userId = 1 [(caravan.field) = { aliases: ["user-id"] }];
  string service = 2 [(caravan.field) = { default_field: true }];
  string status = 3;
  map<string, int64> labels = 5;
  string path = 6 [(caravan.field) = { ignore_above: 1024, index: false }];
  string region = 7;
}
"#,
    );
    let changes = diff(&old, &new);
    assert!(changes.has_conflicts());

    let added: Vec<(&str, FieldType)> = changes
        .added
        .iter()
        .map(|k| (k.key.as_str(), k.field_type))
        .collect();
    assert_eq!(added, [("region", FieldType::Keyword)]);
    let removed: Vec<&str> = changes.removed.iter().map(|k| k.key.as_str()).collect();
    assert_eq!(removed, ["legacy"]);

    assert_eq!(changes.alias_changes.len(), 1);
    assert_eq!(changes.alias_changes[0].key, "userId");
    assert_eq!(changes.alias_changes[0].added, ["user-id"]);
    assert_eq!(changes.alias_changes[0].removed, ["user_id"]);

    let conflicts: Vec<(&str, FieldType, FieldType)> = changes
        .conflicts
        .iter()
        .map(|c| (c.key.as_str(), c.old, c.new))
        .collect();
    assert_eq!(
        conflicts,
        [
            ("labels.*", FieldType::Keyword, FieldType::Long),
            ("status", FieldType::Long, FieldType::Keyword),
        ]
    );

    let attributes: Vec<(&str, &str)> = changes
        .changes
        .iter()
        .map(|c| (c.key.as_str(), c.attribute))
        .collect();
    assert_eq!(
        attributes,
        [
            ("path", "indexed"),
            ("path", "ignore_above"),
            ("service", "default_field")
        ]
    );

    assert_eq!(
        changes.to_string(),
        "! conflict  labels.*: keyword -> long (Elasticsearch mapping conflict)\n\
         ! conflict  status: long -> keyword (Elasticsearch mapping conflict)\n\
         + added     region (keyword)\n\
         - removed   legacy (keyword)\n\
         ~ aliases   userId: +user-id -user_id\n\
         ~ changed   path: indexed true -> false\n\
         ~ changed   path: ignore_above none -> 1024\n\
         ~ changed   service: default_field false -> true\n"
    );
}

#[test]
fn diff_of_a_schema_with_itself_is_empty() {
    let old = compile(OLD);
    let changes = diff(&old, &old);
    assert!(changes.is_empty());
    assert!(!changes.has_conflicts());
    assert_eq!(changes.to_string(), "no changes\n");
}

#[test]
fn keyword_to_text_is_a_conflict() {
    let old = compile("message LogSchema { string message = 1; }");
    let new =
        compile("message LogSchema { string message = 1 [(caravan.field) = { text: true }]; }");
    let changes = diff(&old, &new);
    assert!(changes.has_conflicts());
    assert_eq!(changes.conflicts[0].key, "message");
}

#[test]
fn object_becoming_a_value_is_a_conflict() {
    let old = compile("message LogSchema { Http http = 1; }\nmessage Http { int32 status = 1; }");
    let new = compile("message LogSchema { string http = 1; }");
    let changes = diff(&old, &new);
    assert_eq!(changes.conflicts.len(), 1);
    assert_eq!(
        (changes.conflicts[0].old, changes.conflicts[0].new),
        (FieldType::Object, FieldType::Keyword)
    );
    assert_eq!(changes.removed[0].key, "http.status");
}

#[test]
fn tenant_extension_adds_keys() {
    let common = compile(OLD);
    let extension = compile(
        r#"
message LogSchema {
  Payment payment = 1;
  string merchant_id = 2 [(caravan.field) = { aliases: ["merchantId"], default_field: true }];
}
message Payment { int64 amount_cents = 1; string currency = 2; }
"#,
    );
    let merged = common.extend(&extension).unwrap();
    assert_eq!(merged.root(), "logs.LogSchema");
    assert_eq!(merged.extensions(), ["logs.LogSchema".to_owned()]);
    assert_eq!(merged.resolve("merchantId").unwrap().key, "merchant_id");
    assert_eq!(
        merged.resolve("payment.amount_cents").unwrap().field_type,
        FieldType::Long
    );
    assert_eq!(merged.resolve("user_id").unwrap().key, "userId");

    // The merged dictionary renders like any other, with the extension recorded.
    let options = RenderOptions {
        format: Format::EsTemplate,
        index_patterns: vec!["payments-*".to_owned()],
        ..RenderOptions::default()
    };
    let json: serde_json::Value =
        serde_json::from_str(&render(&merged, &options).unwrap()).unwrap();
    assert_eq!(json["_meta"]["schema_extensions"][0], "logs.LogSchema");
    assert_eq!(
        json["template"]["mappings"]["properties"]["payment"]["properties"]["currency"]["type"],
        "keyword"
    );
}

#[test]
fn tenant_extension_cannot_redefine_common_keys_or_aliases() {
    let common = compile(OLD);
    let extension = compile(
        r#"
message LogSchema {
  int64 userId = 1;
  string uid = 2 [(caravan.field) = { name: "user_id" }];
  string customer = 3 [(caravan.field) = { aliases: ["service", "team_user"] }];
  string owner = 4 [(caravan.field) = { aliases: ["labels.owner"] }];
}
"#,
    );
    let Err(Error::ExtensionConflicts { conflicts }) = common.extend(&extension) else {
        panic!("the extension should conflict");
    };
    let found: Vec<(&str, &ExtensionConflictKind)> = conflicts
        .iter()
        .map(|c| (c.name.as_str(), &c.kind))
        .collect();
    assert_eq!(found.len(), 4, "{conflicts:#?}");
    assert!(matches!(
        found[0],
        ("service", ExtensionConflictKind::AliasIsCommonKey { .. })
    ));
    assert!(matches!(
        found[1],
        (
            "labels.owner",
            ExtensionConflictKind::UnderCommonFreeKeys { .. }
        )
    ));
    assert!(matches!(
        found[2],
        (
            "userId",
            ExtensionConflictKind::KeyRedefined {
                common_type: FieldType::Keyword,
                extension_type: FieldType::Long
            }
        )
    ));
    assert!(matches!(
        found[3],
        ("user_id", ExtensionConflictKind::KeyIsCommonAlias { .. })
    ));
    let text = Error::ExtensionConflicts { conflicts }.to_string();
    assert_eq!(text.lines().count(), 4, "{text}");
}

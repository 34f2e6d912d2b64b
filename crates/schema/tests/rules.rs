//! One test per schema rule: each checks that the error names the problem, the key, the
//! rule and the position (`file:line:col`).

use caravan_schema::{
    CompileOptions, Dictionary, Error, FieldType, Issue, IssueKind, compile_descriptor_set,
    compile_files,
};

fn compile(source: &str) -> Result<Dictionary, Error> {
    compile_files([("s.proto", source)], &CompileOptions::default())
}

/// The issues of an invalid schema, panicking on any other outcome.
fn issues(source: &str) -> Vec<Issue> {
    match compile(source) {
        Err(Error::Invalid { issues }) => issues,
        other => panic!("expected schema issues, got {other:?}"),
    }
}

/// The only issue of an invalid schema, displayed.
fn single_issue(source: &str) -> (Issue, String) {
    let issues = issues(source);
    assert_eq!(issues.len(), 1, "{issues:#?}");
    let text = issues[0].to_string();
    (issues.into_iter().next().unwrap(), text)
}

fn assert_contains(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "`{part}` missing from:\n{text}");
    }
}

#[test]
fn duplicate_key() {
    let (issue, text) = single_issue(
        r#"syntax = "proto3";
import "caravan/options.proto";
message LogSchema {
  string a = 1;
  string b = 2 [(caravan.field) = { name: "a" }];
}
"#,
    );
    assert!(matches!(issue.kind, IssueKind::DuplicateKey { .. }));
    assert_eq!(
        text,
        "s.proto:5:3: key `a`: duplicate key, first declared at s.proto:4:3 [duplicate-key]"
    );
}

#[test]
fn alias_colliding_with_a_key() {
    let (_, text) = single_issue(
        r#"syntax = "proto3";
import "caravan/options.proto";
message LogSchema {
  string userId = 1;
  string user = 2 [(caravan.field) = { aliases: ["userId"] }];
}
"#,
    );
    assert_eq!(
        text,
        "s.proto:5:3: key `user`: alias `userId` is already the key `userId` \
         (declared at s.proto:4:3) [alias-collision]"
    );
}

#[test]
fn alias_colliding_with_another_alias() {
    let (_, text) = single_issue(
        r#"syntax = "proto3";
import "caravan/options.proto";
message LogSchema {
  string userId = 1 [(caravan.field) = { aliases: ["user_id"] }];
  Account account = 2;
}
message Account {
  string id = 1 [(caravan.field) = { aliases: ["user_id"] }];
}
"#,
    );
    assert_eq!(
        text,
        "s.proto:8:3: key `account.id`: alias `user_id` is already an alias of `userId` \
         (declared at s.proto:4:3) [alias-collision]"
    );
}

#[test]
fn alias_under_a_map() {
    let (_, text) = single_issue(
        r#"syntax = "proto3";
import "caravan/options.proto";
message LogSchema {
  map<string, string> labels = 1;
  string team = 2 [(caravan.field) = { aliases: ["labels.team"] }];
}
"#,
    );
    assert_contains(
        &text,
        &[
            "s.proto:5:3",
            "key `team`",
            "alias `labels.team` lies under map `labels`",
            "[alias-under-map]",
        ],
    );
}

#[test]
fn invalid_key_names() {
    let issues = issues(
        r#"syntax = "proto3";
import "caravan/options.proto";
message LogSchema {
  string _private = 1;
  string a = 2 [(caravan.field) = { name: "my.field" }];
  string b = 3 [(caravan.field) = { name: "with space" }];
  string c = 4 [(caravan.field) = { aliases: ["user id"] }];
  string d = 5 [(caravan.field) = { aliases: ["x..y"] }];
}
"#,
    );
    let texts: Vec<String> = issues.iter().map(ToString::to_string).collect();
    assert_eq!(texts.len(), 5, "{texts:#?}");
    assert_contains(
        &texts[0],
        &[
            "s.proto:4:3",
            "invalid key name `_private`",
            "cannot start with `_`",
            "[key-name]",
        ],
    );
    assert_contains(
        &texts[1],
        &["s.proto:5:3", "`my.field`", "single segment", "[key-name]"],
    );
    assert_contains(
        &texts[2],
        &["s.proto:6:3", "`with space`", "only A-Z a-z 0-9 _ @ / -"],
    );
    assert_contains(&texts[3], &["s.proto:7:3", "key `c`", "`user id`"]);
    assert_contains(
        &texts[4],
        &["s.proto:8:3", "key `d`", "`x..y`", "cannot be empty"],
    );
}

#[test]
fn special_characters_in_names_work() {
    let dictionary = compile(
        r#"syntax = "proto3";
import "caravan/options.proto";
import "google/protobuf/timestamp.proto";
message LogSchema {
  google.protobuf.Timestamp timestamp = 1 [(caravan.field) = { name: "@timestamp" }];
  string my_fieldname = 2 [(caravan.field) = { name: "my/fieldname" }];
  string user_agent = 3 [(caravan.field) = { name: "user-agent" }];
}
"#,
    )
    .unwrap();
    let keys: Vec<&str> = dictionary.fields().iter().map(|f| f.key.as_str()).collect();
    assert_eq!(keys, ["@timestamp", "my/fieldname", "user-agent"]);
    assert_eq!(
        dictionary.resolve("@timestamp").unwrap().field_type,
        FieldType::Date
    );
}

#[test]
fn options_must_fit_the_type() {
    let issues = issues(
        r#"syntax = "proto3";
import "caravan/options.proto";
message LogSchema {
  int64 count = 1 [(caravan.field) = { text: true }];
  string body = 2 [(caravan.field) = { text: true, ignore_above: 10 }];
  double ratio = 3 [(caravan.field) = { default_field: true }];
  Http http = 4 [(caravan.field) = { aliases: ["web"], index: false }];
  bytes raw = 5 [(caravan.field) = { index: true }];
  string hidden = 6 [(caravan.field) = { index: false, default_field: true }];
  Level level = 7 [(caravan.field) = { text: true }];
  map<string, int64> counters = 8 [(caravan.field) = { default_field: true }];
}
message Http { string path = 1; }
enum Level { INFO = 0; }
"#,
    );
    let texts: Vec<String> = issues.iter().map(ToString::to_string).collect();
    assert_eq!(texts.len(), 9, "{texts:#?}");
    assert_contains(
        &texts[0],
        &[
            "s.proto:4:3",
            "key `count`",
            "option `text`",
            "this one is long",
            "[option-type]",
        ],
    );
    assert_contains(
        &texts[1],
        &[
            "s.proto:5:3",
            "key `body`",
            "option `ignore_above`",
            "this one is text",
        ],
    );
    assert_contains(
        &texts[2],
        &[
            "s.proto:6:3",
            "key `ratio`",
            "option `default_field`",
            "this one is double",
        ],
    );
    assert_contains(
        &texts[3],
        &["s.proto:7:3", "key `http`", "option `aliases`"],
    );
    assert_contains(&texts[4], &["s.proto:7:3", "key `http`", "option `index`"]);
    assert_contains(
        &texts[5],
        &[
            "s.proto:8:3",
            "key `raw`",
            "option `index`",
            "binary values are stored, never indexed",
        ],
    );
    assert_contains(
        &texts[6],
        &[
            "s.proto:9:3",
            "key `hidden`",
            "option `default_field`",
            "not indexed",
        ],
    );
    assert_contains(&texts[7], &["s.proto:10:3", "key `level`", "option `text`"]);
    assert_contains(
        &texts[8],
        &["s.proto:11:3", "key `counters`", "option `default_field`"],
    );
}

#[test]
fn option_values_are_range_checked() {
    let issues = issues(
        r#"syntax = "proto3";
import "caravan/options.proto";
message LogSchema {
  string a = 1 [(caravan.field) = { ignore_above: 8191 }];
  string b = 2 [(caravan.field) = { ignore_above: 10000 }];
}
"#,
    );
    let texts: Vec<String> = issues.iter().map(ToString::to_string).collect();
    assert_eq!(texts.len(), 1, "{texts:#?}");
    assert_eq!(
        texts[0],
        "s.proto:5:3: key `b`: invalid value for option `ignore_above`: \
         at most 8191, got 10000 [option-value]"
    );
}

#[test]
fn unknown_options_in_source_are_compile_errors_with_position() {
    let err = compile(
        r#"syntax = "proto3";
import "caravan/options.proto";
message LogSchema {
  string a = 1 [(caravan.field) = { colour: "red" }];
}
"#,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Compile(_)), "{err:?}");
    assert_contains(
        &err.to_string(),
        &["s.proto:4:17", "option '(caravan.field)'", "colour"],
    );
}

#[test]
fn unknown_options_from_a_newer_options_file_are_reported() {
    // A descriptor set built against an options.proto with a field this Caravan lacks, as
    // the plugin could receive it.
    let newer = caravan_schema::OPTIONS_PROTO.replace(
        "uint32 ignore_above = 6;",
        "uint32 ignore_above = 6;\n  string analyzer = 7;",
    );
    let schema = r#"syntax = "proto3";
import "caravan/options.proto";
message LogSchema {
  string a = 1 [(caravan.field) = { analyzer: "french" }];
}
"#;
    let set = encoded_set(
        &[("caravan/options.proto", &newer), ("s.proto", schema)],
        true,
    );
    let err = compile_descriptor_set(&set, &["s.proto"], &CompileOptions::default()).unwrap_err();
    let Error::Invalid { issues } = err else {
        panic!("expected issues, got {err:?}");
    };
    assert_eq!(issues.len(), 1);
    assert_contains(
        &issues[0].to_string(),
        &[
            "s.proto:4:3",
            "unknown option `analyzer`",
            "[unknown-option]",
        ],
    );
}

#[test]
fn unsupported_types() {
    let issues = issues(
        r#"syntax = "proto3";
import "google/protobuf/any.proto";
import "google/protobuf/duration.proto";
message LogSchema {
  google.protobuf.Duration elapsed = 1;
  google.protobuf.Any detail = 2;
  map<string, Http> calls = 3;
}
message Http { string path = 1; }
"#,
    );
    let texts: Vec<String> = issues.iter().map(ToString::to_string).collect();
    assert_eq!(texts.len(), 3, "{texts:#?}");
    assert_contains(
        &texts[0],
        &[
            "s.proto:5:3",
            "key `elapsed`",
            "`google.protobuf.Duration`",
            "duration_ms",
            "[unsupported-type]",
        ],
    );
    assert_contains(
        &texts[1],
        &["s.proto:6:3", "key `detail`", "`google.protobuf.Any`"],
    );
    assert_contains(
        &texts[2],
        &["s.proto:7:3", "key `calls`", "`Http`", "map values"],
    );
}

#[test]
fn groups_are_unsupported() {
    let (_, text) = single_issue(
        r#"syntax = "proto2";
message LogSchema {
  optional group Result = 1 { optional string url = 2; }
}
"#,
    );
    assert_contains(&text, &["s.proto:3:3", "unsupported type `group`"]);
}

#[test]
fn map_keys_must_be_strings() {
    let (_, text) = single_issue(
        r#"syntax = "proto3";
message LogSchema {
  map<int32, string> by_code = 1;
}
"#,
    );
    assert_eq!(
        text,
        "s.proto:3:3: key `by_code`: map keys must be strings (JSON object keys are), \
         found `int32` [map-key]"
    );
}

#[test]
fn direct_cycle() {
    let (_, text) = single_issue(
        r#"syntax = "proto3";
message LogSchema { Node node = 1; }
message Node {
  string name = 1;
  Node child = 2;
}
"#,
    );
    assert_eq!(
        text,
        "s.proto:5:3: key `node.child`: message contains itself: Node.child -> Node [cycle]"
    );
}

#[test]
fn indirect_cycle_is_named_and_reported_once() {
    let issues = issues(
        r#"syntax = "proto3";
message LogSchema {
  A a = 1;
  B b = 2;
}
message A { B b = 1; }
message B { A a = 1; }
"#,
    );
    let texts: Vec<String> = issues.iter().map(ToString::to_string).collect();
    assert_eq!(
        texts,
        ["s.proto:7:13: key `a.b.a`: message contains itself: A.b -> B.a -> A [cycle]"]
    );
}

#[test]
fn depth_limit() {
    let mut source = String::from("syntax = \"proto3\";\nmessage LogSchema { L1 l = 1; }\n");
    for level in 1..=17 {
        source.push_str(&format!("message L{level} {{ L{} l = 1; }}\n", level + 1));
    }
    source.push_str("message L18 { string leaf = 1; }\n");
    let issues = issues(&source);
    assert_eq!(issues.len(), 1, "{issues:#?}");
    assert!(matches!(issues[0].kind, IssueKind::TooDeep { limit: 16 }));
    assert_contains(
        &issues[0].to_string(),
        &["s.proto:18:", "deeper than 16 segments", "[depth-limit]"],
    );
}

#[test]
fn key_limit() {
    let options = CompileOptions {
        max_keys: 3,
        ..CompileOptions::default()
    };
    let source = r#"syntax = "proto3";
message LogSchema { string a = 1; string b = 2; string c = 3; string d = 4; string e = 5; }
"#;
    let Err(Error::Invalid { issues }) = compile_files([("s.proto", source)], &options) else {
        panic!("expected a key limit issue");
    };
    let texts: Vec<String> = issues.iter().map(ToString::to_string).collect();
    assert_eq!(texts.len(), 1, "{texts:#?}");
    assert_contains(
        &texts[0],
        &["s.proto:2:", "key `d`", "more than 3 keys", "[key-limit]"],
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let issues = issues(
        r#"syntax = "proto3";
import "caravan/options.proto";
import "google/protobuf/duration.proto";
message LogSchema {
  string a = 1;
  string b = 2 [(caravan.field) = { name: "a" }];
  int64 n = 3 [(caravan.field) = { text: true }];
  google.protobuf.Duration d = 4;
  Loop loop = 5;
  string e = 6 [(caravan.field) = { aliases: ["n"] }];
}
message Loop { Loop again = 1; }
"#,
    );
    let rules: Vec<&str> = issues.iter().map(|issue| issue.kind.rule()).collect();
    assert_eq!(
        rules,
        ["option-type", "unsupported-type", "cycle", "duplicate-key"],
        "{issues:#?}"
    );
    // `n` was refused, so the alias `n` collides with nothing: no cascade of errors.
    let all = Error::Invalid { issues }.to_string();
    assert_eq!(all.lines().count(), 4, "{all}");
}

#[test]
fn well_known_types_need_no_include_path() {
    let dictionary = compile(
        r#"syntax = "proto3";
import "google/protobuf/struct.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
message LogSchema {
  google.protobuf.Timestamp at = 1;
  google.protobuf.Struct extra = 2;
  google.protobuf.Int64Value count = 3;
  repeated Hop hops = 4;
  uint64 big = 5;
  float ratio = 6;
  bool ok = 7;
  bytes raw = 8;
  optional string maybe = 9;
}
message Hop { string host = 1; }
"#,
    )
    .unwrap();
    let types: Vec<(&str, FieldType, bool)> = dictionary
        .fields()
        .iter()
        .map(|f| (f.key.as_str(), f.field_type, f.repeated))
        .collect();
    assert_eq!(
        types,
        [
            ("at", FieldType::Date, false),
            ("big", FieldType::Long, false),
            ("count", FieldType::Long, false),
            ("extra", FieldType::Struct, false),
            ("hops", FieldType::Object, true),
            ("hops.host", FieldType::Keyword, false),
            ("maybe", FieldType::Keyword, false),
            ("ok", FieldType::Boolean, false),
            ("ratio", FieldType::Double, false),
            ("raw", FieldType::Binary, false),
        ]
    );
    assert!(!dictionary.resolve("raw").unwrap().indexed);
}

#[test]
fn compile_errors_carry_positions() {
    let err =
        compile("syntax = \"proto3\";\nmessage LogSchema {\n  Missing m = 1;\n}\n").unwrap_err();
    assert_contains(&err.to_string(), &["s.proto:3:3", "Missing"]);

    let err = compile("syntax = \"proto3\";\nmessage LogSchema {\n  string = 1;\n}\n").unwrap_err();
    assert_contains(&err.to_string(), &["s.proto:3:"]);

    let err = compile("syntax = \"proto3\";\nimport \"nope.proto\";\n").unwrap_err();
    assert_contains(&err.to_string(), &["s.proto:2:1", "nope.proto"]);
}

#[test]
fn root_message_lookup() {
    let a = "syntax = \"proto3\"; package a; message LogSchema { string x = 1; }";
    let b = "syntax = \"proto3\"; package b; message LogSchema { int64 x = 1; }";
    let files = [("a.proto", a), ("b.proto", b)];

    let err = compile_files(files, &CompileOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "root message `LogSchema` is ambiguous: `a.LogSchema`, `b.LogSchema`; give its fully qualified name"
    );

    for root in ["b.LogSchema", ".b.LogSchema"] {
        let options = CompileOptions {
            root_message: root.to_owned(),
            ..CompileOptions::default()
        };
        let dictionary = compile_files(files, &options).unwrap();
        assert_eq!(dictionary.root(), "b.LogSchema");
        assert_eq!(dictionary.resolve("x").unwrap().field_type, FieldType::Long);
    }

    let options = CompileOptions {
        root_message: "Logs".to_owned(),
        ..CompileOptions::default()
    };
    let err = compile_files(files, &options).unwrap_err();
    assert_eq!(
        err.to_string(),
        "root message `Logs` not found in `a.proto`, `b.proto`"
    );

    // Messages from imports, like the options file, are never roots.
    let options = CompileOptions {
        root_message: "caravan.KeyOptions".to_owned(),
        ..CompileOptions::default()
    };
    assert!(compile_files([("a.proto", a)], &options).is_err());
}

#[test]
fn file_names_are_checked() {
    let source = "syntax = \"proto3\"; message LogSchema {}";
    for name in [
        "/abs/s.proto",
        "../s.proto",
        "a//s.proto",
        "s.txt",
        "a\\s.proto",
    ] {
        let err = compile_files([(name, source)], &CompileOptions::default()).unwrap_err();
        assert!(
            matches!(err, Error::InvalidFileName { .. }),
            "{name}: {err:?}"
        );
    }
    let err = compile_files(
        [("s.proto", source), ("s.proto", source)],
        &CompileOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "source file `s.proto` is given twice");
}

#[test]
fn descriptor_sets_without_source_info_degrade_to_file_names() {
    let schema = r#"syntax = "proto3";
import "caravan/options.proto";
message LogSchema {
  int64 n = 1 [(caravan.field) = { text: true }];
}
"#;
    let options_proto = caravan_schema::OPTIONS_PROTO;
    let with_info = encoded_set(
        &[
            ("caravan/options.proto", options_proto),
            ("s.proto", schema),
        ],
        true,
    );
    let without = encoded_set(
        &[
            ("caravan/options.proto", options_proto),
            ("s.proto", schema),
        ],
        false,
    );

    let located =
        |set: &[u8]| match compile_descriptor_set(set, &["s.proto"], &CompileOptions::default()) {
            Err(Error::Invalid { issues }) => issues[0].location.to_string(),
            other => panic!("expected issues, got {other:?}"),
        };
    assert_eq!(located(&with_info), "s.proto:4:3");
    assert_eq!(located(&without), "s.proto");
}

#[test]
fn descriptor_sets_and_sources_give_the_same_dictionary() {
    let example = include_str!("../../../examples/schema/log_schema.proto");
    let from_sources =
        compile_files([("log_schema.proto", example)], &CompileOptions::default()).unwrap();
    let set = encoded_set(
        &[
            ("caravan/options.proto", caravan_schema::OPTIONS_PROTO),
            ("log_schema.proto", example),
        ],
        false,
    );
    let from_set =
        compile_descriptor_set(&set, &["log_schema.proto"], &CompileOptions::default()).unwrap();
    assert_eq!(from_set, from_sources);

    let err =
        compile_descriptor_set(b"\xff\xff", &["x.proto"], &CompileOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Descriptor(_)), "{err:?}");
    let err =
        compile_descriptor_set(&set, &["other.proto"], &CompileOptions::default()).unwrap_err();
    assert_contains(
        &err.to_string(),
        &["`other.proto` is not in the descriptor set"],
    );
}

/// An encoded descriptor set of in-memory files (imports included), as protoc would pass it.
fn encoded_set(files: &[(&str, &str)], source_info: bool) -> Vec<u8> {
    use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};

    struct Memory(Vec<(String, String)>);
    impl FileResolver for Memory {
        fn open_file(&self, name: &str) -> Result<File, protox::Error> {
            match self.0.iter().find(|(file, _)| file == name) {
                Some((_, source)) => File::from_source(name, source),
                None => Err(protox::Error::file_not_found(name)),
            }
        }
    }
    let memory = Memory(
        files
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_string()))
            .collect(),
    );
    let mut resolver = ChainFileResolver::new();
    resolver.add(memory);
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler
        .include_imports(true)
        .include_source_info(source_info);
    for (name, _) in files {
        compiler.open_file(name).unwrap();
    }
    compiler.encode_file_descriptor_set()
}

//! The example schema (`examples/schema/log_schema.proto`) end to end: snapshots of every
//! output, JSON validity, determinism and lookups.

use caravan_schema::{
    CompileOptions, Dictionary, FieldType, Format, OPTIONS_PROTO, OPTIONS_PROTO_PATH,
    RenderOptions, compile_files, render,
};

const EXAMPLE: &str = include_str!("../../../examples/schema/log_schema.proto");

fn example() -> Dictionary {
    compile_files([("log_schema.proto", EXAMPLE)], &CompileOptions::default()).unwrap()
}

fn es_options(format: Format) -> RenderOptions {
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

fn parse(output: &str) -> serde_json::Value {
    serde_json::from_str(output).unwrap_or_else(|err| panic!("{err}\n{output}"))
}

#[test]
fn dictionary_snapshot() {
    let output = render(&example(), &RenderOptions::default()).unwrap();
    parse(&output);
    insta::assert_snapshot!("dictionary", output);
}

#[test]
fn es_template_snapshot() {
    let output = render(&example(), &es_options(Format::EsTemplate)).unwrap();
    parse(&output);
    insta::assert_snapshot!("es_template", output);
}

#[test]
fn es_legacy_template_snapshot() {
    let output = render(&example(), &es_options(Format::EsLegacyTemplate)).unwrap();
    parse(&output);
    insta::assert_snapshot!("es_legacy_template", output);
}

#[test]
fn minimal_es_template_snapshot() {
    let options = RenderOptions {
        format: Format::EsTemplate,
        index_patterns: vec!["logs-*".to_owned()],
        include_timestamp: false,
        ..RenderOptions::default()
    };
    let source = "syntax = \"proto3\"; message LogSchema { string service = 1; }";
    let dictionary = compile_files([("min.proto", source)], &CompileOptions::default()).unwrap();
    let output = render(&dictionary, &options).unwrap();
    parse(&output);
    insta::assert_snapshot!("minimal_es_template", output);
}

#[test]
fn es_template_maps_every_type() {
    let output = render(&example(), &es_options(Format::EsTemplate)).unwrap();
    let json = parse(&output);
    let template = &json["template"];
    let props = &template["mappings"]["properties"];

    assert_eq!(
        json["index_patterns"],
        serde_json::json!(["payments-*", "payments-v2-*"])
    );
    assert_eq!(json["priority"], 200);
    assert_eq!(json["_meta"]["schema_version"], "2024.06.1");
    assert_eq!(json["_meta"]["retention_days"], 10);
    assert_eq!(
        template["settings"]["index"]["lifecycle"]["name"],
        "logs-10d"
    );
    assert_eq!(
        template["settings"]["index"]["query"]["default_field"],
        serde_json::json!(["message", "service", "userId"])
    );

    assert_eq!(props["@timestamp"], serde_json::json!({"type": "date"}));
    assert_eq!(props["level"], serde_json::json!({"type": "keyword"}));
    assert_eq!(props["message"], serde_json::json!({"type": "text"}));
    assert_eq!(
        props["my/fieldname"],
        serde_json::json!({"type": "keyword"})
    );
    assert_eq!(props["duration_ms"], serde_json::json!({"type": "long"}));
    assert_eq!(
        props["user-agent"],
        serde_json::json!({"type": "keyword", "index": false})
    );
    assert_eq!(
        props["context"],
        serde_json::json!({"type": "object", "enabled": false})
    );
    assert_eq!(
        props["kubernetes"]["properties"]["namespace"],
        serde_json::json!({"type": "keyword"})
    );
    assert_eq!(
        props["http"]["properties"]["path"],
        serde_json::json!({"type": "keyword", "ignore_above": 2048})
    );
    assert_eq!(props["labels"], serde_json::json!({"type": "object"}));

    let dynamic = template["mappings"]["dynamic_templates"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = dynamic
        .iter()
        .map(|t| t.as_object().unwrap().keys().next().unwrap().as_str())
        .collect();
    assert_eq!(
        names,
        [
            "caravan_unknown_objects",
            "caravan_map_labels",
            "caravan_unknown_fields"
        ]
    );
    assert_eq!(
        dynamic[1]["caravan_map_labels"],
        serde_json::json!({
            "path_match": "labels.*",
            "mapping": {"type": "keyword", "ignore_above": 256}
        })
    );
    assert_eq!(
        dynamic[2]["caravan_unknown_fields"]["mapping"],
        serde_json::json!({"type": "keyword", "index": false, "doc_values": false})
    );
}

#[test]
fn legacy_template_has_top_level_settings_and_mappings() {
    let output = render(&example(), &es_options(Format::EsLegacyTemplate)).unwrap();
    let json = parse(&output);
    assert_eq!(json["order"], 200);
    assert!(json.get("template").is_none());
    assert_eq!(
        json["mappings"]["_meta"]["schema_root"],
        "acme.logs.v1.LogSchema"
    );
    assert_eq!(json["mappings"]["properties"]["@timestamp"]["type"], "date");
    assert_eq!(json["settings"]["index"]["lifecycle"]["name"], "logs-10d");
}

#[test]
fn timestamp_can_be_left_out() {
    let dictionary = compile_files(
        [(
            "a.proto",
            "syntax = \"proto3\"; message LogSchema { string a = 1; }",
        )],
        &CompileOptions::default(),
    )
    .unwrap();
    let mut options = es_options(Format::EsTemplate);
    options.include_timestamp = false;
    let json = parse(&render(&dictionary, &options).unwrap());
    assert!(
        json["template"]["mappings"]["properties"]
            .get("@timestamp")
            .is_none()
    );
    options.include_timestamp = true;
    let json = parse(&render(&dictionary, &options).unwrap());
    assert_eq!(
        json["template"]["mappings"]["properties"]["@timestamp"]["type"],
        "date"
    );
}

#[test]
fn dictionary_lookups_on_the_example() {
    let dictionary = example();
    assert_eq!(dictionary.root(), "acme.logs.v1.LogSchema");
    assert_eq!(dictionary.resolve("user-id").unwrap().key, "userId");
    assert_eq!(dictionary.resolve("user_id").unwrap().key, "userId");
    assert_eq!(
        dictionary.resolve("status_code").unwrap().key,
        "http.status"
    );
    assert_eq!(
        dictionary.resolve("msg").unwrap().field_type,
        FieldType::Text
    );
    let level = dictionary.resolve("severity").unwrap();
    assert_eq!(
        level.enum_values,
        ["DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
    );
    assert!(dictionary.resolve("tags").unwrap().repeated);
    let label = dictionary.lookup("labels.team").unwrap();
    assert_eq!(
        (label.key, label.def.field_type),
        ("labels.team", FieldType::Keyword)
    );
    assert_eq!(
        dictionary.resolve("context").unwrap().field_type,
        FieldType::Struct
    );
    assert!(!dictionary.resolve("context").unwrap().indexed);
    let defaults: Vec<&str> = dictionary
        .default_fields()
        .map(|f| f.key.as_str())
        .collect();
    assert_eq!(defaults, ["message", "service", "userId"]);
}

#[test]
fn outputs_are_deterministic_and_independent_of_file_order() {
    let team = r#"
        syntax = "proto3";
        package acme.logs.v1;
        message Payment { int64 amount_cents = 1; string currency = 2; }
    "#;
    let root = r#"
        syntax = "proto3";
        package acme.logs.v1;
        import "caravan/options.proto";
        import "payment.proto";
        message LogSchema {
          string service = 1 [(caravan.field) = { default_field: true }];
          Payment payment = 2;
        }
    "#;
    let render_all = |files: &[(&str, &str)]| -> Vec<String> {
        let dictionary = compile_files(files.iter().copied(), &CompileOptions::default()).unwrap();
        [
            Format::Dictionary,
            Format::EsTemplate,
            Format::EsLegacyTemplate,
        ]
        .into_iter()
        .map(|format| render(&dictionary, &es_options(format)).unwrap())
        .collect()
    };
    let first = render_all(&[("log_schema.proto", root), ("payment.proto", team)]);
    let again = render_all(&[("log_schema.proto", root), ("payment.proto", team)]);
    let shuffled = render_all(&[("payment.proto", team), ("log_schema.proto", root)]);
    assert_eq!(first, again);
    assert_eq!(first, shuffled);

    let example_once = render(&example(), &es_options(Format::EsTemplate)).unwrap();
    let example_twice = render(&example(), &es_options(Format::EsTemplate)).unwrap();
    assert_eq!(example_once, example_twice);
}

#[test]
fn the_shipped_options_file_may_be_passed_but_not_altered() {
    let files = [
        ("log_schema.proto", EXAMPLE),
        (OPTIONS_PROTO_PATH, OPTIONS_PROTO),
    ];
    assert_eq!(
        compile_files(files, &CompileOptions::default()).unwrap(),
        example()
    );

    let altered = OPTIONS_PROTO.replace("bool text = 3;", "bool text = 3; bool extra = 7;");
    let files = [
        ("log_schema.proto", EXAMPLE),
        (OPTIONS_PROTO_PATH, altered.as_str()),
    ];
    let err = compile_files(files, &CompileOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("differs from the copy shipped"),
        "{err}"
    );
}

#[test]
fn dictionary_json_round_trips() {
    let dictionary = example();
    let json = render(&dictionary, &RenderOptions::default()).unwrap();
    let back: Dictionary = serde_json::from_str(&json).unwrap();
    assert_eq!(back, dictionary);
    assert_eq!(back.resolve("trace-id").unwrap().key, "trace_id");
}

#[test]
fn user_templates_replace_the_embedded_ones() {
    let template = r#"{"keys": [{% for f in fields %}{{ f.key | tojson }}{{ ", " if not loop.last else "" }}{% endfor %}], "patterns": {{ index_patterns | tojson }}}"#;
    let options = RenderOptions {
        template: Some(template.to_owned()),
        ..es_options(Format::EsTemplate)
    };
    let json = parse(&render(&example(), &options).unwrap());
    assert_eq!(json["keys"][0], "@timestamp");
    assert_eq!(json["patterns"][0], "payments-*");

    let importing = r#"{% import "caravan/macros.j2" as caravan %}{"properties": {{ caravan.properties(properties, "") }}}"#;
    let options = RenderOptions {
        template: Some(importing.to_owned()),
        ..es_options(Format::EsTemplate)
    };
    let json = parse(&render(&example(), &options).unwrap());
    assert_eq!(
        json["properties"]["http"]["properties"]["status"]["type"],
        "long"
    );
}

#[test]
fn broken_user_templates_are_errors() {
    let not_json = RenderOptions {
        template: Some("keys: {{ fields | length }}".to_owned()),
        ..RenderOptions::default()
    };
    let err = render(&example(), &not_json).unwrap_err();
    assert!(
        err.to_string()
            .contains("dictionary output is not valid JSON"),
        "{err}"
    );

    let undefined = RenderOptions {
        template: Some("{{ no_such_variable }}".to_owned()),
        ..RenderOptions::default()
    };
    let err = render(&example(), &undefined).unwrap_err();
    assert!(err.to_string().contains("undefined"), "{err}");

    let syntax = RenderOptions {
        template: Some("{% for %}".to_owned()),
        ..RenderOptions::default()
    };
    assert!(render(&example(), &syntax).is_err());
}

#[test]
fn render_options_are_checked() {
    let dictionary = example();
    let no_pattern = RenderOptions {
        format: Format::EsTemplate,
        ..RenderOptions::default()
    };
    let err = render(&dictionary, &no_pattern).unwrap_err();
    assert!(
        err.to_string().contains("needs at least one index pattern"),
        "{err}"
    );

    let bad_pattern = RenderOptions {
        index_patterns: vec!["Payments *".to_owned()],
        ..es_options(Format::EsTemplate)
    };
    let err = render(&dictionary, &bad_pattern).unwrap_err();
    assert!(
        err.to_string()
            .contains("invalid index pattern `Payments *`"),
        "{err}"
    );

    let zero_days = RenderOptions {
        retention_days: Some(0),
        ..es_options(Format::EsTemplate)
    };
    assert!(render(&dictionary, &zero_days).is_err());

    assert_eq!(
        "es-legacy-template".parse::<Format>().unwrap(),
        Format::EsLegacyTemplate
    );
    assert!("yaml".parse::<Format>().is_err());
}

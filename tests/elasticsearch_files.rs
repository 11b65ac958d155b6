//! The files of `elasticsearch/`: valid JSON, embedded in the binary, and mappings that cover
//! every field of the event schema (`docs/event.schema.json`), since the templates map with
//! `dynamic: false` and a field they forget would silently not be searchable.

use buildlog::sink::elasticsearch::setup::FILES;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

fn dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("elasticsearch")
}

fn read(name: &str) -> Value {
    let text = std::fs::read_to_string(dir().join(name)).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_file_is_valid_json_and_the_json_files_are_embedded() {
    let mut seen = 0;
    for entry in std::fs::read_dir(dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        if name.ends_with(".ndjson") {
            let objects: Vec<Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}")))
                .collect();
            assert!(!objects.is_empty(), "{name}");
            assert!(objects.iter().all(Value::is_object), "{name}");
        } else if name.ends_with(".json") {
            assert!(read(&name).is_object(), "{name}");
            let embedded = FILES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t);
            assert_eq!(embedded, Some(text.as_str()), "{name} is embedded as it is");
        } else {
            panic!("unexpected file in elasticsearch/: {name}");
        }
        seen += 1;
    }
    assert_eq!(
        seen,
        FILES.len() + 1,
        "the JSON files plus saved-objects.ndjson"
    );
}

fn schema_fields() -> BTreeSet<String> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/event.schema.json"),
    )
    .unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn native_mapping_covers_exactly_the_event_schema() {
    let props = &read("component-template-native.json")["template"]["mappings"]["properties"];
    let mut expected = schema_fields();
    expected.insert("@timestamp".into());
    assert_eq!(keys(props), expected);
    for id in [
        "event_id",
        "correlation_id",
        "trace_id",
        "span_id",
        "feature",
        "level",
        "event_type",
    ] {
        assert_eq!(props[id]["type"], "keyword", "{id}");
    }
    assert_eq!(props["message"]["type"], "text");
    assert_eq!(props["timestamp"]["type"], "date");
    assert_eq!(props["@timestamp"]["type"], "date");
    for n in [
        "duration_ms",
        "seq",
        "error_count",
        "warning_count",
        "command_count",
    ] {
        assert_eq!(props[n]["type"], "long", "{n}");
    }
}

#[test]
fn ecs_mapping_covers_the_event_schema() {
    let props = &read("component-template-ecs.json")["template"]["mappings"]["properties"];
    let build = keys(&props["container_build"]["properties"]);
    // Fields that ECS has its own place for.
    let elsewhere = [
        ("timestamp", "@timestamp"),
        ("level", "log"),
        ("message", "message"),
        ("event_id", "event"),
        ("trace_id", "trace"),
        ("span_id", "span"),
    ];
    for field in schema_fields() {
        match elsewhere.iter().find(|(f, _)| *f == field) {
            Some((_, ecs)) => assert!(props.get(*ecs).is_some(), "{field} -> {ecs}"),
            None => assert!(
                build.contains(&field),
                "container_build.{field} is not mapped"
            ),
        }
    }
    assert_eq!(props["event"]["properties"]["duration"]["type"], "long");
    assert_eq!(props["log"]["properties"]["level"]["type"], "keyword");
}

#[test]
fn templates_compose_the_component_templates_and_the_saved_search_uses_the_data_view() {
    for t in ["index-template-stream.json", "index-template-dated.json"] {
        let composed: Vec<String> = read(t)["composed_of"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            composed,
            [
                "container-build-settings",
                "container-build-mappings-native",
                "container-build-mappings-ecs"
            ]
        );
    }
    assert!(read("index-template-stream.json")["data_stream"].is_object());
    let text = std::fs::read_to_string(dir().join("saved-objects.ndjson")).unwrap();
    let objects: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let view = objects
        .iter()
        .find(|o| o["type"] == "index-pattern")
        .unwrap();
    assert_eq!(view["attributes"]["timeFieldName"], "@timestamp");
    let search = objects.iter().find(|o| o["type"] == "search").unwrap();
    assert_eq!(search["references"][0]["id"], view["id"]);
    let source: Value = serde_json::from_str(
        search["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(source["indexRefName"], search["references"][0]["name"]);
}

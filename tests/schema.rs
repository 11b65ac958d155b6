//! Every event `buildlog convert` emits for the corpus validates against docs/event.schema.json.

mod common;

use common::{bin, corpus, corpus_builds};

#[test]
fn every_corpus_event_validates_against_the_schema() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/event.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let mut inputs: Vec<_> = corpus_builds();
    // The console logs too.
    for f in std::fs::read_dir(corpus()).unwrap() {
        let p = f.unwrap().path();
        if p.is_file() && p.extension().is_some_and(|e| e == "log") {
            inputs.push(p);
        }
    }
    let mut checked = 0;
    for input in inputs {
        let out = bin()
            .args(["convert", "--quiet"])
            .arg(&input)
            .output()
            .unwrap();
        for line in out.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let v: serde_json::Value = serde_json::from_slice(line).unwrap();
            if let Err(e) = validator.validate(&v) {
                panic!("{}: {e}\n{v}", input.display());
            }
            checked += 1;
        }
    }
    assert!(checked > 200_000, "{checked}");
}

#[test]
fn the_schema_rejects_what_it_should() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/event.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let out = bin()
        .args(["convert"])
        .arg(corpus().join("build-01-success"))
        .output()
        .unwrap();
    let first = out.stdout.split(|b| *b == b'\n').next().unwrap();
    let good: serde_json::Value = serde_json::from_slice(first).unwrap();
    assert!(validator.is_valid(&good));
    for (k, v) in [
        ("level", serde_json::json!("NOTICE")),
        ("timestamp", serde_json::json!("2025-11-16 19:30:40")),
        ("event_id", serde_json::json!("xyz")),
        ("truncated", serde_json::json!(false)),
    ] {
        let mut bad = good.clone();
        bad[k] = v;
        assert!(!validator.is_valid(&bad), "{k}");
    }
}

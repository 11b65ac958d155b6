//! Structural checks of the configs in pipelines/fluent-bit, pipelines/vector and
//! pipelines/alloy (the Fluent Bit ones also run in the real Fluent Bit: fluent_bit_filter.rs
//! and the plugin's tests). Vector and Alloy are not run here: their files are parsed and
//! their wiring (inputs, forward_to), the event-time handling, the lower-case `level` label and
//! the structured metadata are checked (Vector and Alloy binaries are not available here).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn pipelines() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(pipelines().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Fluent Bit's classic format: `[SECTION]` headers and `Key Value` lines, comments `#`.
fn classic_sections(text: &str) -> Vec<(String, BTreeMap<String, String>)> {
    let mut out: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if let Some(name) = t.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            out.push((name.to_string(), BTreeMap::new()));
            continue;
        }
        assert!(
            line.starts_with("    "),
            "not indented under a section: {line:?}"
        );
        let (k, v) = t
            .split_once(char::is_whitespace)
            .unwrap_or_else(|| panic!("no value: {t:?}"));
        let section = out.last_mut().expect("a key before any section");
        section
            .1
            .insert(k.to_ascii_lowercase(), v.trim().to_string());
    }
    out
}

#[test]
fn fluent_bit_classic_and_yaml_configs_say_the_same() {
    for name in ["stdin", "exec", "forward", "plugin", "loki"] {
        let conf = classic_sections(&read(&format!("fluent-bit/{name}.conf")));
        let yaml: serde_yaml::Value =
            serde_yaml::from_str(&read(&format!("fluent-bit/{name}.yaml"))).unwrap();
        let p = &yaml["pipeline"];
        for (kind, list) in [
            ("INPUT", "inputs"),
            ("FILTER", "filters"),
            ("OUTPUT", "outputs"),
        ] {
            let classic: Vec<_> = conf.iter().filter(|(s, _)| s == kind).collect();
            let yaml_list = p[list].as_sequence().map(Vec::as_slice).unwrap_or_default();
            assert_eq!(classic.len(), yaml_list.len(), "{name}: {kind}");
            for ((_, keys), y) in classic.iter().zip(yaml_list) {
                let y = y.as_mapping().unwrap();
                assert_eq!(keys.len(), y.len(), "{name} {kind}: {keys:?} vs {y:?}");
                for (k, v) in keys.iter() {
                    let yv = &y[serde_yaml::Value::String(k.clone())];
                    let yv = match yv {
                        serde_yaml::Value::String(s) => s.clone(),
                        serde_yaml::Value::Bool(b) => if *b { "on" } else { "off" }.into(),
                        serde_yaml::Value::Number(n) => n.to_string(),
                        other => panic!("{name} {k}: {other:?}"),
                    };
                    let norm = |s: &str| match s.to_ascii_lowercase().as_str() {
                        "true" => "on".to_string(),
                        "false" => "off".to_string(),
                        o => o.to_string(),
                    };
                    assert_eq!(norm(v), norm(&yv), "{name} {kind} {k}");
                }
            }
        }
    }
}

#[test]
fn the_fluent_bit_parser_reads_our_timestamps() {
    let parsers = classic_sections(&read("fluent-bit/parsers.conf"));
    let (_, p) = parsers
        .iter()
        .find(|(s, k)| s == "PARSER" && k["name"] == "buildlog")
        .unwrap();
    assert_eq!(p["format"], "json");
    assert_eq!(p["time_key"], "timestamp");
    assert_eq!(p["time_keep"], "On");
    // Fluent Bit's %L is the fraction of a second; our timestamps always carry 3 digits.
    assert_eq!(p["time_format"], "%Y-%m-%dT%H:%M:%S.%LZ");
    let events = common::convert_dir(&common::corpus().join("build-01-success"), &[]);
    for e in &events {
        let ts = serde_json::to_value(e).unwrap()["timestamp"]
            .as_str()
            .unwrap()
            .to_string();
        let parsed = jiff::fmt::strtime::parse("%Y-%m-%dT%H:%M:%S%.fZ", &ts).unwrap();
        assert_eq!(ts.len(), 24, "{ts}");
        assert_eq!(parsed.to_datetime().unwrap().to_string()[..19], ts[..19]);
    }
}

#[test]
fn vector_configs_are_wired_and_parse_event_time() {
    for name in ["buildlog.toml", "forward.toml"] {
        let v: toml::Table = toml::from_str(&read(&format!("vector/{name}"))).unwrap();
        let mut known: BTreeSet<String> =
            v["sources"].as_table().unwrap().keys().cloned().collect();
        for section in ["transforms", "sinks"] {
            let Some(t) = v.get(section).and_then(|t| t.as_table()) else {
                continue;
            };
            for (id, comp) in t {
                for input in comp["inputs"].as_array().unwrap() {
                    assert!(
                        known.contains(input.as_str().unwrap()),
                        "{name}: {id} reads unknown {input}"
                    );
                }
                known.insert(id.clone());
            }
        }
        assert!(v["sinks"].as_table().unwrap().len() == 1, "{name}");
    }
    let v: toml::Table = toml::from_str(&read("vector/buildlog.toml")).unwrap();
    let src = &v["sources"]["buildlog"];
    assert_eq!(src["type"].as_str(), Some("exec"));
    assert_eq!(src["mode"].as_str(), Some("streaming"));
    assert_eq!(src["decoding"]["codec"].as_str(), Some("json"));
    let cmd: Vec<_> = src["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(&cmd[..4], ["buildlog", "convert", "--quiet", "--follow"]);
    let remap = v["transforms"]["event_time"]["source"].as_str().unwrap();
    assert!(remap.contains(
        r#".timestamp = parse_timestamp!(.timestamp, format: "%Y-%m-%dT%H:%M:%S%.3fZ")"#
    ));
    let loki = &v["sinks"]["loki"];
    assert_eq!(loki["type"].as_str(), Some("loki"));
    let labels: BTreeSet<_> = loki["labels"].as_table().unwrap().keys().cloned().collect();
    assert_eq!(labels, ["feature", "job", "level"].map(String::from).into());
    // `level` in lower case as the rules and dashboards match it; the helper field stays out
    // of the line; the ids as structured metadata.
    assert!(remap.contains(r#".loki_level = downcase(string(.level) ?? "info")"#));
    assert_eq!(loki["labels"]["level"].as_str(), Some("{{ loki_level }}"));
    assert_eq!(
        loki["encoding"]["except_fields"].as_array().unwrap(),
        &vec![toml::Value::from("loki_level")]
    );
    let sm: BTreeMap<_, _> = loki["structured_metadata"]
        .as_table()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    for id in ["correlation_id", "event_id", "trace_id"] {
        assert_eq!(sm.get(id), Some(&format!("{{{{ {id} }}}}")), "{id}");
    }
    let fwd: toml::Table = toml::from_str(&read("vector/forward.toml")).unwrap();
    assert_eq!(fwd["sources"]["buildlog"]["type"].as_str(), Some("fluent"));
}

/// Alloy's configuration syntax: blocks `kind.name "label" { ... }`; checks that braces and
/// brackets balance outside strings and that every `forward_to` names a defined component.
#[test]
fn alloy_config_is_balanced_and_wired() {
    let text = read("alloy/config.alloy");
    let mut depth: i32 = 0;
    let mut in_str = false;
    let mut top_blocks = BTreeSet::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("//") {
            continue;
        }
        if depth == 0 && t.ends_with('{') {
            let head: Vec<_> = t.trim_end_matches('{').split_whitespace().collect();
            assert_eq!(head.len(), 2, "{t}");
            top_blocks.insert(format!("{}.{}", head[0], head[1].trim_matches('"')));
        }
        for c in t.chars() {
            match c {
                '"' => in_str = !in_str,
                '{' | '[' if !in_str => depth += 1,
                '}' | ']' if !in_str => depth -= 1,
                _ => {}
            }
            assert!(depth >= 0, "unbalanced at {t}");
        }
        assert!(!in_str, "unterminated string: {t}");
    }
    assert_eq!(depth, 0);
    assert_eq!(
        top_blocks,
        [
            "local.file_match.buildlog",
            "loki.source.file.buildlog",
            "loki.process.buildlog",
            "loki.write.default"
        ]
        .map(String::from)
        .into()
    );
    for line in text
        .lines()
        .filter(|l| l.trim_start().starts_with("forward_to"))
    {
        let target = line.split('[').nth(1).unwrap().trim_end_matches(']').trim();
        let component = target.strip_suffix(".receiver").unwrap();
        assert!(top_blocks.contains(component), "{target}");
    }
    assert!(text.contains("stage.timestamp {\n    source = \"ts\"\n    format = \"RFC3339Nano\""));
    assert!(text.contains("ts             = \"timestamp\""));
    // `level` lower-cased before it becomes a label; the ids as structured metadata.
    let template = text.find("stage.template {").expect("stage.template");
    let labels = text.find("stage.labels {").unwrap();
    assert!(
        template < labels,
        "the level is lower-cased before the labels stage"
    );
    assert!(text.contains("source   = \"level\"\n    template = \"{{ ToLower .Value }}\""));
    let sm = &text[text
        .find("stage.structured_metadata {")
        .expect("structured metadata")..];
    let sm = &sm[..sm.find("\n  }").unwrap()];
    for id in ["correlation_id", "event_id", "trace_id"] {
        assert!(
            sm.lines()
                .any(|l| l.split('=').next().unwrap().trim() == id),
            "{id}: {sm}"
        );
        assert!(
            text.contains(&format!("= \"{id}\",")),
            "{id} extracted by stage.json"
        );
    }
}

//! The files of `loki/`: the dashboard is valid and wired to a Loki data source; with the
//! peers, the config passes `loki -verify-config`, the alert rules pass `lokitool rules check`,
//! and every LogQL query of the dashboard, the rules and the examples is accepted by a real Loki.

mod peers;

use std::path::{Path, PathBuf};
use std::process::Command;

fn loki_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("loki")
}

fn dashboard() -> serde_json::Value {
    let text =
        std::fs::read_to_string(loki_dir().join("dashboards/container-build-logs.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Dashboard queries with Grafana's variables replaced by values Loki accepts.
fn dashboard_queries() -> Vec<String> {
    let d = dashboard();
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            out.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    for a in d["annotations"]["list"].as_array().unwrap() {
        out.push(a["expr"].as_str().unwrap().to_string());
    }
    out.into_iter()
        .map(|q| {
            q.replace("$__auto", "1m")
                .replace("$__range", "1h")
                .replace("$correlation_id", ".+")
                .replace("$host", ".*")
                .replace("$feature", ".*")
                .replace("$level", ".*")
        })
        .collect()
}

#[test]
fn dashboard_is_wired_to_loki() {
    let d = dashboard();
    assert_eq!(d["uid"], "buildlog-loki-logs");
    let panels = d["panels"].as_array().unwrap();
    assert!(panels.len() >= 4);
    for p in panels {
        assert_eq!(p["datasource"]["type"], "loki", "{}", p["title"]);
        assert!(!p["targets"].as_array().unwrap().is_empty());
    }
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for q in dashboard_queries() {
        assert!(!q.contains('$'), "unreplaced variable in {q}");
        assert!(q.contains("job=\"container-build\""), "{q}");
    }
    assert_eq!(
        vars,
        vec!["datasource", "host", "feature", "level", "correlation_id"]
    );
}

/// The LogQL blocks of logql-examples.md, one query per line or per multi-line block.
fn example_queries() -> Vec<String> {
    let text = std::fs::read_to_string(loki_dir().join("logql-examples.md")).unwrap();
    let mut out = Vec::new();
    let mut block: Option<Vec<&str>> = None;
    for line in text.lines() {
        match (&mut block, line.trim()) {
            (None, "```logql") => block = Some(Vec::new()),
            (Some(b), "```") => {
                // A block whose lines each start a query holds several; else it is one query.
                if b.iter().all(|l| l.starts_with('{')) {
                    out.extend(b.iter().map(|l| l.to_string()));
                } else {
                    out.push(b.join("\n"));
                }
                block = None;
            }
            (Some(b), l) if !l.is_empty() => b.push(line),
            _ => {}
        }
    }
    out
}

/// The `expr` values of the rule file (a line-based reading of its block scalars).
fn rule_queries() -> Vec<String> {
    let text = std::fs::read_to_string(loki_dir().join("rules/buildlog-alerts.yaml")).unwrap();
    let mut out = Vec::new();
    let mut cur: Option<(usize, Vec<String>)> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some((ind, lines)) = &mut cur {
            if indent > *ind && !line.trim().is_empty() {
                lines.push(line.trim().to_string());
                continue;
            }
            out.push(lines.join(" "));
            cur = None;
        }
        if line.trim() == "expr: |" {
            cur = Some((indent, Vec::new()));
        }
    }
    out
}

#[test]
fn queries_are_found() {
    let ex = example_queries();
    assert!(ex.len() >= 8, "{ex:?}");
    assert!(ex[0].contains("correlation_id=\"build-"));
    let rules = rule_queries();
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert!(rules[0].contains("event_type=\"build_failure\""));
}

#[test]
fn real_loki_accepts_config_rules_and_queries() {
    let Some(script) = peers::peer_script("real_loki_accepts_config_rules_and_queries") else {
        return;
    };
    let loki_exe = peers::peer(&script, &["path", "loki"]);
    peers::run_ok(
        Command::new(&loki_exe)
            .arg(format!(
                "-config.file={}",
                loki_dir().join("loki-local.yaml").display()
            ))
            .arg("-verify-config"),
    );

    let lokitool = peers::peer(&script, &["path", "lokitool"]);
    peers::run_ok(
        Command::new(&lokitool)
            .args(["rules", "check"])
            .arg(loki_dir().join("rules/buildlog-alerts.yaml")),
    );

    let loki = peers::start_loki(&script);
    let end = 1_800_000_000_000_000_000i128;
    let mut queries = dashboard_queries();
    queries.extend(example_queries());
    queries.extend(rule_queries());
    for q in queries {
        let url = format!(
            "{}/loki/api/v1/query_range?query={}&start={}&end={end}&step=60",
            loki.url,
            peers::urlencode(&q),
            end - 3_600_000_000_000
        );
        let (code, body) = peers::http_get(&url).expect("query");
        assert_eq!(code, 200, "Loki refused {q}: {body}");
    }
}

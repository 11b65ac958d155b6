//! The files of `loki/`: the dashboard is valid and wired to a Loki data source; with the
//! peers, the config passes `loki -verify-config`, the alert rules pass `lokitool rules check`,
//! and every LogQL query of the dashboard, the rules and the examples is accepted by a real Loki.
//! Then in use: a real Loki run from `loki-local.yaml` loads the rule files into its ruler and
//! each alert fires for the corpus build that should trigger it (moved to the current time) and
//! not for a quiet one; every dashboard query, with its variables set to a real build's values,
//! every LogQL example and every LogQL query written in the docs returns data.

mod common;
mod peers;

use buildlog::Event;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

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

// ---------------------------------------------------------------------------------------------
// The shipped files in use: a real Loki configured as `loki/loki-local.yaml` is, its ruler
// given `loki/rules/` as the ruler's local directory, corpus builds shipped with current
// timestamps by `buildlog ship --loki`; then every alert must fire for the build that should
// trigger it and stay silent for a build that should not, and every dashboard query and LogQL
// example must return data.

/// For each alert of `loki/rules/`, the corpus build that must make it fire. An alert added to
/// the rules without a build here fails the test: say which build shows it.
const RULE_TRIGGERS: &[(&str, &str)] = &[
    ("ContainerBuildFailureSentinel", "build-02-failure"),
    // curl: (22) and apt's E: in its Java feature; build 01 has no tool error.
    ("ContainerBuildToolErrors", "build-02-failure"),
];

/// A build that went well: no alert may fire for it.
const QUIET_BUILD: &str = "build-01-success";

/// One alerting rule of a rule file.
#[derive(Debug)]
struct AlertRule {
    file: String,
    name: String,
    hold_secs: f64,
}

/// Every rule file of `loki/rules/` and the alerting rules in it, read as the ruler reads them
/// (Prometheus' rule file format: `groups:` at the top, nothing else).
fn alert_rules() -> Vec<AlertRule> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(loki_dir().join("rules"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let doc: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for group in doc["groups"].as_sequence().into_iter().flatten() {
            for rule in group["rules"].as_sequence().into_iter().flatten() {
                let Some(name) = rule["alert"].as_str() else {
                    continue;
                };
                out.push(AlertRule {
                    file: file.clone(),
                    name: name.to_string(),
                    hold_secs: rule["for"].as_str().map(duration_secs).unwrap_or(0.0),
                });
            }
        }
    }
    out
}

/// `5m`, `30s`, `1h`, `0m` as seconds.
fn duration_secs(s: &str) -> f64 {
    let (n, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len()));
    let n: f64 = n.parse().unwrap_or_else(|_| panic!("duration {s:?}"));
    n * match unit {
        "ms" => 0.001,
        "s" | "" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        u => panic!("duration unit {u:?} in {s:?}"),
    }
}

/// A Loki started from `loki/loki-local.yaml` itself, with only its data paths and ports moved
/// into a fresh directory (and the ruler polling often), the rule files of `loki/rules/` copied
/// into its ruler directory for tenant `fake` as `docs/loki.md` says.
fn start_loki_as_configured(script: &PathBuf) -> peers::Server {
    let exe = peers::peer(script, &["path", "loki"]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let text = std::fs::read_to_string(loki_dir().join("loki-local.yaml"))
        .unwrap()
        .replace("/tmp/loki", data);
    let mut cfg: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let (http, grpc) = (peers::free_port(), peers::free_port());
    cfg["server"]["http_listen_port"] = http.into();
    cfg["server"]["grpc_listen_port"] = grpc.into();
    cfg["ruler"]["poll_interval"] = "1s".into();
    cfg["ruler"]["evaluation_interval"] = "1s".into();
    let rules_dir = cfg["ruler"]["storage"]["local"]["directory"]
        .as_str()
        .expect("loki-local.yaml: ruler.storage.local.directory")
        .to_string();
    let tenant_dir = Path::new(&rules_dir).join("fake");
    std::fs::create_dir_all(&tenant_dir).unwrap();
    for e in std::fs::read_dir(loki_dir().join("rules")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), tenant_dir.join(e.file_name())).unwrap();
    }
    let cfg_path = dir.path().join("loki.yaml");
    std::fs::write(&cfg_path, serde_yaml::to_string(&cfg).unwrap()).unwrap();
    let log = std::fs::File::create(dir.path().join("loki.log")).unwrap();
    let child = Command::new(exe)
        .arg(format!("-config.file={}", cfg_path.display()))
        .current_dir(dir.path())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let server = peers::Server {
        child,
        url: format!("http://127.0.0.1:{http}"),
        _dir: dir,
    };
    let start = Instant::now();
    loop {
        if let Some((200, body)) = peers::http_get(&format!("{}/ready", server.url)) {
            if body.trim() == "ready" {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "Loki did not become ready:\n{}",
            loki_log(&server)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    server
}

/// The last lines of the Loki's log.
fn loki_log(server: &peers::Server) -> String {
    let text = std::fs::read_to_string(server._dir.path().join("loki.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// A corpus build moved to the current time, shipped with `--label host=<build name>` so that
/// each build is told apart by the `host` label the rules group by. Its events.
fn ship_now(loki: &str, build: &str, work: &Path) -> Vec<Event> {
    let events = common::build_moved_to(&common::corpus().join(build), common::now_ms() - 5_000);
    let file = work.join(format!("{build}.jsonl"));
    common::write_events(&file, &events);
    let out = common::bin()
        .args(["ship", "-q", "--loki", loki, "--label"])
        .arg(format!("host={build}"))
        .arg("--dead-letter")
        .arg(work.join("dead-letter.jsonl"))
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "ship {build}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    events
}

/// `GET` a JSON answer of the Loki API.
fn loki_json(url: &str) -> serde_json::Value {
    let (code, body) = peers::http_get(url).unwrap_or_else(|| panic!("no answer from {url}"));
    assert_eq!(code, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The ruler's alerting rules as its Prometheus-style API reports them: name -> rule object.
fn ruler_rules(loki: &str) -> BTreeMap<String, serde_json::Value> {
    let v = loki_json(&format!("{loki}/prometheus/api/v1/rules"));
    let mut out = BTreeMap::new();
    for g in v["data"]["groups"].as_array().into_iter().flatten() {
        for r in g["rules"].as_array().into_iter().flatten() {
            if r["type"] == "alerting" {
                out.insert(r["name"].as_str().unwrap().to_string(), r.clone());
            }
        }
    }
    out
}

#[test]
fn rules_load_in_the_real_ruler_and_alerts_fire_for_the_right_builds() {
    let Some(script) = peers::peer_script("rules_load_in_the_real_ruler_and_alerts_fire") else {
        return;
    };
    let rules = alert_rules();
    assert!(!rules.is_empty(), "no alerting rule in loki/rules/");
    for r in &rules {
        assert!(
            RULE_TRIGGERS.iter().any(|(n, _)| *n == r.name),
            "alert {} ({}) has no corpus build that should trigger it in RULE_TRIGGERS",
            r.name,
            r.file
        );
    }
    let loki = start_loki_as_configured(&script);

    // Every alert of the files is loaded, none with an error.
    let start = Instant::now();
    let loaded = loop {
        let got = ruler_rules(&loki.url);
        if rules.iter().all(|r| got.contains_key(&r.name)) {
            break got;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the ruler loaded {:?} of {:?}:\n{}",
            got.keys().collect::<Vec<_>>(),
            rules.iter().map(|r| &r.name).collect::<Vec<_>>(),
            loki_log(&loki)
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(loaded.len(), rules.len(), "{:?}", loaded.keys());

    // The quiet build first, so that every evaluation that sees a trigger sees it too.
    let work = tempfile::tempdir().unwrap();
    ship_now(&loki.url, QUIET_BUILD, work.path());
    let mut triggers: Vec<&str> = RULE_TRIGGERS.iter().map(|(_, b)| *b).collect();
    triggers.sort();
    triggers.dedup();
    for b in &triggers {
        ship_now(&loki.url, b, work.path());
    }

    // Each alert goes active (firing; pending while its `for` holds) for its build's host,
    // and for no other host. The file's group interval decides how soon it is evaluated.
    for r in &rules {
        let build = RULE_TRIGGERS.iter().find(|(n, _)| *n == r.name).unwrap().1;
        let start = Instant::now();
        let alerts = loop {
            let rule = &ruler_rules(&loki.url)[&r.name];
            // `unknown` until its first evaluation; `err` when the query failed.
            assert_ne!(rule["health"], "err", "{}: {rule}", r.name);
            let alerts = rule["alerts"].as_array().cloned().unwrap_or_default();
            let want = if r.hold_secs == 0.0 {
                &["firing"][..]
            } else {
                &["pending", "firing"][..]
            };
            if alerts.iter().any(|a| {
                a["labels"]["host"] == build && want.contains(&a["state"].as_str().unwrap_or(""))
            }) {
                break alerts;
            }
            assert!(
                start.elapsed() < Duration::from_secs(150),
                "{} ({}) did not fire for {build}: {rule}",
                r.name,
                r.file
            );
            std::thread::sleep(Duration::from_secs(1));
        };
        let hosts: BTreeSet<&str> = alerts
            .iter()
            .map(|a| a["labels"]["host"].as_str().unwrap_or(""))
            .collect();
        assert!(
            !hosts.contains(QUIET_BUILD),
            "{} fired for {QUIET_BUILD}: {alerts:?}",
            r.name
        );
        // The alerts API agrees.
        let api = loki_json(&format!("{}/prometheus/api/v1/alerts", loki.url));
        let named: Vec<&serde_json::Value> = api["data"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["labels"]["alertname"] == r.name.as_str())
            .collect();
        assert!(
            named.iter().any(|a| a["labels"]["host"] == build),
            "{}: {api}",
            r.name
        );
        assert!(
            named.iter().all(|a| a["labels"]["host"] != QUIET_BUILD),
            "{}: {api}",
            r.name
        );
    }
}

/// The builds the dashboard and examples are run on: a success (the examples name its
/// correlation and trace ids) and a failure (sentinel, failed command and feature).
const DATA_BUILDS: &[&str] = &["build-01-success", "build-02-failure"];

/// LogQL written inline in the docs (`` `{job="container-build"} | ...` `` and aggregations of
/// it), outside the runbooks' `expression` rows (those are the rules, run by the ruler above).
fn doc_inline_queries() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    for dir in ["docs", "docs/runbooks", "loki"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "md") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let name = f.strip_prefix(root).unwrap().display().to_string();
        for line in text.lines() {
            if line.starts_with("| expression |") {
                continue;
            }
            // Inline code spans: the odd pieces between backticks.
            for (i, span) in line.split('`').enumerate() {
                if i % 2 == 1 && span.contains("{job=\"container-build\"") {
                    out.push((name.clone(), span.to_string()));
                }
            }
        }
    }
    out
}

/// A Loki `query_range` over the last `window` seconds: the number of streams or series
/// returned, or Loki's refusal.
fn range_result_count(loki: &str, q: &str, window: i64) -> Result<usize, String> {
    let end = common::now_ms() as i128 * 1_000_000 + 60_000_000_000;
    let url = format!(
        "{loki}/loki/api/v1/query_range?query={}&start={}&end={end}&step=60&limit=1000",
        peers::urlencode(q),
        end - window as i128 * 1_000_000_000,
    );
    let (code, body) = peers::http_get(&url).ok_or("no answer")?;
    if code != 200 {
        return Err(format!("HTTP {code}: {body}"));
    }
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    Ok(v["data"]["result"].as_array().map_or(0, |r| r.len()))
}

#[test]
fn dashboard_queries_and_logql_examples_return_data_in_a_real_loki() {
    let Some(script) = peers::peer_script("dashboard_queries_and_logql_examples_return_data")
    else {
        return;
    };
    let loki = start_loki_as_configured(&script);
    let work = tempfile::tempdir().unwrap();
    let mut shipped = BTreeMap::new();
    for b in DATA_BUILDS {
        shipped.insert(*b, ship_now(&loki.url, b, work.path()));
    }

    // The dashboard's variables set as a user would pick them: the failed build's host, the
    // feature that failed, level error, that build's correlation id.
    let failed = &shipped["build-02-failure"];
    let failure = failed
        .iter()
        .find(|e| e.event_type.as_str() == "build_failure")
        .expect("build-02-failure has a build_failure event");
    let vars = [
        ("$host", "build-02-failure".to_string()),
        ("$feature", failure.feature.clone()),
        ("$level", "error".to_string()),
        ("$correlation_id", failure.correlation_id.to_string()),
        ("$__auto", "1m".to_string()),
        ("$__range", "1h".to_string()),
    ];
    let d = dashboard();
    let mut queries: Vec<(String, String)> = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let title = format!("dashboard panel {:?}", p["title"].as_str().unwrap_or(""));
            queries.push((title, t["expr"].as_str().unwrap().to_string()));
        }
    }
    for a in d["annotations"]["list"].as_array().unwrap() {
        queries.push((
            "dashboard annotation".into(),
            a["expr"].as_str().unwrap().into(),
        ));
    }
    // A variable's values come from Loki too (`label_values(NAME)` over job="container-build"):
    // the picked value must be among them.
    for v in d["templating"]["list"].as_array().unwrap() {
        if let Some(label) = v["query"]["label"].as_str() {
            let url = format!(
                "{}/loki/api/v1/label/{label}/values?query={}&start={}",
                loki.url,
                peers::urlencode(v["query"]["stream"].as_str().unwrap()),
                (common::now_ms() as i128 - 3_600_000) * 1_000_000
            );
            let got = loki_json(&url);
            let picked = &vars.iter().find(|(k, _)| k[1..] == *label).unwrap().1;
            assert!(
                got["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x == picked.as_str()),
                "variable {label}: {picked} not among {got}"
            );
        }
    }
    let set = |q: &str| {
        let mut q = q.to_string();
        for (k, v) in &vars {
            q = q.replace(k, v);
        }
        assert!(!q.contains('$'), "unset variable in {q}");
        q
    };
    queries = queries.into_iter().map(|(w, q)| (w, set(&q))).collect();
    queries.extend(
        example_queries()
            .into_iter()
            .map(|q| ("loki/logql-examples.md".to_string(), q)),
    );
    queries.extend(doc_inline_queries());
    assert!(queries.len() >= 20, "{queries:?}");

    let mut empty = Vec::new();
    for (where_, q) in &queries {
        match range_result_count(&loki.url, q, 3600) {
            Ok(0) => empty.push(format!("{where_}: no data: {q}")),
            Ok(_) => {}
            Err(e) => empty.push(format!("{where_}: refused: {q}: {e}")),
        }
    }
    assert!(
        empty.is_empty(),
        "{} of {} queries fail on {DATA_BUILDS:?}:\n{}",
        empty.len(),
        queries.len(),
        empty.join("\n")
    );
}

//! Filter mode: `buildlog convert` output read by the real Fluent Bit through the configs of
//! pipelines/fluent-bit/ (stdin + Lua time filter, exec + JSON parser), in both config
//! formats. Asserts the exact records Fluent Bit produced: the event's fields, nested
//! metadata included, and the record time equal to the event's `timestamp`. The Loki pipeline
//! (loki.conf/loki.yaml) ships into a real Loki: lower-case `level` label, ids as structured
//! metadata, every event once.

mod common;
mod peers;

use buildlog::{Event, EventType};
use common::{convert_dir, corpus};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn pipelines() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/fluent-bit")
}

/// Runs Fluent Bit with `config` until it printed `want` records (or 60 s passed).
fn run_fluent_bit(
    fb: &Path,
    config: &str,
    stdin: Option<Vec<u8>>,
    env: &[(&str, &Path)],
    want: usize,
) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out");
    let mut cmd = Command::new(fb);
    cmd.arg("-c").arg(pipelines().join(config));
    // The exec input runs `buildlog` from PATH.
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_buildlog")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    cmd.env("PATH", path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(std::fs::File::create(&out_path).unwrap())
    .stderr(Stdio::null());
    let mut guard = peers::KillOnDrop(cmd.spawn().unwrap());
    if let Some(bytes) = stdin {
        let mut pipe = guard.0.stdin.take().unwrap();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&out_path).unwrap();
        let complete: Vec<&str> = text.lines().filter(|l| l.starts_with('{')).collect();
        if complete.len() >= want || Instant::now() > deadline {
            // Give a last flush the chance to show a surplus record, then stop.
            std::thread::sleep(Duration::from_millis(1500));
            let text = std::fs::read_to_string(&out_path).unwrap();
            return text
                .lines()
                .filter(|l| l.starts_with('{'))
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Removes `null` members, recursively: a Lua table cannot hold nil, so records that went
/// through the Lua filter lose them (docs/fluent-bit.md says so).
fn without_nulls(v: &mut serde_json::Value) {
    if let serde_json::Value::Object(m) = v {
        m.retain(|_, x| !x.is_null());
        m.values_mut().for_each(without_nulls);
    }
}

/// The record Fluent Bit holds for `ev`: its JSON object, plus the record time as `date`.
fn assert_records(records: &[serde_json::Value], events: &[Event], config: &str) {
    let lua = config.starts_with("stdin");
    assert_eq!(records.len(), events.len(), "{config}");
    for (rec, ev) in records.iter().zip(events) {
        assert_eq!(
            rec["date"].as_i64(),
            Some(ev.timestamp.millis()),
            "{config}: {rec}"
        );
        let mut body = rec.as_object().unwrap().clone();
        body.remove("date");
        let mut json: serde_json::Value = serde_json::from_str(&ev.to_json()).unwrap();
        if lua {
            without_nulls(&mut json);
        }
        assert_eq!(serde_json::Value::Object(body), json, "{config}");
    }
}

#[test]
fn stdin_pipeline_makes_the_event_time_the_record_time() {
    let Some(fb) = peers::peer_path(
        "stdin_pipeline_makes_the_event_time_the_record_time",
        "fluent-bit",
    ) else {
        return;
    };
    let build = corpus().join("build-02-failure");
    let events = convert_dir(&build, &[]);
    let bytes = common::bin()
        .args(["convert", "--quiet"])
        .arg(&build)
        .output()
        .unwrap()
        .stdout;
    // Nested metadata is among what must survive, and a null the Lua filter drops.
    assert!(events.iter().any(|e| e.metadata.get("exit_code").is_some()));
    assert!(events
        .iter()
        .any(|e| e.metadata.get("duration_seconds") == Some(&serde_json::Value::Null)));
    for config in ["stdin.conf", "stdin.yaml"] {
        let records = run_fluent_bit(&fb, config, Some(bytes.clone()), &[], events.len());
        assert_records(&records, &events, config);
    }
}

#[test]
fn exec_pipeline_parses_with_time_key() {
    let Some(fb) = peers::peer_path("exec_pipeline_parses_with_time_key", "fluent-bit") else {
        return;
    };
    let build = corpus().join("build-01-success");
    let events = convert_dir(&build, &[]);
    for config in ["exec.conf", "exec.yaml"] {
        let records = run_fluent_bit(
            &fb,
            config,
            None,
            &[("BUILD_LOG_DIR", &build)],
            events.len(),
        );
        assert_records(&records, &events, config);
    }
}

#[test]
fn every_fluent_bit_config_passes_dry_run() {
    let Some(fb) = peers::peer_path("every_fluent_bit_config_passes_dry_run", "fluent-bit") else {
        return;
    };
    let mut checked = 0;
    for entry in std::fs::read_dir(pipelines()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let is_main = (name.ends_with(".conf") || name.ends_with(".yaml"))
            && !name.starts_with("parsers")
            && !name.starts_with("plugins");
        // The plugin configs need the plugin; they are run by tests/fluent_bit_plugin.rs.
        if !is_main || name.starts_with("plugin") {
            continue;
        }
        let out = Command::new(&fb)
            .arg("-c")
            .arg(&path)
            .arg("--dry-run")
            .env("BUILD_LOG_DIR", corpus())
            .env("LOKI_HOST", "127.0.0.1")
            .env("LOKI_PORT", "3100")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 6, "{checked}");
}

/// Records of Fluent Bit's json_lines output file, by source file.
fn records_by_file(path: &Path) -> BTreeMap<String, Vec<serde_json::Value>> {
    let mut m: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for l in std::fs::read_to_string(path).unwrap().lines() {
        if l.starts_with('{') {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            m.entry(v["source"]["file"].as_str().unwrap().to_string())
                .or_default()
                .push(v);
        }
    }
    m
}

fn wait_for(path: &Path, n: usize) -> BTreeMap<String, Vec<serde_json::Value>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = records_by_file(path);
        if m.values().map(Vec::len).sum::<usize>() >= n || Instant::now() > deadline {
            return m;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn follow_feeds_a_live_build_into_the_stdin_pipeline() {
    let Some(fb) = peers::peer_path(
        "follow_feeds_a_live_build_into_the_stdin_pipeline",
        "fluent-bit",
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let build = tmp.path().join("build");
    std::fs::create_dir(&build).unwrap();
    let src = corpus().join("build-01-success");
    std::fs::copy(
        src.join("python-install.log"),
        build.join("python-install.log"),
    )
    .unwrap();
    let convert = common::bin()
        .args(["convert", "--quiet", "--follow", "--poll-interval", "50"])
        .arg(&build)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut convert = peers::KillOnDrop(convert);
    let out_path = tmp.path().join("fb.out");
    let fluent = Command::new(&fb)
        .arg("-c")
        .arg(pipelines().join("stdin.conf"))
        .stdin(Stdio::from(convert.0.stdout.take().unwrap()))
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _fluent = peers::KillOnDrop(fluent);

    // A second feature starts while the pipeline runs. The followed build is not over, so it
    // has no `build_end` yet (its `build_start` came with its first event).
    let no_build_events = |v: Vec<Event>| -> Vec<Event> {
        v.into_iter()
            .filter(|e| !matches!(e.event_type, EventType::BuildEnd))
            .collect()
    };
    let first = no_build_events(convert_dir(&build, &[]));
    let got = wait_for(&out_path, first.len());
    assert_eq!(got.values().map(Vec::len).sum::<usize>(), first.len());
    std::fs::copy(
        src.join("nodejs-install.log"),
        build.join("nodejs-install.log"),
    )
    .unwrap();
    let all = no_build_events(convert_dir(&build, &[]));
    let got = wait_for(&out_path, all.len());
    std::thread::sleep(Duration::from_millis(1500));
    let got_again = records_by_file(&out_path);
    assert_eq!(got, got_again, "no surplus records");

    let mut want: BTreeMap<String, Vec<&Event>> = BTreeMap::new();
    // `build_start` (no source file) is counted above; the files' own events are compared here.
    for e in all.iter().filter(|e| !e.source.file.is_empty()) {
        want.entry(e.source.file.to_string()).or_default().push(e);
    }
    assert_eq!(want.len(), 2);
    for (file, events) in want {
        let recs = &got[&file];
        let events: Vec<Event> = events.into_iter().cloned().collect();
        assert_records(recs, &events, "stdin.conf");
    }
}

/// The Loki pipeline of pipelines/fluent-bit (stdin, Lua, Fluent Bit's own loki output) ships
/// a build into a real Loki: every event once, labelled as `buildlog ship --loki` labels it
/// (`level` in lower case, so the rules' `level=~"error|fatal"` matches), its ids as structured
/// metadata, the line the event itself.
#[test]
fn loki_pipeline_ships_lower_case_levels_and_ids_as_structured_metadata() {
    let Some(script) = peers::peer_script("loki_pipeline_ships_lower_case_levels") else {
        return;
    };
    let fb = peers::peer(&script, &["path", "fluent-bit"]);
    let loki = peers::start_loki(&script);
    let port = loki.url.rsplit(':').next().unwrap().to_string();
    // Oldest build first: the builds' events without a feature share a stream, and Loki
    // refuses entries far behind a stream's newest (docs/loki.md, "entry too far behind").
    for (config, build) in [
        ("loki.yaml", "build-01-success"),
        ("loki.conf", "build-02-failure"),
    ] {
        let path = corpus().join(build);
        let events = convert_dir(&path, &[]);
        let bytes = common::bin()
            .args(["convert", "--quiet"])
            .arg(&path)
            .output()
            .unwrap()
            .stdout;
        let mut child = Command::new(&fb)
            .arg("-c")
            .arg(pipelines().join(config))
            .env("LOKI_HOST", "127.0.0.1")
            .env("LOKI_PORT", &port)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        let guard = peers::KillOnDrop(child);
        // At the end of stdin Fluent Bit flushes and stops on its own.
        let cid = &events[0].correlation_id;
        let min = events.iter().map(|e| e.timestamp.millis()).min().unwrap() as i128;
        let max = events.iter().map(|e| e.timestamp.millis()).max().unwrap() as i128;
        let query = |q: &str| {
            let url = format!(
                "{}/loki/api/v1/query_range?query={}&start={}&end={}&limit=100000",
                loki.url,
                peers::urlencode(q),
                (min - 60_000) * 1_000_000,
                (max + 60_000) * 1_000_000
            );
            let (code, body) = peers::http_get(&url).unwrap();
            assert_eq!(code, 200, "{body}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let mut out = Vec::new();
            for s in v["data"]["result"].as_array().unwrap() {
                for e in s["values"].as_array().unwrap() {
                    out.push((s["stream"].clone(), e[1].as_str().unwrap().to_string()));
                }
            }
            out
        };
        let all = format!(r#"{{job="container-build"}} | correlation_id="{cid}""#);
        let deadline = Instant::now() + Duration::from_secs(60);
        let got = loop {
            let got = query(&all);
            if got.len() >= events.len() || Instant::now() > deadline {
                break got;
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        drop(guard);
        let missing: Vec<String> = events
            .iter()
            .filter(|e| {
                !got.iter()
                    .any(|(l, _)| l["event_id"].as_str() == Some(e.event_id.as_str()))
            })
            .map(|e| {
                format!(
                    "{} {} {:?}",
                    e.timestamp.to_rfc3339(),
                    e.event_type,
                    e.message
                )
            })
            .collect();
        assert_eq!(
            got.len(),
            events.len(),
            "{config}: every event once; missing: {missing:#?}"
        );
        let by_id: BTreeMap<&str, &Event> =
            events.iter().map(|e| (e.event_id.as_str(), e)).collect();
        for (labels, line) in &got {
            let id = labels["event_id"]
                .as_str()
                .expect("event_id as structured metadata");
            let want = by_id[id];
            assert_eq!(labels["level"], want.level.as_lower(), "{config}: {labels}");
            // A build event has no feature: Loki keeps no empty label.
            assert_eq!(
                labels["feature"].as_str().unwrap_or(""),
                want.feature.as_str(),
                "{config}"
            );
            assert_eq!(labels["correlation_id"], &*want.correlation_id);
            assert_eq!(
                labels["trace_id"].as_str(),
                want.trace_id.as_deref(),
                "{config}: {labels}"
            );
            let body: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(
                body.as_object()
                    .unwrap()
                    .keys()
                    .all(|k| !k.starts_with("loki_")),
                "{config}: {line}"
            );
            assert_eq!(
                body["level"],
                want.level.as_str(),
                "{config}: the line keeps the event's level"
            );
            assert_eq!(body["event_id"], id, "{config}: {line}");
            // The line is the whole event (less the nulls a Lua table cannot hold).
            let mut json: serde_json::Value = serde_json::from_str(&want.to_json()).unwrap();
            without_nulls(&mut json);
            assert_eq!(body, json, "{config}");
        }
        // What the rules and the dashboard select.
        let errors = events
            .iter()
            .filter(|e| matches!(e.level.as_str(), "ERROR" | "FATAL"))
            .count();
        assert!(errors > 0, "{build} has error events");
        let q =
            format!(r#"{{job="container-build", level=~"error|fatal"}} | correlation_id="{cid}""#);
        assert_eq!(query(&q).len(), errors, "{config}: {q}");
    }
}

//! Loads the plugin with a C harness that does what Fluent Bit's plugin proxy does (see
//! harness.c): dlopen, register, init with properties, flushes on a 64 KiB stack, exit.
//! The plugin ships to the test forward server; what arrives must be exactly what
//! `buildlog convert` makes of the same logs, whatever the record encoding, the interleaving
//! of files and where the flushes cut them.

mod common;
#[path = "../../../tests/common/forward_server.rs"]
mod forward_server;
#[path = "../../../tests/test_loki/mod.rs"]
mod test_loki;

use common::{corpus, plugin_so};
use forward_server::ForwardServer;
use rmpv::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;

/// Compiles harness.c with gcc from PATH. None (skipped) without gcc, unless CI is set.
fn harness(dir: &Path) -> Option<PathBuf> {
    let out = dir.join("harness");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harness.c");
    match Command::new("gcc")
        .args(["-O1", "-Wall", "-Werror", "-o"])
        .arg(&out)
        .arg(&src)
        .arg("-ldl")
        .status()
    {
        Ok(s) if s.success() => Some(out),
        Ok(s) => panic!("gcc failed: {s}"),
        Err(e) => {
            if std::env::var_os("CI").is_some() {
                panic!("CI is set but gcc is missing: {e}");
            }
            eprintln!("SKIPPED: gcc not found ({e})");
            None
        }
    }
}

fn run(harness: &Path, props: &[(&str, &str)], flushes: &[&Path]) -> (String, String) {
    let mut cmd = Command::new(harness);
    cmd.arg(plugin_so());
    for (k, v) in props {
        cmd.arg("-p").arg(format!("{k}={v}"));
    }
    for f in flushes {
        cmd.arg("-f").arg("tail.0").arg(f);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "harness: {out:?}");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn event_time() -> Value {
    Value::Ext(0, vec![0x69, 0x1a, 0x26, 0x65, 0, 0, 0, 0])
}

/// A tail record in the old (`[time, body]`) or new (`[[time, metadata], body]`) encoding.
fn record(new_encoding: bool, path: &str, line: &[u8]) -> Value {
    let body = Value::Map(vec![
        ("path".into(), path.into()),
        (
            "log".into(),
            Value::String(String::from_utf8_lossy(line).into_owned().into()),
        ),
    ]);
    let header = if new_encoding {
        Value::Array(vec![event_time(), Value::Map(vec![])])
    } else {
        event_time()
    };
    Value::Array(vec![header, body])
}

fn write_chunk(path: &Path, records: &[Value]) {
    let mut b = Vec::new();
    for r in records {
        rmpv::encode::write_value(&mut b, r).unwrap();
    }
    std::fs::write(path, b).unwrap();
}

/// A delivered line or record of a build event (`build_start`, `build_end`), whatever the
/// line format.
fn is_build_event(line: &str) -> bool {
    [
        "build_start",
        "build_end",
        "Build started",
        "Build succeeded",
        "Build failed",
    ]
    .iter()
    .any(|m| line.contains(m))
}

/// What `convert` makes of the directory, by source file, as JSON values.
fn expected(dir: &Path) -> BTreeMap<String, Vec<serde_json::Value>> {
    let mut by_file: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    let mut progress = buildlog::source::Progress::new(true);
    let report = buildlog::build::parse_inputs(
        &[buildlog::source::Input::from_path(dir.to_path_buf())],
        &buildlog::parse::ParseOptions::default(),
        &mut progress,
        &mut |e| {
            // The build's own events (`build_start`, and `build_end` when Fluent Bit stops) are
            // checked apart (`is_build_event`): these comparisons are of the files' events.
            if matches!(
                e.event_type,
                buildlog::EventType::BuildStart | buildlog::EventType::BuildEnd
            ) {
                return Ok(());
            }
            by_file
                .entry(e.source.file.to_string())
                .or_default()
                .push(serde_json::from_str(&e.to_json()).unwrap());
            Ok(())
        },
    );
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    by_file
}

/// Copies `files` of corpus build-01 into `build` (no json/: the plugin sees only the text
/// logs) and writes their lines as tail records: round-robin over the files, encodings
/// alternating, `per_chunk` records per chunk file; with `bad`, two bad records in chunk 2.
/// Returns the records (without the bad ones) and the chunk files.
fn interleaved_chunks(
    tmp: &Path,
    build: &Path,
    files: &[&str],
    per_chunk: usize,
    bad: bool,
) -> (Vec<Value>, Vec<PathBuf>) {
    std::fs::create_dir(build).unwrap();
    let mut lines = Vec::new();
    for f in files {
        std::fs::copy(corpus().join("build-01-success").join(f), build.join(f)).unwrap();
        let text = std::fs::read(build.join(f)).unwrap();
        let mut l: Vec<Vec<u8>> = text.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
        if l.last().is_some_and(|x| x.is_empty()) {
            l.pop();
        }
        lines.push((build.join(f).display().to_string(), l));
    }
    let mut records = Vec::new();
    let longest = lines.iter().map(|(_, l)| l.len()).max().unwrap();
    for i in 0..longest {
        for (path, l) in &lines {
            if let Some(line) = l.get(i) {
                records.push(record(records.len() % 2 == 1, path, line));
            }
        }
    }
    let mut chunk_files = Vec::new();
    for (n, chunk) in records.chunks(per_chunk).enumerate() {
        let mut chunk = chunk.to_vec();
        if bad && n == 1 {
            // Bad records: counted and reported, the rest of the chunk still delivered.
            chunk.insert(3, Value::from("not a record"));
            chunk.insert(
                5,
                Value::Array(vec![
                    event_time(),
                    Value::Map(vec![("log".into(), "no path".into())]),
                ]),
            );
        }
        let p = tmp.join(format!("chunk{n}.msgpack"));
        write_chunk(&p, &chunk);
        chunk_files.push(p);
    }
    (records, chunk_files)
}

#[test]
fn interleaved_files_both_encodings_split_flushes_and_a_retry() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(harness) = harness(tmp.path()) else {
        return;
    };
    let build = tmp.path().join("container-build");
    let (records, chunk_files) = interleaved_chunks(
        tmp.path(),
        &build,
        &["python-install.log", "nodejs-install.log"],
        37,
        true,
    );
    let want = expected(&build);
    assert_eq!(want.len(), 2);
    assert!(chunk_files.len() >= 4);

    let server = ForwardServer::start();
    // The first message is refused: the flush answers FLB_RETRY; the harness then flushes
    // the same chunk again, as Fluent Bit's retry does.
    server.state.close_on_message.store(1, Ordering::SeqCst);
    let mut flushes: Vec<&Path> = vec![&chunk_files[0]];
    flushes.extend(chunk_files.iter().map(PathBuf::as_path));
    let (stdout, stderr) = run(
        &harness,
        &[
            ("Forward", &server.addr),
            (
                "Ship_Args",
                "--forward-ack --forward-retries 0 --forward-timeout 5",
            ),
            ("Path_Key", "path"),
        ],
        &flushes,
    );
    let mut expect_out = vec!["register 0 2 11 buildlog".to_string(), "init 1".into()];
    for n in 1..=flushes.len() {
        expect_out.push(format!("flush {n} {}", if n == 1 { 2 } else { 1 }));
    }
    expect_out.push("exit 1".into());
    assert_eq!(stdout.lines().collect::<Vec<_>>(), expect_out, "{stderr}");

    // Every event once, per file in order, equal to convert's, at its time.
    let mut got: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    let mut build_events = 0;
    for e in server.entries() {
        if is_build_event(&e.record.to_string()) {
            build_events += 1;
            continue;
        }
        assert_eq!(
            e.secs as i64 * 1000 + (e.nanos / 1_000_000) as i64,
            buildlog::event::Timestamp::parse_rfc3339(e.record["timestamp"].as_str().unwrap())
                .unwrap()
                .millis()
        );
        got.entry(e.record["source"]["file"].as_str().unwrap().to_string())
            .or_default()
            .push(e.record);
    }
    assert_eq!(got, want);
    assert_eq!(build_events, 2, "build_start and, at exit, build_end");
    let events: usize = want.values().map(Vec::len).sum::<usize>() + build_events;
    let summary = format!(
        "[buildlog] exit: {} flushes, {} records (2 bad), {events} events, {events} delivered, 1 flushes retried",
        flushes.len(),
        records.len() + 2
    );
    assert!(stderr.contains(&summary), "{stderr}");
    assert!(
        stderr.contains("bad record skipped: record 4: record is not an array"),
        "{stderr}"
    );
    assert!(stderr.contains("no string `path`"), "{stderr}");
}

#[test]
fn bad_settings_fail_init_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(harness) = harness(tmp.path()) else {
        return;
    };
    for (props, reason) in [
        (&[][..], "set Host (or URL) or Forward"),
        (
            &[("Forward", "127.0.0.1:1"), ("Timezone", "Mars/Olympus")][..],
            "Timezone",
        ),
        (
            &[("Forward", "127.0.0.1:1"), ("Ship_Args", "--no-such-flag")][..],
            "--no-such-flag",
        ),
        (&[("Forward", "nowhere")][..], "HOST:PORT"),
        (
            &[("Forward", "127.0.0.1:1"), ("Scrub", "maybe")][..],
            "Scrub",
        ),
    ] {
        let (stdout, stderr) = run(&harness, props, &[]);
        assert_eq!(stdout, "register 0 2 11 buildlog\ninit 0\n", "{props:?}");
        assert!(
            stderr.contains("[buildlog] init failed") && stderr.contains(reason),
            "{props:?}: {stderr}"
        );
    }
}

#[test]
fn ships_to_loki_with_the_output_sections_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(harness) = harness(tmp.path()) else {
        return;
    };
    let build = tmp.path().join("container-build");
    let (_, chunk_files) = interleaved_chunks(
        tmp.path(),
        &build,
        &[
            "python-install.log",
            "rust-install.log",
            "nodejs-install.log",
        ],
        50,
        false,
    );
    let want: BTreeMap<String, serde_json::Value> = expected(&build)
        .into_values()
        .flatten()
        .map(|e| (e["event_id"].as_str().unwrap().to_string(), e))
        .collect();
    let loki = test_loki::TestLoki::start();
    // Loki fails the first push: FLB_RETRY, then Fluent Bit's retry of that chunk succeeds.
    loki.fail_next(1, test_loki::Fault::Status(500, None));
    let mut flushes: Vec<&Path> = vec![&chunk_files[0]];
    flushes.extend(chunk_files.iter().map(PathBuf::as_path));
    let (stdout, stderr) = run(
        &harness,
        &[
            ("Loki_URL", &loki.url),
            ("Tenant_ID", "team-a"),
            ("Labels", "job=container-build, env=ci, host="),
            ("Retries", "0"),
        ],
        &flushes,
    );
    let codes: Vec<_> = stdout.lines().filter(|l| l.starts_with("flush ")).collect();
    let mut expect = vec!["flush 1 2".to_string()];
    expect.extend((2..=flushes.len()).map(|n| format!("flush {n} 1")));
    assert_eq!(codes, expect, "{stderr}");

    let entries: Vec<_> = loki
        .entries()
        .into_iter()
        .filter(|e| !is_build_event(&e.line))
        .collect();
    assert_eq!(entries.len(), want.len(), "{stderr}");
    for entry in &entries {
        let line: serde_json::Value = serde_json::from_str(&entry.line).unwrap();
        let ev = &want[line["event_id"].as_str().unwrap()];
        assert_eq!(&line, ev);
        let ms = buildlog::event::Timestamp::parse_rfc3339(ev["timestamp"].as_str().unwrap())
            .unwrap()
            .millis() as i128;
        assert_eq!(entry.ts / 1_000_000, ms);
        assert_eq!(entry.labels["job"], "container-build");
        assert_eq!(entry.labels["env"], "ci");
        assert!(!entry.labels.contains_key("host"));
        assert_eq!(entry.labels["feature"], ev["feature"].as_str().unwrap());
        assert_eq!(
            entry.structured_metadata["correlation_id"],
            ev["correlation_id"].as_str().unwrap()
        );
    }
    let requests = loki.requests();
    assert!(requests.len() >= 2);
    assert!(requests
        .iter()
        .all(|r| r.tenant.as_deref() == Some("team-a")));
    assert_eq!(requests[0].status, 500);
}

#[test]
fn with_a_dead_letter_file_undeliverable_events_are_kept_there() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(harness) = harness(tmp.path()) else {
        return;
    };
    let build = tmp.path().join("container-build");
    let (_, chunk_files) =
        interleaved_chunks(tmp.path(), &build, &["python-install.log"], 1000, false);
    let want: Vec<String> = expected(&build)
        .into_values()
        .flatten()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    // Nobody listens on this port.
    let addr = format!(
        "127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let dead = tmp.path().join("dead.jsonl");
    let flushes: Vec<&Path> = chunk_files.iter().map(PathBuf::as_path).collect();
    let props = [("Forward", addr.as_str()), ("Retries", "0")];
    // Without a dead-letter file the chunk stays with Fluent Bit.
    let (stdout, _) = run(&harness, &props, &flushes);
    assert!(stdout.contains("flush 1 2\n"), "{stdout}");
    assert!(!dead.exists());
    // With one, the events are written there and the chunk acknowledged.
    let mut props = props.to_vec();
    props.push(("Dead_Letter", dead.to_str().unwrap()));
    let (stdout, stderr) = run(&harness, &props, &flushes);
    assert!(stdout.contains("flush 1 1\n"), "{stdout}{stderr}");
    let recs: Vec<buildlog::sink::dead_letter::DeadLetterRecord> = std::fs::read_to_string(&dead)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        recs.iter()
            .filter(|r| !is_build_event(r.event.event_type.as_str()))
            .map(|r| r.event.event_id.clone())
            .collect::<Vec<_>>(),
        want
    );
    assert!(recs
        .iter()
        .all(|r| r.sink == "forward" && r.reason.contains("connecting")));
}

/// The output section as Fluent Bit's own `loki` output spells it.
#[test]
fn out_loki_property_names_configure_the_loki_sink() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(harness) = harness(tmp.path()) else {
        return;
    };
    let build = tmp.path().join("container-build");
    let (_, chunk_files) =
        interleaved_chunks(tmp.path(), &build, &["python-install.log"], 1000, false);
    let want: BTreeMap<String, serde_json::Value> = expected(&build)
        .into_values()
        .flatten()
        .map(|e| (e["event_id"].as_str().unwrap().to_string(), e))
        .collect();
    let loki = test_loki::TestLoki::start();
    let port = loki.url.rsplit(':').next().unwrap().trim_end_matches('/');
    let flushes: Vec<&Path> = chunk_files.iter().map(PathBuf::as_path).collect();
    let (stdout, stderr) = run(
        &harness,
        &[
            ("Host", "127.0.0.1"),
            ("Port", port),
            ("URI", "/loki/api/v1/push"),
            ("Label_Keys", "$feature, $level, $event_type"),
            ("Structured_Metadata", "correlation_id, trace_id"),
            ("Line_Format", "key_value"),
            ("Retries", "0"),
        ],
        &flushes,
    );
    assert!(stdout.contains("init 1"), "{stdout}{stderr}");
    let entries: Vec<_> = loki
        .entries()
        .into_iter()
        .filter(|e| !is_build_event(&e.line))
        .collect();
    assert_eq!(entries.len(), want.len(), "{stderr}");
    for entry in &entries {
        // logfmt: the identifiers not sent as structured metadata are in the line
        let id = entry
            .line
            .split(' ')
            .find_map(|kv| kv.strip_prefix("event_id="))
            .unwrap_or_else(|| panic!("no event_id in {:?}", entry.line));
        let ev = &want[id];
        assert!(entry.line.starts_with("ts="), "{}", entry.line);
        assert_eq!(
            entry.labels["event_type"],
            ev["event_type"].as_str().unwrap()
        );
        assert_eq!(entry.labels["feature"], ev["feature"].as_str().unwrap());
        let mut sm: Vec<&str> = entry
            .structured_metadata
            .keys()
            .map(String::as_str)
            .collect();
        sm.sort();
        let mut expect = vec!["correlation_id"];
        if ev.get("trace_id").is_some() {
            expect.push("trace_id");
        }
        assert_eq!(sm, expect, "{}", entry.line);
    }
}

//! One input, one truth: every corpus build, written into a directory the way the logging
//! library writes it while `convert --follow` and `ship --follow --stdout` run, gives (once the
//! build is over) exactly the lines `convert` gives for the finished directory; and the
//! timestamps of every corpus build are in order.

mod common;

use common::replay::{replay, start_time};
use common::{bin, convert_dir, corpus_builds};
use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn follower(args: &[&str], dir: &Path, out: &Path) -> Child {
    bin()
        .args(args)
        .args([
            "--poll-interval",
            "20",
            "--twin-wait",
            "5",
            "--idle-end",
            "4",
        ])
        .arg(dir)
        .stdout(File::create(out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_exit(child: &mut Child, what: &str) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not end by itself after the build was over");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sorted_lines(path: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

fn first_difference(got: &[String], want: &[String]) -> String {
    let g: std::collections::BTreeSet<&String> = got.iter().collect();
    let w: std::collections::BTreeSet<&String> = want.iter().collect();
    let missing = w.difference(&g).next();
    let extra = g.difference(&w).next();
    format!(
        "{} lines vs {}\nmissing: {missing:?}\nextra:   {extra:?}",
        got.len(),
        want.len()
    )
}

#[test]
fn every_corpus_build_followed_while_written_equals_its_conversion() {
    for src in corpus_builds() {
        let name = src.file_name().unwrap().to_string_lossy().to_string();
        let tmp = tempfile::tempdir().unwrap();
        let live = tmp.path().join("container-build");
        let (conv_out, ship_out) = (
            tmp.path().join("convert.jsonl"),
            tmp.path().join("ship.jsonl"),
        );
        let mut conv = follower(&["convert", "--follow"], &live, &conv_out);
        let mut ship = follower(&["ship", "--follow", "--stdout"], &live, &ship_out);
        std::thread::sleep(Duration::from_millis(100));
        replay(&src, &live);
        assert_eq!(wait_exit(&mut conv, "convert --follow"), 0, "{name}");
        assert_eq!(wait_exit(&mut ship, "ship --follow"), 0, "{name}");

        let batch = tmp.path().join("batch.jsonl");
        let out = bin()
            .args(["convert", "--quiet"])
            .arg(&live)
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}");
        std::fs::write(&batch, &out.stdout).unwrap();
        let want = sorted_lines(&batch);
        assert!(want.len() > 10, "{name}: {} events", want.len());
        let got = sorted_lines(&conv_out);
        assert!(
            got == want,
            "{name}: convert --follow differs: {}",
            first_difference(&got, &want)
        );
        let got = sorted_lines(&ship_out);
        assert!(
            got == want,
            "{name}: ship --follow differs: {}",
            first_difference(&got, &want)
        );
    }
}

#[test]
fn time_never_steps_back_in_a_file_and_no_command_ends_before_it_starts() {
    for build in corpus_builds() {
        let events = convert_dir(&build, &[]);
        let mut last: HashMap<String, String> = HashMap::new();
        let mut starts: HashMap<(String, u32), String> = HashMap::new();
        for e in &events {
            let t = e.timestamp.to_rfc3339();
            let prev = last.insert(e.source.file.to_string(), t.clone());
            if let Some(p) = prev {
                assert!(
                    p <= t,
                    "{}: {} steps back from {p} to {t}",
                    build.display(),
                    e.source.file
                );
            }
            let key = (e.feature.clone(), e.command_num.unwrap_or(0));
            match e.event_type.as_str() {
                "command_start" => {
                    starts.insert(key, t);
                }
                "command" => {
                    if let Some(s) = starts.get(&key) {
                        assert!(
                            *s <= t,
                            "{}: command {key:?} ends at {t}, before its start {s}",
                            build.display()
                        );
                    }
                }
                _ => {}
            }
        }
        assert!(!starts.is_empty(), "{}: no command_start", build.display());
    }
}

#[test]
fn build_14_without_a_time_zone_learns_it_from_the_json_logger() {
    let build = common::corpus().join("build-14-chicago-dst");
    let events = convert_dir(&build, &[]);
    let mut spans: HashMap<String, (String, String)> = HashMap::new();
    for e in &events {
        let t = e.timestamp.to_rfc3339();
        match e.event_type.as_str() {
            "feature_start" => {
                spans.entry(e.feature.clone()).or_default().0 = t;
            }
            "feature_end" => {
                spans.entry(e.feature.clone()).or_default().1 = t;
            }
            _ => {}
        }
    }
    let outputs: Vec<_> = events
        .iter()
        .filter(|e| e.event_type.as_str() == "output")
        .collect();
    assert!(outputs.len() > 100, "{} output events", outputs.len());
    for e in outputs {
        let (start, end) = &spans[&e.feature];
        let t = e.timestamp.to_rfc3339();
        assert!(
            start <= &t && &t <= end,
            "{} output at {t} outside {start}..{end}",
            e.feature
        );
    }
    // A --timezone the JSON logger contradicts is said, naming both.
    let out = bin()
        .args(["convert", "--quiet", "--timezone", "Asia/Tokyo"])
        .arg(&build)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Asia/Tokyo") && err.contains("JSON logger"),
        "{err}"
    );
}

#[test]
fn an_install_log_alone_and_in_its_directory_gives_the_same_event_ids() {
    for build in ["build-01-success", "build-05-legacy-2025"] {
        let dir = common::corpus().join(build);
        let first = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with("-install.log"))
            .min_by_key(|p| start_time(p))
            .unwrap();
        let alone = convert_dir(&first, &[]);
        let whole = convert_dir(&dir, &[]);
        let ids: std::collections::HashSet<_> = whole.iter().map(|e| e.event_id.clone()).collect();
        assert!(alone.len() > 5);
        for e in &alone {
            assert!(
                ids.contains(&e.event_id),
                "{build}: {:?} {} not in the directory's ids",
                e.event_type,
                e.message
            );
        }
    }
}

#[test]
fn two_builds_one_output_line_apart_never_share_a_correlation_id() {
    let src = common::corpus().join("build-05-legacy-2025");
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for d in [&a, &b] {
        common::copy_dir_without(&src, d, "");
    }
    // One output line of the first feature's first command differs.
    let log = b.join("docker-install.log");
    let text = std::fs::read_to_string(&log).unwrap();
    let rule = "-".repeat(80);
    let at = text.find(&rule).unwrap() + rule.len() + 1;
    std::fs::write(&log, format!("{}x{}", &text[..at], &text[at..])).unwrap();
    let ea = convert_dir(&a, &[]);
    let eb = convert_dir(&b, &[]);
    assert_ne!(ea[0].correlation_id, eb[0].correlation_id);
    let ids: std::collections::HashSet<_> = ea.iter().map(|e| e.event_id.clone()).collect();
    assert!(
        eb.iter().all(|e| !ids.contains(&e.event_id)),
        "an event id is shared"
    );
}

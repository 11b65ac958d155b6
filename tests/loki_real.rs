//! `buildlog ship --loki` against a real Loki (from `$BUILDLOG_PEERS`): corpus builds are
//! pushed, queried back with LogQL over a narrow window, counted, their structured metadata
//! checked, and shipping twice stores once. Skipped without peers unless `CI` is set.

mod common;
mod peers;

use common::convert_dir;

use buildlog::Event;
use std::collections::HashMap;
use std::path::Path;

fn ship(url: &str, path: &Path, dl: &Path) {
    let out = common::bin()
        .args(["ship", "-q", "--loki", url, "--label", "host=peer-test"])
        .arg("--dead-letter")
        .arg(dl)
        .arg(path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The entries of one build, by LogQL over its own time window: event id -> (labels incl.
/// structured metadata, line).
fn query(
    url: &str,
    correlation_id: &str,
    events: &[Event],
) -> Vec<(HashMap<String, String>, String)> {
    let min = events.iter().map(|e| e.timestamp.millis()).min().unwrap();
    let max = events.iter().map(|e| e.timestamp.millis()).max().unwrap();
    let q = format!(r#"{{job="container-build"}} | correlation_id="{correlation_id}""#);
    let full = format!(
        "{url}/loki/api/v1/query_range?query={}&start={}&end={}&limit=100000&direction=forward",
        peers::urlencode(&q),
        (min - 60_000) as i128 * 1_000_000,
        (max + 60_000) as i128 * 1_000_000,
    );
    let (code, body) = peers::http_get(&full).expect("query");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut out = Vec::new();
    for stream in v["data"]["result"].as_array().unwrap() {
        let labels: HashMap<String, String> = stream["stream"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        for value in stream["values"].as_array().unwrap() {
            out.push((labels.clone(), value[1].as_str().unwrap().to_string()));
        }
    }
    out
}

#[test]
fn real_loki_stores_each_event_once_with_its_metadata() {
    let Some(script) = peers::peer_script("real_loki_stores_each_event_once_with_its_metadata")
    else {
        return;
    };
    let loki = peers::start_loki(&script);
    let dir = tempfile::tempdir().unwrap();
    let corpus = common::corpus();
    for build in ["build-01-success", "build-15-control-bytes"] {
        let path = corpus.join(build);
        let events = convert_dir(&path, &[]);
        let cid = events[0].correlation_id.clone();
        for round in 1..=2 {
            ship(&loki.url, &path, &dir.path().join("dl"));
            let got = query(&loki.url, &cid, &events);
            assert_eq!(
                got.len(),
                events.len(),
                "{build} round {round}: every event stored once"
            );
        }
        let got = query(&loki.url, &cid, &events);
        let by_id: HashMap<&str, &Event> =
            events.iter().map(|e| (e.event_id.as_str(), e)).collect();
        let mut seen = std::collections::HashSet::new();
        for (labels, line) in &got {
            let id = labels["event_id"].as_str();
            assert!(seen.insert(id.to_string()), "{build}: {id} twice");
            let want = by_id[id];
            assert_eq!(labels["correlation_id"], *want.correlation_id);
            assert_eq!(labels["event_type"], want.event_type.as_str());
            // Build-level events (`build_start`, `build_end`) have no feature: Loki has no
            // empty label values, so theirs is absent.
            assert_eq!(
                labels.get("feature").map(String::as_str).unwrap_or(""),
                want.feature
            );
            assert_eq!(labels["level"], want.level.as_lower());
            assert_eq!(labels["host"], "peer-test");
            assert_eq!(
                labels.get("trace_id").map(String::as_str),
                want.trace_id.as_deref()
            );
            let back: Event = serde_json::from_str(line).unwrap();
            assert_eq!(back.event_id, want.event_id);
            if !back.truncated {
                assert_eq!(&back, want);
            } else {
                assert!(line.len() <= 262_144, "{build}: cut line accepted by Loki");
            }
        }
        assert_eq!(seen.len(), events.len());
    }
}

/// A build followed while it is written (`ship --follow`) and then shipped again from the
/// finished directory is stored once: the same lines, the same timestamps.
#[test]
fn following_then_reimporting_a_build_stores_each_event_once() {
    let Some(script) =
        peers::peer_script("following_then_reimporting_a_build_stores_each_event_once")
    else {
        return;
    };
    let loki = peers::start_loki(&script);
    let tmp = tempfile::tempdir().unwrap();
    let live = tmp.path().join("container-build");
    let mut follow = common::bin()
        .args([
            "ship",
            "-q",
            "--follow",
            "--loki",
            &loki.url,
            "--label",
            "host=peer-test",
        ])
        .args([
            "--poll-interval",
            "20",
            "--twin-wait",
            "5",
            "--idle-end",
            "3",
        ])
        .arg("--dead-letter")
        .arg(tmp.path().join("dl"))
        .arg(&live)
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    common::replay::replay(&common::corpus().join("build-02-failure"), &live);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let status = loop {
        if let Some(s) = follow.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ship --follow did not end with the build"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success());
    let events = convert_dir(&live, &[]);
    let cid = events[0].correlation_id.clone();
    assert_eq!(
        query(&loki.url, &cid, &events).len(),
        events.len(),
        "after following"
    );
    ship(&loki.url, &live, &tmp.path().join("dl"));
    assert_eq!(
        query(&loki.url, &cid, &events).len(),
        events.len(),
        "after re-importing"
    );
}

//! Secrets that hid from the scrubber (issue 13, item 6): behind colour codes, in `key: value`
//! and JSON form, in a private key whose BuildKit step interleaves with another, and in a
//! feature's name and version. Checked where they leave: `convert`'s events, `raw`, Loki's
//! lines and stream labels (`ship --line-format raw` too), and the metrics labels.

mod common;
mod test_loki;

use common::{bin, parse_events};
use test_loki::TestLoki;

const SECRETS: &[&str] = &[
    "Hunter2xyz",
    "ghp_Abcdefghijklmnopqrstuvwxyz0123456789",
    "pa55word",
    "s3cretval",
    "wJalrXUtnFEMIK7MDENG",
    "FwoGZXIvYXdzEBYaDHq",
    "dXNlcjpzM2NyZXQ=",
    "tok3nvalue",
    "QZ3cFRK8HLPnUa7cq3M1vdYz9P7G7wNXgfJRr4vn1MxZVphZZ2mIgRsCvQ5dwbDa",
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
];

fn no_secret(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what}: {s} went out in clear:\n{text}");
    }
}

/// An install log whose feature name holds a token and whose version a URL with
/// credentials, with secrets behind colour codes and in `key: value` and JSON form.
fn hostile_install_log() -> String {
    "================================================================================
Feature Installation Log: Tool ghp_Abcdefghijklmnopqrstuvwxyz0123456789
Version: https://ci:pa55word@git.example.com/tool.git
Start Time: 2026-01-02 03:04:05
================================================================================

[03:04:06] COMMAND #1: Configure
Executing: configure
--------------------------------------------------------------------------------
\x1b[36mDB_PASSWORD\x1b[0m=Hunter2xyz
password: s3cretval
client_secret: \"s3cretval\"
{\"password\":\"s3cretval\"}
\"SecretAccessKey\": \"wJalrXUtnFEMIK7MDENG\",
\"SessionToken\": \"FwoGZXIvYXdzEBYaDHq\",
\"token\": \"tok3nvalue\"
{\"auths\":{\"registry.example.com\":{\"auth\":\"dXNlcjpzM2NyZXQ=\"}}}
--------------------------------------------------------------------------------
Exit code: 0 (Duration: 1s)
"
    .to_string()
}

#[test]
fn convert_scrubs_names_raw_lines_and_key_value_forms() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tool-install.log");
    std::fs::write(&log, hostile_install_log()).unwrap();
    let out = bin().arg("convert").arg(&log).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    no_secret("convert", &text);
    let events = parse_events(&out.stdout);
    let start = events
        .iter()
        .find(|e| e.event_type == buildlog::EventType::FeatureStart)
        .unwrap();
    assert_eq!(start.feature, "Tool ***GITHUB_TOKEN_REDACTED***");
    assert_eq!(
        start.version.as_deref(),
        Some("https://***CREDENTIALS***@git.example.com/tool.git")
    );
    let coloured = events
        .iter()
        .find(|e| e.message.starts_with("DB_PASSWORD="))
        .unwrap();
    assert_eq!(coloured.message, "DB_PASSWORD=***REDACTED***");
    // The colour codes outside the secret stay.
    assert_eq!(
        coloured.raw.as_deref(),
        Some("\x1b[36mDB_PASSWORD\x1b[0m=***REDACTED***")
    );
    let messages: Vec<&str> = events.iter().map(|e| e.message.as_str()).collect();
    for expected in [
        "password: ***REDACTED***",
        "client_secret: \"***REDACTED***\"",
        "{\"password\":\"***REDACTED***\"}",
        "\"SecretAccessKey\": \"***REDACTED***\",",
        "\"SessionToken\": \"***REDACTED***\",",
        "\"token\": \"***REDACTED***\"",
        "{\"auths\":{\"registry.example.com\":{\"auth\":\"***REDACTED***\"}}}",
    ] {
        assert!(
            messages.contains(&expected),
            "{expected} not in {messages:#?}"
        );
    }

    // The metrics carry the feature as a label.
    let m = bin().arg("metrics").arg(&log).output().unwrap();
    assert_eq!(
        m.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&m.stderr)
    );
    let metrics = String::from_utf8(m.stdout).unwrap();
    assert!(
        metrics.contains("container_build_duration_seconds"),
        "{metrics}"
    );
    no_secret("metrics", &metrics);
}

#[test]
fn loki_lines_and_labels_hold_no_secret_in_json_or_raw_format() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tool-install.log");
    std::fs::write(&log, hostile_install_log()).unwrap();
    for format in ["json", "raw"] {
        let loki = TestLoki::start();
        let out = bin()
            .args(["ship", "-q", "--loki", &loki.url, "--line-format", format])
            .arg("--dead-letter")
            .arg(dir.path().join("dl.jsonl"))
            .arg(&log)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stored = loki.entries();
        assert!(stored.len() > 10, "{}", stored.len());
        let mut all = String::new();
        for s in &stored {
            all.push_str(&format!(
                "{:?} {} {:?}\n",
                s.labels, s.line, s.structured_metadata
            ));
        }
        no_secret(&format!("loki --line-format {format}"), &all);
        assert!(
            stored
                .iter()
                .any(|s| s.labels.get("feature").map(String::as_str)
                    == Some("Tool ***GITHUB_TOKEN_REDACTED***")),
            "{all}"
        );
        if format == "raw" {
            assert!(
                stored.iter().any(|s| s
                    .line
                    .starts_with("\x1b[36mDB_PASSWORD\x1b[0m=***REDACTED***")),
                "{all}"
            );
        }
    }
}

#[test]
fn a_private_key_in_a_buildkit_step_interleaved_with_another_is_redacted() {
    let log = "#7 [3/4] RUN setup
#7 0.101 -----BEGIN RSA PRIVATE KEY-----
#7 0.102 MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun
#8 [4/4] RUN other
#8 0.200 hello world
#7 0.103 QZ3cFRK8HLPnUa7cq3M1vdYz9P7G7wNXgfJRr4vn1MxZVphZZ2mIgRsCvQ5dwbDa
#8 0.201 still here
#7 0.104 -----END RSA PRIVATE KEY-----
#7 DONE 0.2s
#8 DONE 0.3s
";
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("build.log");
    std::fs::write(&p, log).unwrap();
    let out = bin().arg("convert").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    no_secret("buildkit", &text);
    let messages: Vec<String> = parse_events(&out.stdout)
        .into_iter()
        .map(|e| e.message)
        .collect();
    // The other step's lines are kept as they are.
    assert!(
        messages.contains(&"hello world".to_string()),
        "{messages:#?}"
    );
    assert!(
        messages.contains(&"still here".to_string()),
        "{messages:#?}"
    );
    assert_eq!(
        messages
            .iter()
            .filter(|m| *m == "***PRIVATE_KEY_REDACTED***")
            .count(),
        2,
        "{messages:#?}"
    );
}

//! Every line reaches an event: real corpus logs with lines inserted anywhere (inside the
//! installation summary block too), and `json/*.jsonl` files with JSON lines that are not the
//! logger's, converted by the `buildlog convert` binary. Each inserted line's text, or its
//! scrubbed form, must be in the output.

mod common;

use buildlog::enrich::scrub::Scrubber;
use common::{bin, corpus};
use proptest::prelude::*;
use serde_json::Value;
use std::path::Path;

/// Every string of every event of `convert`'s output, decoded from JSON.
fn output_strings(stdout: &[u8]) -> String {
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(m) => m.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = String::new();
    for line in stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_slice(line).expect("convert writes JSON lines");
        walk(&v, &mut out);
    }
    out
}

fn convert(path: &Path) -> (i32, Vec<u8>, String) {
    let o = bin().arg("convert").arg(path).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        o.stdout,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A line someone else wrote into the log: words, `key=value`, `key: value`, a secret or two.
/// It starts with `zq` so that it cannot be one of the format's own lines.
fn stray_line() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        "[a-z]{1,10}",
        "[A-Z][a-z]{2,8}",
        "[0-9]{1,5}",
        Just("DB_PASSWORD=Hunter2xyz".to_string()),
        Just("password: s3cret-value".to_string()),
        Just("token=ghp_abcdefghijklmnopqrstuvwxyz0123".to_string()),
        Just("https://ci:pa55word@git.example.com/x.git".to_string()),
        Just("error:".to_string()),
        Just("WARNING".to_string()),
    ];
    ("[0-9]{1,6}", proptest::collection::vec(word, 0..6))
        .prop_map(|(id, words)| format!("zq{id} {}", words.join(" ")))
}

/// A JSON line that is not the logger's: another program's object, an array, a secret.
fn foreign_json_line() -> impl Strategy<Value = String> {
    let key = proptest::sample::select(vec![
        "level",
        "msg",
        "password",
        "token",
        "client_secret",
        "data",
        "n",
        "time",
        "SecretAccessKey",
    ]);
    let value = prop_oneof![
        "[a-zA-Z0-9 ]{0,12}".prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
    ];
    prop_oneof![
        3 => proptest::collection::btree_map(key, value.clone(), 1..5).prop_map(|m| {
            let o: serde_json::Map<String, Value> =
                m.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            Value::Object(o).to_string()
        }),
        1 => proptest::collection::vec(value, 0..4).prop_map(|a| Value::Array(a).to_string()),
    ]
}

const INSTALL_LOGS: &[&str] = &[
    "build-01-success/python-install.log",
    "build-02-failure/java-development-install.log",
    "build-07-config-summary-2025-11/nodejs-install.log",
    "build-11-masked-abort-2026-03/kubernetes-tools-install.log",
    "build-15-control-bytes/cloudflare-tools-install.log",
];

/// `lines` with each of `inserts` placed before the line at its position (mod the length + 1).
fn insert_lines(mut lines: Vec<Vec<u8>>, inserts: &[(usize, String)]) -> Vec<u8> {
    for (pos, l) in inserts {
        let at = pos % (lines.len() + 1);
        lines.insert(at, l.clone().into_bytes());
    }
    lines.join(&b'\n')
}

fn assert_all_found(stdout: &[u8], inserted: &[String]) -> Result<(), TestCaseError> {
    let hay = output_strings(stdout);
    let s = Scrubber::global();
    for l in inserted {
        let scrubbed = s.scrub(l);
        // A line read as a list item (`Next Steps:`) keeps its text without surrounding blanks.
        let found = |needle: &str| {
            hay.contains(needle) || hay.split('\n').any(|s| !s.is_empty() && s == needle.trim())
        };
        prop_assert!(
            found(l) || found(&scrubbed),
            "line {:?} (scrubbed {:?}) is in no event",
            l,
            scrubbed
        );
        // And a secret it held never went out in clear.
        for secret in [
            "Hunter2xyz",
            "s3cret-value",
            "ghp_abcdefghijklmnopqrstuvwxyz0123",
            "pa55word",
        ] {
            prop_assert!(!hay.contains(secret), "{secret} leaked");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn lines_inserted_into_install_logs_reach_an_event(
        file in proptest::sample::select(INSTALL_LOGS),
        inserts in proptest::collection::vec((any::<usize>(), stray_line()), 1..6),
        // Half the cases put one line inside the installation summary block.
        in_summary in any::<bool>(),
        summary_pos in 0usize..16,
    ) {
        let text = std::fs::read(corpus().join(file)).unwrap();
        let lines: Vec<Vec<u8>> = text.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
        let mut inserts = inserts;
        if in_summary {
            if let Some(start) = lines.iter().rposition(|l| l.starts_with(b"Installation Summary: ")) {
                let end = lines.len() - 1;
                let at = start + 1 + summary_pos % (end - start);
                inserts.push((at, format!("zq{summary_pos} in the summary block password: s3cret-value")));
            }
        }
        // Insert from the back so that the positions of earlier ones still hold.
        inserts.sort_by_key(|a| std::cmp::Reverse(a.0 % (lines.len() + 1)));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(Path::new(file).file_name().unwrap());
        std::fs::write(&path, insert_lines(lines, &inserts)).unwrap();
        let (code, stdout, stderr) = convert(&path);
        prop_assert_eq!(code, 0, "{}", stderr);
        let inserted: Vec<String> = inserts.into_iter().map(|(_, l)| l).collect();
        assert_all_found(&stdout, &inserted)?;
    }

    #[test]
    fn foreign_json_lines_reach_an_event_in_a_build_and_on_stdin(
        file in proptest::sample::select(vec!["python.jsonl", "nodejs.jsonl", "build-summary.jsonl"]),
        inserts in proptest::collection::vec((any::<usize>(), foreign_json_line()), 1..5),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let build = tmp.path().join("build-01-success");
        copy_tree(&corpus().join("build-01-success"), &build);
        let path = build.join("json").join(file);
        let lines: Vec<Vec<u8>> = std::fs::read(&path)
            .unwrap()
            .split(|b| *b == b'\n')
            .map(<[u8]>::to_vec)
            .collect();
        let mut inserts = inserts;
        inserts.sort_by_key(|a| std::cmp::Reverse(a.0 % (lines.len() + 1)));
        let joined = insert_lines(lines, &inserts);
        std::fs::write(&path, &joined).unwrap();
        let inserted: Vec<String> = inserts.into_iter().map(|(_, l)| l).collect();
        let (code, stdout, stderr) = convert(&build);
        prop_assert_eq!(code, 0, "{}", stderr);
        assert_all_found(&stdout, &inserted)?;
        // The same file on stdin, as --format json.
        let o = bin()
            .args(["convert", "--format", "json", "-"])
            .stdin(std::fs::File::open(&path).unwrap())
            .output()
            .unwrap();
        prop_assert_eq!(o.status.code(), Some(0));
        assert_all_found(&o.stdout, &inserted)?;
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_tree(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn the_issues_examples() {
    // 5 lines, of which 3 are JSON but not the logger's: 5 events, each line in one.
    let input = "{\"level\":\"info\",\"msg\":\"x\"}\n[1,2]\n{\"password\":\"p\"}\nplain\n{\"event_type\":\"warning\",\"message\":\"w\",\"metadata\":{}}\n";
    let o = bin()
        .args(["convert", "--format", "json", "-"])
        .write_stdin_bytes(input.as_bytes());
    let events = common::parse_events(&o.stdout);
    let messages: Vec<&str> = events.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "{\"level\":\"info\",\"msg\":\"x\"}",
            "[1,2]",
            "{\"password\":\"***REDACTED***\"}",
            "plain",
            "w"
        ]
    );
}

trait WriteStdin {
    fn write_stdin_bytes(&mut self, input: &[u8]) -> std::process::Output;
}

impl WriteStdin for std::process::Command {
    fn write_stdin_bytes(&mut self, input: &[u8]) -> std::process::Output {
        use std::io::Write;
        let mut child = self
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }
}

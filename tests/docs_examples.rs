//! Every shell example of `README.md` and `docs/` runs: the fenced `sh` blocks are extracted and
//! run with `bash -euo pipefail` in a scratch directory that holds the repository's `tests/`,
//! `pipelines/`, `loki/` and `elasticsearch/`, the built `buildlog` first on `PATH`; each must
//! exit 0.
//!
//! - A block whose lines start with `$ ` is a transcript: each such line runs, and its stdout
//!   must be the lines shown after it (when any are shown).
//! - The servers an example talks to are real ones where this machine has them: Loki
//!   (`127.0.0.1:3100`), Tempo (OTLP on `127.0.0.1:4318` and `:4317`), VictoriaLogs
//!   (`127.0.0.1:9428`) and Fluent Bit from `$BUILDLOG_PEERS`; `127.0.0.1:9200` is the test
//!   Elasticsearch of `tests/test_es` (no real Elasticsearch here). The example's address is
//!   replaced by the server's; a block needing a server of the peers is skipped with a note
//!   without them (an error with `CI` set).
//! - The docs' stand-in paths for the user's own logs are given real logs: a copy of
//!   `tests/fixtures/corpus/build-01-success` at `/var/log/container-build`'s place, the corpus
//!   builds at `/archive/builds/`'s.
//! - `<!-- run: background -->` right before a block: it runs until stopped (a server, a
//!   follower); it must still be running after a few seconds, then it is stopped by its PID.
//! - `<!-- no-run: REASON -->` right before a block: it cannot run here, for that reason (the
//!   reason is required).

mod common;
mod peers;
mod test_es;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[derive(Debug, Clone, PartialEq)]
enum Mode {
    Run,
    Background,
    NoRun(String),
}

#[derive(Debug, Clone)]
struct Block {
    file: String,
    line: usize,
    mode: Mode,
    text: String,
}

/// The markdown files whose examples must run.
fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![repo().join("README.md")];
    for dir in ["docs", "docs/runbooks"] {
        let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        v.sort();
        files.extend(v);
    }
    files
}

/// The fenced `sh` blocks of a markdown text with the marker comment right before each.
fn sh_blocks(file: &str, text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_end() != "```sh" {
            i += 1;
            continue;
        }
        let start = i;
        let marker = lines[..start]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim())
            .unwrap_or("");
        let mode = match marker
            .strip_prefix("<!--")
            .and_then(|m| m.strip_suffix("-->"))
            .map(str::trim)
        {
            Some("run: background") => Mode::Background,
            Some(m) if m.starts_with("no-run:") => {
                let reason = m["no-run:".len()..].trim().to_string();
                assert!(
                    !reason.is_empty(),
                    "{file}:{}: no-run without a reason",
                    start + 1
                );
                Mode::NoRun(reason)
            }
            Some(m) => panic!("{file}:{}: unknown marker {m:?}", start + 1),
            None => Mode::Run,
        };
        i += 1;
        let mut body = Vec::new();
        while i < lines.len() && lines[i].trim_end() != "```" {
            body.push(lines[i]);
            i += 1;
        }
        assert!(i < lines.len(), "{file}:{}: unclosed block", start + 1);
        out.push(Block {
            file: file.to_string(),
            line: start + 1,
            mode,
            text: body.join("\n") + "\n",
        });
        i += 1;
    }
    out
}

fn all_blocks() -> Vec<Block> {
    let mut out = Vec::new();
    for f in doc_files() {
        let name = f.strip_prefix(repo()).unwrap().display().to_string();
        out.extend(sh_blocks(&name, &std::fs::read_to_string(&f).unwrap()));
    }
    out
}

/// The servers examples may talk to, started when first needed.
#[derive(Default)]
struct Servers {
    loki: Option<peers::Server>,
    tempo: Option<peers::Server>,
    victoria: Option<peers::Server>,
    es: Option<test_es::TestEs>,
}

/// The example's address, the server's, for each server a block names.
fn addresses(
    block: &str,
    servers: &mut Servers,
    script: Option<&PathBuf>,
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let need = |what: &str| -> Result<&PathBuf, String> {
        script.ok_or_else(|| format!("needs {what} from $BUILDLOG_PEERS"))
    };
    if block.contains("127.0.0.1:3100") {
        let s = need("Loki")?;
        let loki = servers.loki.get_or_insert_with(|| peers::start_loki(s));
        out.push(("127.0.0.1:3100".into(), strip(&loki.url)));
    }
    if ["127.0.0.1:4318", "127.0.0.1:4317", "127.0.0.1:3200"]
        .iter()
        .any(|a| block.contains(a))
    {
        let s = need("Tempo")?;
        let tempo = servers.tempo.get_or_insert_with(|| start_tempo(s));
        let port: u16 = strip(&tempo.url)
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        out.push(("127.0.0.1:3200".into(), format!("127.0.0.1:{port}")));
        out.push(("127.0.0.1:4318".into(), format!("127.0.0.1:{}", port + 2)));
        out.push(("127.0.0.1:4317".into(), format!("127.0.0.1:{}", port + 3)));
    }
    if block.contains("127.0.0.1:9428") {
        let s = need("VictoriaLogs")?;
        let v = servers.victoria.get_or_insert_with(|| start_victoria(s));
        out.push(("127.0.0.1:9428".into(), strip(&v.url)));
    }
    // Addresses the examples listen on: a free port of the loopback interface instead.
    for listen in [
        "0.0.0.0:9090",
        "0.0.0.0:9091",
        "localhost:9090",
        "127.0.0.1:9465",
    ] {
        if block.contains(listen) {
            let port = peers::free_port();
            out.push((listen.to_string(), format!("127.0.0.1:{port}")));
            if listen == "0.0.0.0:9090" {
                out.push(("localhost:9090".into(), format!("127.0.0.1:{port}")));
            }
        }
    }
    if block.contains("127.0.0.1:9200") {
        let es = servers.es.get_or_insert_with(test_es::TestEs::start);
        out.push(("127.0.0.1:9200".into(), strip(&es.url())));
    }
    Ok(out)
}

fn strip(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

/// Waits until `url` answers 200 (with `body` when given).
fn wait_ready(url: &str, body: Option<&str>, what: &str) {
    let start = Instant::now();
    loop {
        if let Some((200, b)) = peers::http_get(url) {
            if body.is_none_or(|w| b.trim() == w) {
                return;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{what} not ready"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn start_tempo(script: &PathBuf) -> peers::Server {
    let exe = peers::peer(script, &["path", "tempo"]);
    let dir = tempfile::tempdir().unwrap();
    // Tempo's HTTP port; OTLP/HTTP on +2, OTLP/gRPC on +3 (`peer tempo-config`): find 4 free.
    let port = loop {
        let p = peers::free_port();
        if p < 65530 && (1..4).all(|i| std::net::TcpListener::bind(("127.0.0.1", p + i)).is_ok()) {
            break p;
        }
    };
    let cfg = peers::peer(
        script,
        &[
            "tempo-config",
            dir.path().to_str().unwrap(),
            &port.to_string(),
        ],
    );
    std::fs::write(dir.path().join("tempo.yaml"), cfg).unwrap();
    let log = std::fs::File::create(dir.path().join("tempo.log")).unwrap();
    let child = Command::new(exe)
        .arg(format!(
            "-config.file={}",
            dir.path().join("tempo.yaml").display()
        ))
        .current_dir(dir.path())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let s = peers::Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    wait_ready(&format!("{}/ready", s.url), None, "Tempo");
    s
}

fn start_victoria(script: &PathBuf) -> peers::Server {
    let exe = peers::peer(script, &["path", "victoria-logs"]);
    let dir = tempfile::tempdir().unwrap();
    let port = peers::free_port();
    let log = std::fs::File::create(dir.path().join("vl.log")).unwrap();
    let child = Command::new(exe)
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg(format!(
            "-storageDataPath={}",
            dir.path().join("data").display()
        ))
        .arg("-retentionPeriod=100y")
        .current_dir(dir.path())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let s = peers::Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    wait_ready(&format!("{}/health", s.url), None, "VictoriaLogs");
    s
}

/// The scratch directory the examples run in, and the `PATH` they get.
struct Scratch {
    dir: tempfile::TempDir,
    path_env: String,
}

fn scratch(script: Option<&PathBuf>) -> Scratch {
    let dir = tempfile::tempdir().unwrap();
    for d in ["tests", "pipelines", "loki", "elasticsearch", "docs"] {
        std::os::unix::fs::symlink(repo().join(d), dir.path().join(d)).unwrap();
    }
    let bin = dir.path().join(".bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_buildlog"), bin.join("buildlog")).unwrap();
    if let Some(s) = script {
        for (tool, name) in [("fluent-bit", "fluent-bit"), ("loki", "loki")] {
            let exe = peers::peer(s, &["path", tool]);
            std::os::unix::fs::symlink(exe, bin.join(name)).unwrap();
        }
    }
    let logs = dir.path().join("user-logs/container-build");
    common::copy_dir_without(&common::corpus().join("build-01-success"), &logs, "");
    let archive = dir.path().join("user-logs/archive-builds");
    for b in [
        "build-01-success",
        "build-02-failure",
        "build-05-legacy-2025",
    ] {
        common::copy_dir_without(&common::corpus().join(b), &archive.join(b), "");
    }
    let path_env = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Scratch { dir, path_env }
}

/// The block's text as it runs here: server addresses and stand-in paths replaced.
fn localize(text: &str, addrs: &[(String, String)], scratch: &Scratch) -> String {
    let root = scratch.dir.path().display().to_string();
    let mut t = text
        .replace(
            "/var/log/container-build",
            &format!("{root}/user-logs/container-build"),
        )
        .replace(
            "/archive/builds/",
            &format!("{root}/user-logs/archive-builds/"),
        )
        .replace("/var/lib/buildlog", &format!("{root}/user-state"));
    // Two steps, through placeholders: replaced one after the other, a new address could hold
    // an old one (Tempo on port 43175 makes `127.0.0.1:4318` into `127.0.0.1:43177`, which the
    // rule for `127.0.0.1:4317` would then change again).
    let placeholder = |i: usize| format!("\u{0}address {i}\u{0}");
    for (i, (from, _)) in addrs.iter().enumerate() {
        t = t.replace(from.as_str(), &placeholder(i));
    }
    for (i, (_, to)) in addrs.iter().enumerate() {
        t = t.replace(&placeholder(i), to);
    }
    t
}

fn bash(script: &str, scratch: &Scratch) -> Command {
    let mut c = Command::new("bash");
    c.args(["-euo", "pipefail", "-c", script])
        .current_dir(scratch.dir.path())
        .env("PATH", &scratch.path_env)
        .env("HOME", scratch.dir.path())
        .env_remove("BUILD_LOG_DIR")
        .env_remove("BUILD_CORRELATION_ID")
        .stdin(Stdio::null());
    c
}

/// Runs one block; `Err` says what went wrong.
fn run_block(block: &Block, text: &str, scratch: &Scratch) -> Result<(), String> {
    if block.mode == Mode::Background {
        let log = scratch.dir.path().join("background.log");
        let mut child = bash(text, scratch)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .process_group(0)
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs(4));
        let status = child.try_wait().unwrap();
        // Stop the whole group (bash and what it started) by the child's PID.
        kill_group(child.id());
        let _ = child.wait();
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        return match status {
            None => Ok(()),
            Some(s) if s.success() => Ok(()),
            Some(s) => Err(format!("exited with {s} before it was stopped:\n{said}")),
        };
    }
    let lines: Vec<&str> = text.lines().collect();
    if lines.iter().any(|l| l.starts_with("$ ")) {
        // A transcript: each command's stdout must be what is shown after it.
        let mut i = 0;
        while i < lines.len() {
            let Some(cmd) = lines[i].strip_prefix("$ ") else {
                return Err(format!(
                    "transcript line without a command before it: {}",
                    lines[i]
                ));
            };
            let cmd = cmd.split("   #").next().unwrap();
            let mut shown = Vec::new();
            i += 1;
            while i < lines.len() && !lines[i].starts_with("$ ") {
                shown.push(lines[i]);
                i += 1;
            }
            let out = run_with_deadline(bash(cmd, scratch), Duration::from_secs(120))?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            if !out.status.success() {
                return Err(format!(
                    "`{cmd}` exited with {}:\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            let got: Vec<&str> = stdout.lines().collect();
            if !shown.is_empty() && got != shown {
                return Err(format!(
                    "`{cmd}` printed\n{}\nwhere the docs show\n{}",
                    got.join("\n"),
                    shown.join("\n")
                ));
            }
        }
        return Ok(());
    }
    let out = run_with_deadline(bash(text, scratch), Duration::from_secs(120))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "exited with {}:\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .rev()
                .take(10)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n"),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Runs a command to its end, or stops it (and what it started) after `limit`.
fn run_with_deadline(mut cmd: Command, limit: Duration) -> Result<std::process::Output, String> {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => Ok(out.unwrap()),
        Err(_) => {
            kill_group(pid);
            Err(format!(
                "still running after {limit:?}: a server or follower? mark it `<!-- run: background -->`"
            ))
        }
    }
}

/// SIGTERM to a process group, by the leader's PID (no broad names).
fn kill_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{pid}")])
        .status();
    std::thread::sleep(Duration::from_millis(300));
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
}

use std::os::unix::process::CommandExt;

/// Tempo's ports are `port`, `port + 2` and `port + 3`: with port 43175 the OTLP/HTTP address
/// (43177) begins with the OTLP/gRPC one the docs use (4317), which once turned
/// `127.0.0.1:4318` into `127.0.0.1:431787`.
#[test]
fn addresses_are_replaced_once_whatever_the_ports() {
    let scratch = scratch(None);
    let addrs = [
        ("127.0.0.1:3200".to_string(), "127.0.0.1:43175".to_string()),
        ("127.0.0.1:4318".to_string(), "127.0.0.1:43177".to_string()),
        ("127.0.0.1:4317".to_string(), "127.0.0.1:43178".to_string()),
    ];
    let text = "ship --otlp http://127.0.0.1:4318 && ship --otlp http://127.0.0.1:4317 && curl 127.0.0.1:3200";
    assert_eq!(
        localize(text, &addrs, &scratch),
        "ship --otlp http://127.0.0.1:43177 && ship --otlp http://127.0.0.1:43178 && curl 127.0.0.1:43175"
    );
}

#[test]
fn markers_are_read() {
    let text = "a\n```sh\necho 1\n```\n<!-- no-run: needs docker -->\n```sh\ndocker ps\n```\n\n<!-- run: background -->\n\n```sh\nbuildlog serve\n```\n";
    let b = sh_blocks("x.md", text);
    assert_eq!(b.len(), 3);
    assert_eq!(b[0].mode, Mode::Run);
    assert_eq!(b[0].text, "echo 1\n");
    assert_eq!(b[1].mode, Mode::NoRun("needs docker".into()));
    assert_eq!(b[2].mode, Mode::Background);
    let r = std::panic::catch_unwind(|| sh_blocks("x.md", "<!-- no-run: -->\n```sh\nx\n```\n"));
    assert!(r.is_err(), "a no-run without a reason is refused");
}

/// A program of the peers that the block runs (`... | fluent-bit -c ...`): on the examples'
/// `PATH` only when `$BUILDLOG_PEERS` gives it.
fn peer_program(text: &str) -> Option<&'static str> {
    ["fluent-bit", "loki"].into_iter().find(|tool| {
        // The command's first word after its variable assignments (`DIR=x fluent-bit ...`).
        text.split(['|', '\n', ';', '&']).any(|command| {
            command.split_whitespace().find(|word| !word.contains('=')) == Some(tool)
        })
    })
}

#[test]
fn peer_programs_are_recognised() {
    assert_eq!(
        peer_program("buildlog convert x | fluent-bit -c a.conf\n"),
        Some("fluent-bit")
    );
    assert_eq!(peer_program("loki -config.file=x &\n"), Some("loki"));
    assert_eq!(
        peer_program("DIR=/var/log fluent-bit -c exec.conf\n"),
        Some("fluent-bit")
    );
    assert_eq!(
        peer_program("buildlog ship --loki http://loki:3100 x\n"),
        None
    );
    assert_eq!(peer_program("cat pipelines/fluent-bit/stdin.conf\n"), None);
}

#[test]
fn every_shell_example_of_the_docs_runs() {
    let blocks = all_blocks();
    assert!(blocks.len() >= 30, "{} blocks", blocks.len());
    let script = peers::peer_script("every_shell_example_of_the_docs_runs");
    let scratch = scratch(script.as_ref());
    let mut servers = Servers::default();
    let mut failed = Vec::new();
    let mut ran = 0;
    let mut skipped = BTreeMap::new();
    for b in &blocks {
        let at = format!("{}:{}", b.file, b.line);
        if let Mode::NoRun(reason) = &b.mode {
            skipped.insert(at, reason.clone());
            continue;
        }
        if let (None, Some(tool)) = (&script, peer_program(&b.text)) {
            eprintln!("SKIPPED {at}: runs {tool}, which only $BUILDLOG_PEERS provides");
            continue;
        }
        eprintln!("running {at}");
        let addrs = match addresses(&b.text, &mut servers, script.as_ref()) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("SKIPPED {at}: {e}");
                continue;
            }
        };
        let text = localize(&b.text, &addrs, &scratch);
        if let Err(e) = run_block(b, &text, &scratch) {
            failed.push(format!("{at}:\n{}\n--> {e}", b.text.trim_end()));
        }
        ran += 1;
    }
    for (at, reason) in &skipped {
        eprintln!("not run, as marked: {at}: {reason}");
    }
    assert!(
        failed.is_empty(),
        "{} of {ran} examples failed:\n\n{}",
        failed.len(),
        failed.join("\n\n")
    );
    assert!(ran >= 15, "only {ran} examples ran");
}

/// The event shown in the README is the one `buildlog convert` gives: every field it shows,
/// apart from values elided with `…`, has the real value.
#[test]
fn the_readme_event_is_a_real_one() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let shown = readme
        .split("```json\n")
        .nth(1)
        .and_then(|r| r.split("\n```").next())
        .expect("README's json block");
    let shown: serde_json::Value = serde_json::from_str(shown).unwrap();
    let events = common::convert_dir(&common::corpus().join("build-01-success"), &[]);
    let real = events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .find(|e| {
            e["event_type"] == shown["event_type"]
                && e["feature"] == shown["feature"]
                && e["command_num"] == shown["command_num"]
        })
        .expect("the README's event in build-01-success");
    fn same(shown: &serde_json::Value, real: &serde_json::Value, at: &str) {
        match shown {
            serde_json::Value::String(s) if s.contains('…') => {
                assert!(!real.is_null(), "{at}: no such field");
            }
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    same(v, &real[k], &format!("{at}.{k}"));
                }
            }
            v => assert_eq!(v, real, "{at}: the README shows {v}, convert gives {real}"),
        }
    }
    same(&shown, &real, "event");
}

/// `plugins/README.md` describes each plugin that is there, as there (it called the Fluent Bit
/// plugin "planned" long after it shipped).
#[test]
fn the_plugins_readme_describes_the_plugins_that_exist() {
    let readme = std::fs::read_to_string(repo().join("plugins/README.md")).unwrap();
    let mut n = 0;
    for e in std::fs::read_dir(repo().join("plugins")).unwrap() {
        let p = e.unwrap().path();
        if p.join("Cargo.toml").is_file() {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            assert!(
                readme.contains(&format!("`{name}/`")),
                "{name} not described"
            );
            n += 1;
        }
    }
    assert!(n >= 1);
    assert!(!readme.contains("planned"), "{readme}");
}

/// The `buildlog` command lines quoted in the comments of `pipelines/` (``# `buildlog serve
/// --listen 0.0.0.0:9091 /var/log/container-build` ``, `#   buildlog convert --follow ...`)
/// are accepted by the command line: each runs with `--help` appended, which clap reaches only
/// when every argument before it is valid (an unknown flag or an extra argument exits 2).
#[test]
fn command_lines_in_pipeline_comments_parse() {
    let mut files = Vec::new();
    let mut stack = vec![repo().join("pipelines")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut commands = Vec::new();
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        let name = f.strip_prefix(repo()).unwrap().display().to_string();
        for line in text.lines() {
            let t = line.trim_start();
            let Some(comment) = t.strip_prefix('#').or_else(|| t.strip_prefix("//")) else {
                continue;
            };
            let mut found: Vec<&str> = line
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|s| s.starts_with("buildlog "))
                // A command line, not a mention of a flag (`buildlog ship --loki`): it has a
                // value or a path after the subcommand.
                .filter(|s| s.split_whitespace().skip(2).any(|a| !a.starts_with('-')))
                .collect();
            if let Some(c) = comment.strip_prefix("   ").map(str::trim_start) {
                if c.starts_with("buildlog ") {
                    found.push(c);
                }
            }
            for c in found {
                // The buildlog part of a pipeline; optional parts in brackets taken as given.
                let c = c.split(['|', '&', '>']).next().unwrap();
                let c = c.trim_end_matches('\\').replace(['[', ']'], "");
                let args: Vec<String> = c
                    .split_whitespace()
                    .skip(1)
                    .map(|a| a.replace("${BUILD_LOG_DIR}", "/var/log/container-build"))
                    .collect();
                commands.push((name.clone(), args));
            }
        }
    }
    assert!(commands.len() >= 8, "{commands:?}");
    assert!(
        commands
            .iter()
            .any(|(f, a)| f.ends_with("compose/prometheus.yml") && a[0] == "serve"),
        "{commands:?}"
    );
    for (file, args) in &commands {
        let out = common::bin().args(args).arg("--help").output().unwrap();
        assert!(
            out.status.success(),
            "{file}: buildlog {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

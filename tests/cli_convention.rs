//! The command line a user touches: one convention for durations, retries, compression and
//! environment variables, the configuration file, completions and the man page, and the
//! small things (colour, closed pipes, help examples, tar archives, a terminal on stdin).

use assert_cmd::Command;
use clap::CommandFactory;
use predicates::prelude::*;
use std::path::{Path, PathBuf};

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/corpus")
        .join(name)
}

fn bin() -> Command {
    let mut c = Command::cargo_bin("buildlog").unwrap();
    // The environment of the test run must not leak into what is tested.
    for (k, _) in std::env::vars() {
        if k.starts_with("BUILDLOG_") || k.starts_with("LOKI_") || k.starts_with("OTEL_") {
            c.env_remove(k);
        }
    }
    c.env_remove("BUILD_LOG_DIR").env_remove("NO_COLOR");
    c
}

/// A port nothing listens on.
fn refused_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let p = l.local_addr().unwrap().port();
    drop(l);
    p
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// ---- help examples ----

/// The lines of the `Examples:` section of a help text.
fn examples(help: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for l in help.lines() {
        if l.trim_end() == "Examples:" {
            inside = true;
            continue;
        }
        if inside {
            if l.trim().is_empty() {
                break;
            }
            out.push(l.to_string());
        }
    }
    out
}

#[test]
fn every_help_example_is_one_pasteable_line() {
    let root = buildlog::cli::Cli::command();
    let mut pages = vec![("buildlog".to_string(), root.clone())];
    for sub in root.get_subcommands() {
        pages.push((sub.get_name().to_string(), sub.clone()));
        for s2 in sub.get_subcommands() {
            pages.push((format!("{} {}", sub.get_name(), s2.get_name()), s2.clone()));
        }
    }
    let mut checked = 0;
    for (name, cmd) in pages {
        // An 80-column terminal: an example longer than that would be wrapped by clap.
        let help = cmd
            .term_width(80)
            .max_term_width(80)
            .render_long_help()
            .to_string();
        for line in examples(&help) {
            assert!(
                line.starts_with("  ") && !line.starts_with("   "),
                "{name}: example is a continuation or was wrapped: {line:?}"
            );
            let cmdline = line.trim();
            assert!(
                !cmdline.ends_with('\\') && !cmdline.starts_with("&&") && !cmdline.starts_with('|'),
                "{name}: {line:?}"
            );
            assert!(
                cmdline.contains("buildlog") || cmdline.starts_with("promtool"),
                "{name}: {line:?}"
            );
            let ok = std::process::Command::new("bash")
                .args(["-n", "-c", cmdline])
                .status()
                .unwrap();
            assert!(ok.success(), "{name}: not valid shell: {line:?}");
            checked += 1;
        }
        assert!(
            !help.contains(".tar.gz"),
            "{name}: help still suggests tar archives"
        );
    }
    assert!(checked >= 20, "only {checked} examples found");
}

// ---- defects of the top list ----

#[test]
fn a_closed_stdout_is_no_error_for_ship() {
    let exe = assert_cmd::cargo::cargo_bin("buildlog");
    let out = std::process::Command::new("bash")
        .args([
            "-c",
            "set -o pipefail; \"$0\" ship --stdout \"$1\" | head -1",
            exe.to_str().unwrap(),
            corpus("build-13-large").to_str().unwrap(),
        ])
        .env_remove("BUILDLOG_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("{\"timestamp\":"), "{stdout}");
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(
        !stderr_of(&out).contains("Broken pipe"),
        "{}",
        stderr_of(&out)
    );
}

/// Runs `ship` with a warning on stderr (`--insecure-skip-verify`) against a refused port.
fn warning_run(extra_env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let port = refused_port();
    let dl = tempfile::tempdir().unwrap();
    let mut c = bin();
    c.args([
        "ship",
        "--loki",
        &format!("http://127.0.0.1:{port}"),
        "--loki-retry-max",
        "0",
        "--insecure-skip-verify",
        "--dead-letter",
        dl.path().join("dl.jsonl").to_str().unwrap(),
    ])
    .args(args)
    .arg(corpus("build-01-success/master-summary.log"));
    for (k, v) in extra_env {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn no_colour_codes_in_stderr_written_to_a_pipe() {
    let out = warning_run(&[], &[]);
    let err = stderr_of(&out);
    assert!(err.contains("TLS certificate verification is off"), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "ANSI codes in piped stderr: {err:?}"
    );
}

/// `script` gives the command a terminal: colour there, none with NO_COLOR.
#[test]
fn colour_on_a_terminal_only_without_no_color() {
    let exe = assert_cmd::cargo::cargo_bin("buildlog");
    let port = refused_port();
    let dl = tempfile::tempdir().unwrap();
    let cmdline = format!(
        "{} ship --loki http://127.0.0.1:{port} --loki-retry-max 0 --insecure-skip-verify --dead-letter {} {}",
        exe.display(),
        dl.path().join("dl.jsonl").display(),
        corpus("build-01-success/master-summary.log").display()
    );
    let run = |no_color: Option<&str>| {
        let mut c = std::process::Command::new("script");
        c.args(["-qec", &cmdline, "/dev/null"])
            .env_remove("NO_COLOR")
            .env_remove("BUILDLOG_CONFIG");
        if let Some(v) = no_color {
            c.env("NO_COLOR", v);
        }
        String::from_utf8_lossy(&c.output().unwrap().stdout).into_owned()
    };
    let tty = run(None);
    assert!(tty.contains("TLS certificate verification is off"), "{tty}");
    assert!(tty.contains("\u{1b}["), "no colour on a terminal: {tty:?}");
    let plain = run(Some("1"));
    assert!(
        plain.contains("TLS certificate verification is off"),
        "{plain}"
    );
    assert!(
        !plain.contains('\u{1b}'),
        "colour despite NO_COLOR: {plain:?}"
    );
}

#[test]
fn log_format_json_for_buildlogs_own_messages() {
    let out = warning_run(&[], &["--log-format", "json"]);
    let err = stderr_of(&out);
    let line = err
        .lines()
        .find(|l| l.contains("TLS certificate verification"))
        .unwrap_or_else(|| panic!("{err}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["level"], "WARN");
    assert_eq!(
        v["message"],
        "TLS certificate verification is off (--insecure-skip-verify)"
    );
    assert!(v["timestamp"].as_str().unwrap().starts_with("20"));
    // the same from the environment
    let out = warning_run(&[("BUILDLOG_LOG_FORMAT", "json")], &[]);
    assert!(stderr_of(&out)
        .lines()
        .any(|l| l.starts_with('{') && l.contains("\"level\":\"WARN\"")));
}

#[test]
fn loki_failures_carry_the_cause() {
    let out = warning_run(&[], &[]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("Connection refused"), "{err}");
}

#[test]
fn tar_archives_are_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    for (name, flags) in [("old.tar", "-cf"), ("old.tar.gz", "-czf")] {
        let tar = dir.path().join(name);
        let st = std::process::Command::new("tar")
            .arg(flags)
            .arg(&tar)
            .arg("-C")
            .arg(corpus(""))
            .arg("build-01-success")
            .status()
            .unwrap();
        assert!(st.success());
        for cmd in ["convert", "ship", "metrics"] {
            let mut c = bin();
            c.arg(cmd);
            if cmd == "ship" {
                c.arg("--stdout");
            }
            let out = c.arg(&tar).output().unwrap();
            let err = stderr_of(&out);
            assert_eq!(out.status.code(), Some(2), "{cmd} {name}: {err}");
            assert!(err.contains("is a tar archive"), "{err}");
            assert!(out.stdout.is_empty(), "{cmd} {name} wrote events");
        }
    }
}

#[test]
fn a_format_that_does_not_fit_the_content_is_warned_about() {
    let log = corpus("build-01-success/python-install.log");
    let out = bin()
        .args(["convert", "--format", "json"])
        .arg(&log)
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert!(
        err.contains("does not look like --format json") && err.contains("install-log"),
        "{err}"
    );
    // the right format: no warning
    let out = bin()
        .args(["convert", "--format", "install-log"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(!stderr_of(&out).contains("does not look like"));
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn convert_on_a_terminal_stdin_says_what_it_waits_for() {
    let exe = assert_cmd::cargo::cargo_bin("buildlog");
    // `script` gives convert a terminal on stdin; `timeout` ends the wait.
    let out = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("timeout 3 {} convert", exe.display()),
            "/dev/null",
        ])
        .env_remove("BUILD_LOG_DIR")
        .env_remove("BUILDLOG_CONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("reading build logs from the terminal"),
        "{text:?}"
    );
    // Not on a pipe:
    bin()
        .arg("convert")
        .write_stdin("")
        .assert()
        .success()
        .stderr(predicate::str::contains("from the terminal").not());
}

// ---- one convention ----

#[test]
fn durations_and_retry_flags_old_and_new() {
    let p = refused_port();
    let url = format!("http://127.0.0.1:{p}");
    // A nonsense unit is a usage error naming the flag.
    bin()
        .args(["check", "--loki", &url, "--loki-retry-initial", "5x"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("--loki-retry-initial")
                .and(predicate::str::contains("unknown unit")),
        );
    // The old names are kept and take bare numbers in their old unit: 5 s > 1 s.
    bin()
        .args([
            "check",
            "--loki",
            &url,
            "--loki-min-backoff",
            "5",
            "--loki-max-backoff",
            "1",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--loki-retry-max-wait (1s) must not be shorter than --loki-retry-initial (5s)",
        ));
    // ms for the flags that were in ms: --forward-retry-min-ms 500 is 500ms < 30s: valid.
    bin()
        .args([
            "check",
            "--forward",
            &format!("127.0.0.1:{p}"),
            "--forward-retry-min-ms",
            "500",
        ])
        .assert()
        .code(3);
    bin()
        .args([
            "check",
            "--forward",
            &format!("127.0.0.1:{p}"),
            "--forward-retry-initial",
            "1m",
            "--forward-retry-max-wait",
            "2s",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--forward-retry-max-wait (2s)"));
    bin()
        .args([
            "check",
            "--loki",
            &url,
            "--loki-retry-max",
            "infinite",
            "--es-retry-max",
            "lots",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("infinite"));
    // Compression: one flag per sink, what the sink's server takes.
    bin()
        .args(["check", "--loki", &url, "--loki-compression", "gzip"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("snappy"));
    bin()
        .args([
            "check",
            "--elasticsearch",
            &url,
            "--es-compression",
            "snappy",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("gzip or none"));
    bin()
        .args(["check", "--otlp", &url, "--otlp-compression", "snappy"])
        .assert()
        .code(2);
    // the old --loki-gzip switch is still accepted with JSON bodies
    bin()
        .args([
            "check",
            "--loki",
            &url,
            "--loki-encoding",
            "json",
            "--loki-gzip",
        ])
        .assert()
        .code(3);
}

#[test]
fn env_vars_buildlog_flag_and_the_ecosystems_names() {
    let (a, b) = (refused_port(), refused_port());
    // LOKI_URL is Loki's own name for --loki
    bin()
        .arg("check")
        .env("LOKI_URL", format!("http://127.0.0.1:{a}"))
        .assert()
        .code(3)
        .stdout(predicate::str::contains(format!(
            "loki http://127.0.0.1:{a}: FAILED"
        )));
    // BUILDLOG_<FLAG> wins over the ecosystem's name, a flag over both
    bin()
        .arg("check")
        .env("LOKI_URL", format!("http://127.0.0.1:{a}"))
        .env("BUILDLOG_LOKI", format!("http://127.0.0.1:{b}"))
        .assert()
        .code(3)
        .stdout(predicate::str::contains(format!("127.0.0.1:{b}")));
    // BUILDLOG_<FLAG> for a duration, checked like the flag
    bin()
        .args(["check", "--loki", &format!("http://127.0.0.1:{a}")])
        .env("BUILDLOG_LOKI_RETRY_INITIAL", "soon")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("$BUILDLOG_LOKI_RETRY_INITIAL"));
    // a switch from the environment
    let out = bin()
        .args(["ship"])
        .arg(corpus("build-01-success/master-summary.log"))
        .env("BUILDLOG_STDOUT", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(String::from_utf8_lossy(&out.stdout).lines().count() > 3);
}

// ---- the configuration file ----

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn config_file_keys_interpolation_and_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (refused_port(), refused_port(), refused_port());
    let cfg = write(
        dir.path(),
        "buildlog.toml",
        &format!(
            "[loki]\nurl = \"http://127.0.0.1:${{BUILDLOG_TEST_LOKI_PORT}}\"\nretry-max = \"infinite\"\n\
             batch_wait = \"2s\"\n\n[forward]\naddress = \"127.0.0.1:{c}\"\n\n[follow]\npoll-interval = \"1s\"\n"
        ),
    );
    let out = bin()
        .args(["check", "--config"])
        .arg(&cfg)
        .env("BUILDLOG_TEST_LOKI_PORT", a.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}{}", stderr_of(&out));
    assert!(
        stdout.contains(&format!("loki http://127.0.0.1:{a}: FAILED")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("forward 127.0.0.1:{c}: FAILED")),
        "{stdout}"
    );
    assert!(
        stdout.contains("Connection refused") || stdout.contains("connection refused"),
        "{stdout}"
    );
    assert!(stderr_of(&out).contains("configuration") && stderr_of(&out).contains("valid"));
    // $BUILDLOG_CONFIG names the file; a flag overrides the file's key.
    bin()
        .args(["check", "--loki", &format!("http://127.0.0.1:{b}")])
        .env("BUILDLOG_CONFIG", &cfg)
        .env("BUILDLOG_TEST_LOKI_PORT", a.to_string())
        .assert()
        .code(3)
        .stdout(predicate::str::contains(format!(
            "loki http://127.0.0.1:{b}: FAILED"
        )));
    // An unset variable is an error naming the file and the key.
    bin()
        .args(["check", "--config"])
        .arg(&cfg)
        .env_remove("BUILDLOG_TEST_LOKI_PORT")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("buildlog.toml: [loki] url").and(
            predicate::str::contains("${BUILDLOG_TEST_LOKI_PORT} is not set"),
        ));
}

#[test]
fn config_file_mistakes_are_named_with_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[loki]\nurll = \"http://x\"\n",
            "unknown key `urll` in [loki]; did you mean `url`?",
        ),
        (
            "[loki]\nretry-max-wiat = \"1s\"\n",
            "did you mean `retry-max-wait`?",
        ),
        (
            "[lokki]\nurl = \"http://x\"\n",
            "unknown section [lokki]; did you mean `loki`?",
        ),
        (
            "batch-bytes = 5\n",
            "unknown key `batch-bytes`; it belongs in [loki]",
        ),
        (
            "[loki]\nretry-initial = \"5x\"\n",
            "[loki] retry-initial = \"5x\"",
        ),
        (
            "[loki]\nlabel = \"env=ci\"\nbatch-bytes = [1, 2]\n",
            "[loki] batch-bytes: takes one value",
        ),
        ("[loki\nurl = 1\n", "not valid TOML"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let p = write(dir.path(), &format!("c{i}.toml"), text);
        for cmd in ["ship", "check", "serve", "metrics"] {
            bin()
                .args([cmd, "--config"])
                .arg(&p)
                .assert()
                .code(2)
                .stderr(
                    predicate::str::contains(want.to_string())
                        .and(predicate::str::contains(format!("c{i}.toml"))),
                );
        }
    }
}

#[test]
fn config_file_drives_ship_serve_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    // top-level input keys and a list, read by ship
    let cfg = write(
        dir.path(),
        "b.toml",
        &format!(
            "stdout = true\ncorrelation-id = \"build-1-fromcfg\"\npaths = [\"{}\"]\n",
            corpus("build-01-success/master-summary.log").display()
        ),
    );
    let out = bin().args(["ship", "--config"]).arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().count() > 3);
    assert!(text
        .lines()
        .all(|l| l.contains("\"correlation_id\":\"build-1-fromcfg\"")));
    // a path on the command line replaces the file's paths
    let out = bin()
        .args(["ship", "--config"])
        .arg(&cfg)
        .arg(corpus("build-01-success/python-install.log"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("python-install.log"));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("master-summary.log"));
    // [serve]: an address it cannot listen on is a usage error of the file's value
    let cfg = write(
        dir.path(),
        "s.toml",
        "[serve]\nlisten = \"not-an-address\"\n",
    );
    bin()
        .args(["serve", "--config"])
        .arg(&cfg)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not-an-address"));
    // [remote-write] with metrics: the file's label needs the file's url (clap's rule)
    let cfg = write(
        dir.path(),
        "m.toml",
        "[remote-write]\nlabel = [\"job=ci\"]\n",
    );
    bin()
        .args(["metrics", "--config"])
        .arg(&cfg)
        .arg(corpus("build-01-success"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--remote-write"));
}

/// docs/configuration.md names every key the file can hold.
#[test]
fn configuration_doc_lists_every_key() {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md"),
    )
    .unwrap();
    let keys = buildlog::cli::config::all_keys(&buildlog::cli::Cli::command());
    assert!(keys.len() > 80, "{}", keys.len());
    let mut missing = Vec::new();
    for k in &keys {
        let (section, key) = (k.section, &k.key);
        let heading = if section.is_empty() {
            "## Top level".to_string()
        } else {
            format!("## [{section}]")
        };
        let Some(start) = doc.find(&heading) else {
            missing.push(format!("section {heading}"));
            continue;
        };
        let end = doc[start + 3..]
            .find("\n## ")
            .map(|i| i + start + 3)
            .unwrap_or(doc.len());
        if !doc[start..end].contains(&format!("| `{key}` |")) {
            missing.push(format!("{section}.{key}"));
        }
    }
    missing.dedup();
    assert!(
        missing.is_empty(),
        "not in docs/configuration.md: {missing:?}"
    );
}

/// docs/cli.md names every `BUILDLOG_<FLAG>` rule and the ecosystem's variables.
#[test]
fn cli_doc_lists_the_environment() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/cli.md")).unwrap();
    for v in [
        "BUILDLOG_<FLAG>",
        "BUILDLOG_CONFIG",
        "BUILDLOG_LOG_FORMAT",
        "LOKI_URL",
        "LOKI_ORG_ID",
        "ELASTICSEARCH_URL",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "NO_COLOR",
        "--loki-retry-initial",
        "--es-retry-max-wait",
        "--otlp-retry-max",
        "--forward-retry-initial",
        "--remote-write-retry-max",
        "--loki-compression",
    ] {
        assert!(doc.contains(v), "docs/cli.md does not name {v}");
    }
}

// ---- completions and man ----

#[test]
fn completions_for_three_shells() {
    let bash = bin().args(["completions", "bash"]).output().unwrap();
    assert!(bash.status.success());
    let script = String::from_utf8(bash.stdout).unwrap();
    assert!(
        script.contains("complete -F _buildlog"),
        "{}",
        &script[..200]
    );
    assert!(script.contains("--loki-retry-max-wait"));
    assert!(
        !script.contains("--loki-min-backoff"),
        "hidden aliases are not offered"
    );
    let st = std::process::Command::new("bash")
        .args(["-n", "-c", &script])
        .status()
        .unwrap();
    assert!(st.success(), "the bash completion is not valid bash");
    // Loaded into a real bash, it completes a flag.
    let out = std::process::Command::new("bash")
        .args([
            "-c",
            "source /dev/stdin; COMP_WORDS=(buildlog ship --loki-retry-m); COMP_CWORD=2; \
             _buildlog buildlog --loki-retry-m ship; printf '%s\\n' \"${COMPREPLY[@]}\"",
        ])
        .stdin(
            std::fs::File::open({
                let p = tempfile::NamedTempFile::new().unwrap();
                std::fs::write(p.path(), &script).unwrap();
                p.into_temp_path().keep().unwrap()
            })
            .unwrap(),
        )
        .output()
        .unwrap();
    let got = String::from_utf8_lossy(&out.stdout);
    assert!(
        got.contains("--loki-retry-max") && got.contains("--loki-retry-max-wait"),
        "{got}"
    );
    let zsh = bin().args(["completions", "zsh"]).output().unwrap();
    assert!(String::from_utf8_lossy(&zsh.stdout).starts_with("#compdef buildlog"));
    let fish = bin().args(["completions", "fish"]).output().unwrap();
    assert!(String::from_utf8_lossy(&fish.stdout).contains("complete -c buildlog"));
    bin().args(["completions", "tcsh"]).assert().code(2);
}

#[test]
fn man_pages_render_with_man() {
    let dir = tempfile::tempdir().unwrap();
    for (page, want) in [(None, "buildlog"), (Some("ship"), "--loki-retry-initial")] {
        let mut c = bin();
        c.arg("man");
        if let Some(p) = page {
            c.arg(p);
        }
        let out = c.output().unwrap();
        assert!(out.status.success());
        let roff = String::from_utf8(out.stdout).unwrap();
        assert!(
            roff.starts_with(".ie \\n(.g .ds Aq") || roff.contains(".TH"),
            "{}",
            &roff[..100]
        );
        let file = dir.path().join("page.1");
        std::fs::write(&file, &roff).unwrap();
        // The real `man` formats it.
        let shown = std::process::Command::new("man")
            .arg("-l")
            .arg(&file)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(
            shown.status.success(),
            "{}",
            String::from_utf8_lossy(&shown.stderr)
        );
        assert!(text.contains(want), "{page:?}: {text}");
        assert!(text.contains("NAME"), "{text}");
    }
    bin().args(["man", "nosuch"]).assert().code(2);
}

/// `check` reads the file's [serve] section as `serve` would.
#[test]
fn check_validates_the_serve_section_too() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "s.toml",
        "[serve]\nlisten = \"nowhere\"\nrefresh-interval = \"30s\"\n",
    );
    bin()
        .args(["check", "--config"])
        .arg(&bad)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot listen on \"nowhere\""));
    let zero = write(dir.path(), "z.toml", "[serve]\nrefresh-interval = \"0s\"\n");
    bin()
        .args(["check", "--config"])
        .arg(&zero)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--refresh-interval must be more than 0",
        ));
    let good = write(
        dir.path(),
        "g.toml",
        "[serve]\nlisten = \"127.0.0.1:9091\"\nrefresh-interval = \"30s\"\n",
    );
    bin()
        .args(["check", "--config"])
        .arg(&good)
        .assert()
        .code(0)
        .stderr(predicate::str::contains("g.toml: valid"));
}

/// A batch ship to a server that refuses connections does not retry for minutes: its events
/// are dead-lettered at once with the cause. (Following keeps retrying.)
#[test]
fn a_refused_server_at_start_ends_a_batch_ship_in_seconds() {
    let port = refused_port();
    let dir = tempfile::tempdir().unwrap();
    let dl = dir.path().join("dl.jsonl");
    let build = corpus("build-01-success");
    let started = std::time::Instant::now();
    let out = bin()
        .args([
            "ship",
            "--loki",
            &format!("http://127.0.0.1:{port}"),
            "--dead-letter",
        ])
        .arg(&dl)
        .arg(&build)
        .output()
        .unwrap();
    let took = started.elapsed();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(took < std::time::Duration::from_secs(20), "took {took:?}");
    assert!(
        err.contains(&format!(
            "127.0.0.1:{port} refuses connections (Connection refused): not retrying"
        )),
        "{err}"
    );
    let converted = bin().arg("convert").arg(&build).output().unwrap();
    let events = String::from_utf8_lossy(&converted.stdout).lines().count();
    let dead = std::fs::read_to_string(&dl).unwrap();
    assert_eq!(dead.lines().count(), events);
    assert!(dead.lines().all(|l| l.contains("Connection refused")));
}

/// BUILDLOG_<FLAG> is read by every command, convert included.
#[test]
fn buildlog_flag_variables_for_convert_too() {
    let log = corpus("build-01-success/python-install.log");
    let out = bin()
        .arg("convert")
        .arg(&log)
        .env("BUILDLOG_CORRELATION_ID", "build-7-fromenv")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().count() > 10);
    assert!(text
        .lines()
        .all(|l| l.contains("\"correlation_id\":\"build-7-fromenv\"")));
    // checked as the flag is
    bin()
        .arg("convert")
        .arg(&log)
        .env("BUILDLOG_MAX_LINE_BYTES", "lots")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("$BUILDLOG_MAX_LINE_BYTES"));
}

//! `buildlog serve` and `buildlog metrics` as users run them: the built binary, real sockets.

mod common;
mod metrics_support;

use metrics_support::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);

fn raw(addr: &str, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_garbage_and_a_scrape_storm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = corpus().join("build-01-success");
    let (mut serve, base) = start_serve(&dir, tmp.path(), &["--no-health-check"], &[]).await;
    let addr = base.trim_start_matches("http://").to_string();

    // Malformed HTTP of several kinds, each on its own connection.
    let mut junk: Vec<Vec<u8>> = vec![
        (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(), // a TLS ClientHello
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Long: "
            .iter()
            .copied()
            .chain(std::iter::repeat_n(b'a', 200_000))
            .collect(),
        b"GET /metrics HTTP/9.9\r\n\r\n".to_vec(),
        b"BREW /metrics HTCPCP/1.0\r\n\r\n".to_vec(),
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\nabc".to_vec(),
        b"\r\n\r\n\r\n".to_vec(),
        vec![0u8; 10_000],
    ];
    junk.push(b"GET /metrics HTTP/1.1\r\nHost: x\r\n".to_vec()); // cut short
    let answers: Vec<Vec<u8>> = junk.iter().map(|j| raw(&addr, j)).collect();
    // Where hyper answered, it was with an error status, never a scrape.
    for a in &answers {
        let head = String::from_utf8_lossy(&a[..a.len().min(12)]).to_string();
        assert!(
            a.is_empty() || head.starts_with("HTTP/1.1 4") || head.starts_with("HTTP/1.1 5"),
            "{head}"
        );
    }
    assert!(
        serve.alive(),
        "serve died on garbage:\n{}",
        serve.log_text()
    );
    // A valid request with a broken chunked body: answered (the body is not read), no harm.
    let a = raw(
        &addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    );
    assert!(
        a.is_empty() || a.starts_with(b"HTTP/1.1 "),
        "{}",
        String::from_utf8_lossy(&a)
    );
    assert!(serve.alive());

    // A storm: 400 concurrent scrapes, half asking for OpenMetrics.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..400 {
        let (c, u) = (client.clone(), format!("{base}/metrics"));
        set.spawn(async move {
            let mut r = c.get(u);
            if i % 2 == 0 {
                r = r.header("Accept", "application/openmetrics-text;version=1.0.0");
            }
            match r.send().await {
                Ok(resp) => (
                    resp.status().as_u16(),
                    resp.text().await.unwrap_or_default().len(),
                ),
                Err(_) => (0, 0),
            }
        });
    }
    let mut ok = 0;
    while let Some(r) = set.join_next().await {
        let (status, len) = r.unwrap();
        if status == 200 && len > 1000 {
            ok += 1;
        }
    }
    assert_eq!(ok, 400, "some scrapes of the storm failed");
    assert!(serve.alive());

    // And a good scrape afterwards is whole and right.
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("container_build_errors_total{feature=\"python\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("\ncontainer_features_installed 4\n"),
        "{text}"
    );
    assert!(text
        .trim_end()
        .lines()
        .last()
        .unwrap()
        .starts_with("container_metrics_scrape_timestamp_seconds "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_negotiation_and_routes() {
    let tmp = tempfile::tempdir().unwrap();
    let (_serve, base) = start_serve(
        &corpus().join("build-02-failure"),
        tmp.path(),
        &["--no-health-check"],
        &[],
    )
    .await;
    let c = reqwest::Client::new();
    let om = c
        .get(format!("{base}/metrics"))
        .header(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        om.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let body = om.text().await.unwrap();
    assert!(body.ends_with("# EOF\n"));
    assert!(body.contains("# TYPE container_build_failures counter\ncontainer_build_failures_total{feature=\"java_development\"} 1\n"), "{body}");
    let text = c.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(
        text.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let body = text.text().await.unwrap();
    assert!(!body.contains("# EOF"));
    assert!(
        body.contains("# TYPE container_build_failures_total counter\n"),
        "{body}"
    );
    assert_eq!(
        c.get(format!("{base}/nope")).send().await.unwrap().status(),
        404
    );
    assert_eq!(
        c.post(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        405
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_and_basic_auth_guard_metrics_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = corpus().join("build-05-legacy-2025");
    let c = reqwest::Client::new();
    let (_s, base) = start_serve(
        &dir,
        tmp.path(),
        &["--no-health-check"],
        &[("METRICS_BEARER_TOKEN", "t0ken")],
    )
    .await;
    let m = format!("{base}/metrics");
    let r = c.get(&m).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"buildlog\"");
    assert_eq!(
        c.get(&m)
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // The scheme is case-insensitive (RFC 9110 11.1); the token is not.
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let r = c
            .get(&m)
            .header("Authorization", format!("{scheme} t0ken"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{scheme}");
    }
    let r = c
        .get(&m)
        .header("Authorization", "bearer T0KEN")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let ok = c.get(&m).bearer_auth("t0ken").send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok
        .text()
        .await
        .unwrap()
        .contains("container_build_errors_total{feature=\"kubernetes_tools\"} 1"));
    assert_eq!(
        c.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let (s2, base) = start_serve(
        &dir,
        tmp.path(),
        &[
            "--no-health-check",
            "--basic-auth-password-file",
            pw.to_str().unwrap(),
        ],
        &[("METRICS_BASIC_AUTH_USER", "prom")],
    )
    .await;
    let m = format!("{base}/metrics");
    assert_eq!(
        c.get(&m)
            .basic_auth("prom", Some("nope"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        c.get(&m)
            .basic_auth("prom", Some("s3cret"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // The secret is never logged.
    drop(c);
    let log = s2.log_text();
    assert!(!log.contains("s3cret") && !log.contains("t0ken"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_a_directory_that_appears_later_and_runs_the_health_check() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("later");
    let port = free_port();
    let mut cmd = buildlog();
    cmd.args([
        "serve",
        "--health-command",
        "sleep 5",
        "--health-timeout",
        "0.2",
    ])
    .arg("--log-dir")
    .arg(&logs)
    .env("METRICS_PORT", port.to_string()) // no --listen: 127.0.0.1:$METRICS_PORT
    .env("METRICS_REFRESH_INTERVAL", "1");
    let _serve = Proc::spawn("serve", cmd, tmp.path().join("serve.log"));
    let url = format!("http://127.0.0.1:{port}/metrics");
    let first = eventually(DEADLINE, "first scrape", || {
        let u = url.clone();
        async move { reqwest::get(u).await.ok()?.text().await.ok() }
    })
    .await;
    assert!(!first.contains("container_build_"), "{first}");
    assert!(first.contains("container_uptime_seconds "));
    assert!(
        first.contains("container_healthcheck_status 0\n"),
        "the timed-out check is unhealthy: {first}"
    );
    copy_dir_without(&corpus().join("build-14-chicago-dst"), &logs, "");
    let later = eventually(DEADLINE, "the build's metrics", || {
        let (u, logs) = (url.clone(), logs.clone());
        async move {
            let t = reqwest::get(u).await.ok()?.text().await.ok()?;
            let disk = format!("container_disk_usage_bytes{{path=\"{}\"}}", logs.display());
            (t.contains("container_features_installed 2\n") && t.contains(&disk)).then_some(t)
        }
    })
    .await;
    assert!(
        later.contains(
            "container_build_duration_seconds{feature=\"golang\",status=\"failed\"} 76\n"
        ),
        "{later}"
    );
    assert!(
        later.contains(&format!(
            "container_disk_usage_bytes{{path=\"{}\"}}",
            logs.display()
        )),
        "{later}"
    );
}

#[test]
fn serve_refuses_bad_configuration() {
    for (args, env, needle) in [
        (
            vec!["--refresh-interval", "0"],
            vec![],
            "--refresh-interval must be more than 0",
        ),
        (vec![], vec![("METRICS_BASIC_AUTH_USER", "u")], "password"),
        (vec!["--listen", "nowhere"], vec![], "cannot listen"),
        (
            vec![],
            vec![
                ("METRICS_BEARER_TOKEN", "x"),
                ("METRICS_BASIC_AUTH_USER", "u"),
            ],
            "not both",
        ),
    ] {
        let out = buildlog()
            .arg("serve")
            .args(&args)
            .env_remove("METRICS_BEARER_TOKEN")
            .env_remove("METRICS_BASIC_AUTH_PASSWORD")
            .envs(env)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn metrics_textfile_stdin_env_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = corpus().join("build-01-success");
    let plain = buildlog()
        .args(["metrics", "-q"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(plain.status.success());

    // METRICS_FILE: written whole, nothing on stdout.
    let file = tmp.path().join("build.prom");
    let out = buildlog()
        .args(["metrics", "-q"])
        .arg(&dir)
        .env("METRICS_FILE", &file)
        .output()
        .unwrap();
    assert!(out.status.success() && out.stdout.is_empty());
    assert_eq!(std::fs::read(&file).unwrap(), plain.stdout);
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        1,
        "a temp file was left behind"
    );

    // BUILD_LOG_DIR when no path is given.
    let out = buildlog()
        .args(["metrics", "-q"])
        .env("BUILD_LOG_DIR", &dir)
        .output()
        .unwrap();
    assert_eq!(out.stdout, plain.stdout);

    // A single install log on stdin.
    let log = std::fs::read(dir.join("rust-install.log")).unwrap();
    let mut child = buildlog()
        .args(["metrics", "-q", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&log).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("container_build_duration_seconds{feature=\"rust\",status=\"failed\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("container_build_errors_total{feature=\"rust\"} 2\n"));
    assert!(text.contains("\ncontainer_features_installed 1\n"));

    // OpenMetrics on request.
    let out = buildlog()
        .args(["metrics", "-q", "--output-format", "openmetrics"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(String::from_utf8(out.stdout).unwrap().ends_with("# EOF\n"));

    // A missing path: named, exit 1, the rest still counted.
    let missing = tmp.path().join("no-such-build");
    let out = buildlog()
        .args(["metrics", "-q"])
        .arg(&missing)
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-build"));
    assert_eq!(out.stdout, plain.stdout);

    // The textfile's directory does not exist: an error, not a panic.
    let out = buildlog()
        .args(["metrics", "-q", "--textfile"])
        .arg(tmp.path().join("nodir/x.prom"))
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nodir"));
}

#[test]
fn remote_write_failures_set_the_exit_code() {
    let dir = corpus().join("build-01-success");
    let port = free_port(); // nothing listens there
    let out = buildlog()
        .args([
            "metrics",
            "-q",
            "--max-retries",
            "1",
            "--retry-min-wait",
            "0.01",
            "--remote-write",
        ])
        .arg(format!("http://127.0.0.1:{port}/api/v1/write"))
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("gave up after 2 attempts"));
    let out = buildlog()
        .args([
            "metrics",
            "-q",
            "--remote-write",
            "http://127.0.0.1:1/",
            "--label",
            "bad label=x",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// The directory is an argument, as for every other command; the old `--log-dir` still works
/// (the health-check test above uses it), but not both at once.
#[test]
fn serve_refuses_a_path_and_log_dir_together() {
    let out = buildlog()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:1",
            "logs-a",
            "--log-dir",
            "logs-b",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot be used with") && err.contains("--log-dir"),
        "{err}"
    );
}

/// Connects and sends half a request line, then hangs.
fn stalled_client(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metr").unwrap();
    s
}

/// Reads until the server closes the connection; how long that took.
fn time_to_close(mut s: TcpStream, limit: Duration) -> Option<Duration> {
    let start = std::time::Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(start.elapsed())
            }
            Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_never_stop_scrapes() {
    // As the issue found it: 64 file descriptors, more stalled clients than that, and
    // timeouts far longer than the test, so only the connection limit can save the scrape.
    let tmp = tempfile::tempdir().unwrap();
    let dir = corpus().join("build-01-success");
    let port = free_port();
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", "ulimit -n 64 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_buildlog"))
        .args(["serve", "--no-health-check", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--log-dir")
        .arg(&dir)
        .args(["--header-read-timeout", "300", "--idle-timeout", "300"])
        .env("METRICS_REFRESH_INTERVAL", "60")
        .env_remove("METRICS_BEARER_TOKEN")
        .env_remove("METRICS_BASIC_AUTH_USER");
    let mut serve = Proc::spawn("buildlog serve", cmd, tmp.path().join("serve.log"));
    let base = format!("http://127.0.0.1:{port}");
    let addr = format!("127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    eventually(DEADLINE, "serve /healthz", || {
        let (c, u) = (client.clone(), format!("{base}/healthz"));
        async move {
            c.get(u)
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success())
        }
    })
    .await;
    let stalled: Vec<TcpStream> = (0..100).map(|_| stalled_client(&addr)).collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    for round in 0..5 {
        let started = std::time::Instant::now();
        let r = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "scrape {round} with 100 stalled clients: {e}\n{}",
                    serve.log_text()
                )
            });
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        assert!(
            text.contains("container_build_errors_total{feature=\"python\"} 2\n"),
            "{text}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        // More stallers keep arriving between scrapes.
        for _ in 0..20 {
            std::mem::forget(stalled_client(&addr));
        }
    }
    assert!(serve.alive());
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_connections_are_closed_after_their_timeouts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = corpus().join("build-01-success");
    let (mut serve, base) = start_serve(
        &dir,
        tmp.path(),
        &[
            "--no-health-check",
            "--header-read-timeout",
            "1",
            "--idle-timeout",
            "2",
        ],
        &[],
    )
    .await;
    let addr = base.trim_start_matches("http://").to_string();
    let limit = Duration::from_secs(10);

    // Connected, nothing sent: closed after the idle timeout, not before.
    let silent = TcpStream::connect(&addr).unwrap();
    let t = time_to_close(silent, limit).expect("a silent connection stays open");
    assert!(
        t >= Duration::from_millis(1800) && t < Duration::from_secs(5),
        "{t:?}"
    );

    // Half a request: closed after the header read timeout.
    let t = time_to_close(stalled_client(&addr), limit).expect("a half request stays open");
    assert!(
        t >= Duration::from_millis(800) && t < Duration::from_secs(4),
        "{t:?}"
    );

    // A finished request on a keep-alive connection: answered, then closed when idle.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.ends_with("ok\n"), "{head}");
    let t = time_to_close(s, limit).expect("a finished keep-alive connection stays open");
    assert!(
        t >= Duration::from_millis(1800) && t < Duration::from_secs(5),
        "{t:?}"
    );
    assert!(serve.alive());
}

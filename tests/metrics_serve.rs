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

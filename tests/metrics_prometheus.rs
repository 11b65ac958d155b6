//! The metrics against a real Prometheus (Debian's `prometheus` package, found on PATH):
//! promtool's linter, a live scrape of `buildlog serve`, backfilled blocks, remote write,
//! and the alert rules' unit tests. Without Prometheus the tests skip, unless `CI` is set.

mod common;
mod metrics_support;

use buildlog::event::EventType;
use buildlog::metrics::sanitize_label;
use metrics_support::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(60);

/// The exporter's per-feature series in Prometheus, as `name/feature/status` -> value.
async fn feature_series(prom: &Prometheus) -> BTreeMap<String, f64> {
    let q = "{job=\"container-build\",__name__=~\"container_build_(errors|warnings)_total|container_build_duration_seconds\"}";
    let mut m = BTreeMap::new();
    for (labels, _, v) in prom.query(q, None).await.unwrap() {
        let s = |k: &str| {
            labels
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        m.insert(
            format!("{}/{}/{}", s("__name__"), s("feature"), s("status")),
            v,
        );
    }
    m
}

fn promtool_check_metrics(promtool: &Path, exposition: &[u8]) -> (bool, String) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(exposition).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// 1. `promtool check metrics` finds nothing to say about the exposition of any corpus build.
#[test]
fn promtool_accepts_the_exposition_of_every_corpus_build() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    for dir in corpus_builds() {
        let out = run_ok(buildlog().args(["metrics", "-q"]).arg(&dir));
        assert!(out.stdout.len() > 500, "{}: tiny exposition", dir.display());
        let (ok, said) = promtool_check_metrics(&promtool, &out.stdout);
        assert!(
            ok && said.trim().is_empty(),
            "{}: promtool said:\n{said}",
            dir.display()
        );
    }
    // And it does flag a real problem (the linter is not a no-op): a counter without `_total`.
    let (ok, said) = promtool_check_metrics(
        &promtool,
        b"# HELP container_build_errors_total_all x\n# TYPE container_build_errors_total_all counter\ncontainer_build_errors_total_all 1\n",
    );
    assert!(
        !ok || !said.trim().is_empty(),
        "promtool found nothing wrong with a bad counter"
    );
}

/// 2. A real Prometheus scrapes `buildlog serve` following a build directory; values follow the
/// build as another feature finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_serve_and_sees_a_feature_finish() {
    let Some((prom_bin, promtool)) = prometheus_and_promtool() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = corpus().join("build-01-success");
    let logs = tmp.path().join("logs");
    // The build as it stood before its last feature (Development Tools) ran: text logs only.
    std::fs::create_dir(&logs).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        if e.path().is_file()
            && !name.starts_with("development-tools")
            && name != "master-summary.log"
        {
            std::fs::copy(e.path(), logs.join(&name)).unwrap();
        }
    }
    let all_lines: Vec<String> = std::fs::read_to_string(src.join("master-summary.log"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    std::fs::write(
        logs.join("master-summary.log"),
        all_lines[..3].join("\n") + "\n",
    )
    .unwrap();

    let logs_arg = logs.to_str().unwrap();
    let (mut serve, base) = start_serve(
        &logs,
        tmp.path(),
        &["--health-command", "true", "--disk-path", logs_arg],
        &[],
    )
    .await;
    let port = base.rsplit(':').next().unwrap().to_string();
    let client = reqwest::Client::new();

    // What serve says is lint-clean too, runtime metrics included.
    let text = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("container_healthcheck_status 1\n"), "{text}");
    let (ok, said) = promtool_check_metrics(&promtool, text.as_bytes());
    assert!(
        ok && said.trim().is_empty(),
        "promtool said:\n{said}\n{text}"
    );

    let rules = repo().join("pipelines/prometheus/rules/container-build.rules.yml");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: container-build\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n",
        rules.display()
    );
    let prom = Prometheus::start(&prom_bin, tmp.path(), &config, &[]).await;

    let installed = |n: f64| {
        let prom = &prom;
        move || async move {
            prom.value(
                "container_features_installed{job=\"container-build\"}",
                None,
            )
            .await
            .filter(|v| *v == n)
        }
    };
    eventually(
        DEADLINE,
        "3 features installed in Prometheus",
        installed(3.0),
    )
    .await;
    let expect = |lines: &[MasterLine]| {
        let mut m = BTreeMap::new();
        for l in lines {
            let f = &l.label;
            m.insert(
                format!("container_build_errors_total/{f}/"),
                l.errors as f64,
            );
            m.insert(
                format!("container_build_warnings_total/{f}/"),
                l.warnings as f64,
            );
            m.insert(
                format!("container_build_duration_seconds/{f}/{}", l.status()),
                l.duration,
            );
        }
        m
    };
    let full = master_lines(&src);
    assert_eq!(feature_series(&prom).await, expect(&full[..3]));
    assert_eq!(
        prom.value("container_build_errors_total_all", None).await,
        Some(4.0)
    );
    assert_eq!(
        prom.value("up{job=\"container-build\"}", None).await,
        Some(1.0)
    );
    assert_eq!(
        prom.value("container_healthcheck_status", None).await,
        Some(1.0)
    );
    let disk = prom
        .value("container_disk_usage_bytes", None)
        .await
        .unwrap();
    assert!(disk > 10_000.0, "{disk}");
    let scraped = prom
        .value("container_metrics_scrape_timestamp_seconds", None)
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - scraped).abs() < 30.0, "{scraped} vs {now}");

    // Development Tools finishes: its install log appears, then its master summary line.
    for name in [
        "development-tools-install.log",
        "development-tools-errors.log",
        "development-tools-summary.log",
    ] {
        std::fs::copy(src.join(name), logs.join(name)).unwrap();
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(logs.join("master-summary.log"))
        .unwrap();
    writeln!(f, "{}", all_lines[3]).unwrap();
    drop(f);
    eventually(
        DEADLINE,
        "4 features installed in Prometheus",
        installed(4.0),
    )
    .await;
    assert_eq!(feature_series(&prom).await, expect(&full));
    assert_eq!(
        prom.value("container_build_errors_total_all", None).await,
        Some(5.0)
    );
    assert_eq!(
        prom.value(
            "container_build_commands_total{feature=\"development_tools\"}",
            None
        )
        .await,
        Some(2.0)
    );

    // The alert rules load and evaluate against these series.
    eventually(DEADLINE, "every alert rule evaluated without error", || {
        let prom = &prom;
        async move {
            let body = reqwest::get(format!("{}/api/v1/rules", prom.url))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            let rules: Vec<&serde_json::Value> = v["data"]["groups"]
                .as_array()?
                .iter()
                .flat_map(|g| g["rules"].as_array().unwrap().iter())
                .collect();
            (rules.len() == 9 && rules.iter().all(|r| r["health"] == "ok")).then_some(())
        }
    })
    .await;
    // Python's logger status is `failed` (two substring "errors"), but the build succeeded:
    // ContainerBuildFailed follows the build's real status and stays quiet.
    assert_eq!(prom.value("container_build_success", None).await, Some(1.0));
    let alerts = prom
        .query("ALERTS{alertname=\"ContainerBuildFailed\"}", None)
        .await
        .unwrap();
    assert!(alerts.is_empty(), "{alerts:?}");

    // Every query of the Grafana dashboard runs.
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo().join("pipelines/prometheus/grafana/container-build-dashboard.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut n = 0;
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"]
                .as_str()
                .unwrap()
                .replace("$instance", ".*")
                .replace("$__rate_interval", "1m")
                .replace("$__range", "1h");
            prom.query(&expr, None)
                .await
                .unwrap_or_else(|e| panic!("dashboard query failed: {e}"));
            n += 1;
        }
    }
    assert!(n >= 14);
    assert!(serve.alive(), "serve died:\n{}", serve.log_text());
}

/// 3. The backfill output becomes TSDB blocks with promtool, and Prometheus started on them
/// answers with each sample at the time it happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_blocks_hold_samples_at_their_historical_times() {
    let Some((prom_bin, promtool)) = prometheus_and_promtool() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let builds = corpus_builds();
    let out = run_ok(
        buildlog()
            .args(["metrics", "-q", "--backfill"])
            .args(&builds),
    );
    let om = tmp.path().join("backfill.om");
    std::fs::write(&om, &out.stdout).unwrap();
    let data = tmp.path().join("data");
    run_ok(
        Command::new(&promtool)
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&om)
            .arg(&data),
    );
    let prom = Prometheus::start(
        &prom_bin,
        tmp.path(),
        "global:\n  scrape_interval: 1m\n",
        &[],
    )
    .await;

    let mut checked = 0;
    for dir in [
        corpus().join("build-01-success"),
        corpus().join("build-13-large"),
        corpus().join("build-02-failure"),
    ] {
        for e in events(&dir)
            .iter()
            .filter(|e| e.event_type == EventType::FeatureEnd)
        {
            let t = e.timestamp.0 as f64 / 1000.0;
            let f = sanitize_label(&e.feature);
            let status = e.metadata["status"].as_str().unwrap();
            let q =
                format!("container_build_duration_seconds{{feature=\"{f}\",status=\"{status}\"}}");
            let r = prom
                .query(&format!("timestamp({q})"), Some(t))
                .await
                .unwrap();
            assert_eq!(r.len(), 1, "{q} at {t}: {r:?}");
            assert!(
                (r[0].2 - t).abs() < 0.0005,
                "{q}: sample at {} not {t}",
                r[0].2
            );
            assert_eq!(
                prom.value(&q, Some(t)).await,
                e.metadata["duration_seconds"].as_f64(),
                "{q} at {t}"
            );
            let q = format!("container_build_errors_total{{feature=\"{f}\"}}");
            assert_eq!(
                prom.value(&q, Some(t)).await,
                e.metadata["errors"].as_f64(),
                "{q} at {t}"
            );
            // Not there a moment before it happened.
            assert_eq!(
                prom.query(&q, Some(t - 0.001)).await.unwrap(),
                vec![],
                "{q} before {t}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 4 + 19 + 2);
    // The features installed go up one by one through build 13.
    let ends: Vec<f64> = events(&corpus().join("build-13-large"))
        .iter()
        .filter(|e| e.event_type == EventType::BuildSummary)
        .map(|e| e.timestamp.0 as f64 / 1000.0)
        .collect();
    assert_eq!(ends.len(), 19);
    let last = *ends.last().unwrap();
    assert_eq!(
        prom.value("container_features_installed", Some(last)).await,
        Some(19.0)
    );
}

/// 4. Remote write into Prometheus's receiver, then the samples are queryable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_lands_in_prometheus() {
    let Some(prom_bin) = tool("prometheus") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let prom = Prometheus::start(
        &prom_bin,
        tmp.path(),
        "global:\n  scrape_interval: 1m\n",
        &["--web.enable-remote-write-receiver"],
    )
    .await;
    let dir = corpus().join("build-01-success");
    run_ok(
        buildlog()
            .args([
                "metrics",
                "-q",
                "--remote-write",
                &format!("{}/api/v1/write", prom.url),
                "--label",
                "job=ci-batch",
            ])
            .arg(&dir),
    );
    for MasterLine {
        label: f,
        errors,
        warnings,
        ..
    } in master_lines(&dir)
    {
        let q = format!("container_build_errors_total{{job=\"ci-batch\",feature=\"{f}\"}}");
        let v = eventually(DEADLINE, &q, || {
            let (prom, q) = (&prom, q.clone());
            async move { prom.value(&q, None).await }
        })
        .await;
        assert_eq!(v, errors as f64, "{q}");
        let q = format!("container_build_warnings_total{{job=\"ci-batch\",feature=\"{f}\"}}");
        assert_eq!(prom.value(&q, None).await, Some(warnings as f64), "{q}");
    }
    assert_eq!(
        prom.value("container_features_installed{job=\"ci-batch\"}", None)
            .await,
        Some(4.0)
    );
    assert_eq!(
        prom.value(
            "container_build_command_duration_seconds_count{job=\"ci-batch\",feature=\"python\"}",
            None
        )
        .await,
        Some(4.0)
    );
    // The histogram is a histogram to PromQL: every command took under a second.
    let p95 = prom
        .value("histogram_quantile(0.95, container_build_command_duration_seconds_bucket{job=\"ci-batch\",feature=\"python\"})", None)
        .await
        .unwrap();
    assert!(p95 > 0.0 && p95 <= 1.0, "{p95}");
}

/// 5. The alert rules' unit tests pass, and the scrape config is valid.
#[test]
fn alert_rules_pass_their_promtool_unit_tests() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let dir = repo().join("pipelines/prometheus");
    for args in [
        vec!["test", "rules", "tests/container-build.test.yml"],
        vec!["check", "rules", "rules/container-build.rules.yml"],
        vec!["check", "config", "prometheus.yml"],
    ] {
        run_ok(Command::new(&promtool).args(&args).current_dir(&dir));
    }
    // A broken expectation is caught (the unit tests can fail).
    let tmp = tempfile::tempdir().unwrap();
    let broken = std::fs::read_to_string(dir.join("tests/container-build.test.yml"))
        .unwrap()
        .replace(
            "summary: \"Feature rust_development_tools printed 1416 tool warnings\"",
            "summary: \"Feature rust_development_tools printed 1417 tool warnings\"",
        )
        .replace("../rules/", &format!("{}/", dir.join("rules").display()));
    std::fs::write(tmp.path().join("t.yml"), broken).unwrap();
    let out = Command::new(&promtool)
        .args(["test", "rules"])
        .arg(tmp.path().join("t.yml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
}

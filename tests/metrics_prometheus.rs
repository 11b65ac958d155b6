//! The metrics against a real Prometheus (Debian's `prometheus` package, found on PATH):
//! promtool's linter, a live scrape of `buildlog serve`, backfilled blocks, remote write,
//! the alert rules' unit tests, and every alert going active for the build that should trigger
//! it (and only there), with the dashboard's and docs' queries returning data. Without
//! Prometheus the tests skip, unless `CI` is set.

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

/// Where each alert of `pipelines/prometheus/rules/` must go active, and where it must stay
/// silent: label values an alert of that name must (resp. must not) carry. `build` is the
/// scrape target's label below; an alert without an entry here fails the test.
type Labels = &'static [(&'static str, &'static str)];
const ALERT_CASES: &[(&str, Labels, Labels)] = &[
    // build_end said failed: build-02 aborted; build-13 succeeded despite its ERROR lines.
    (
        "ContainerBuildFailed",
        &[("build", "failure")],
        &[("build", "large")],
    ),
    // The sentinel: build-02 aborted; build-01 did not.
    (
        "ContainerBuildAborted",
        &[("build", "failure"), ("feature", "java_development")],
        &[("build", "growing")],
    ),
    // build-13's gopls step exited non-zero and the build went on; build-01 had no such step.
    (
        "ContainerBuildCommandFailed",
        &[("build", "large"), ("feature", "golang_development_tools")],
        &[("build", "growing")],
    ),
    // build-02's Java printed `curl: (22)` and apt's `E:`; build-01 printed no tool error.
    (
        "ContainerBuildDiagnosticErrors",
        &[("build", "failure"), ("feature", "java_development")],
        &[("build", "growing")],
    ),
    // Rust took 700 s in `slow`; build-13's longest feature took 580 s.
    (
        "ContainerBuildSlow",
        &[("build", "slow"), ("feature", "rust")],
        &[("build", "large"), ("feature", "rust_development_tools")],
    ),
    // build-13's Rust printed 260 compiler warnings; build-02 none.
    (
        "ContainerBuildWarnings",
        &[("build", "large"), ("feature", "rust")],
        &[("build", "failure")],
    ),
    // The health check command fails on `unhealthy`, succeeds on `failure`.
    (
        "ContainerUnhealthy",
        &[("build", "unhealthy")],
        &[("build", "failure")],
    ),
    // Nothing answers on `down`.
    (
        "ContainerMetricsStale",
        &[("build", "down")],
        &[("build", "failure")],
    ),
    // A second Prometheus whose only container-build target is down (`prometheus=lonely`);
    // the first one has live targets.
    (
        "ContainerMetricsMissing",
        &[("prometheus", "lonely")],
        &[("prometheus", "main")],
    ),
];

/// The alerting rules of the rule file: name -> `for` in seconds.
fn prometheus_alert_rules() -> BTreeMap<String, f64> {
    let text = std::fs::read_to_string(
        repo().join("pipelines/prometheus/rules/container-build.rules.yml"),
    )
    .unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut out = BTreeMap::new();
    for g in doc["groups"].as_sequence().unwrap() {
        for r in g["rules"].as_sequence().unwrap() {
            if let Some(name) = r["alert"].as_str() {
                let hold = r["for"].as_str().map_or(0.0, |s| {
                    let (n, unit) = s.split_at(s.len() - 1);
                    n.parse::<f64>().unwrap()
                        * match unit {
                            "s" => 1.0,
                            "m" => 60.0,
                            "h" => 3600.0,
                            u => panic!("unit {u} in {s}"),
                        }
                });
                out.insert(name.to_string(), hold);
            }
        }
    }
    out
}

/// The active alerts of a Prometheus: (labels, state).
async fn active_alerts(prom: &Prometheus) -> Vec<(serde_json::Value, String)> {
    let Ok(r) = reqwest::get(format!("{}/api/v1/alerts", prom.url)).await else {
        return Vec::new();
    };
    let text = r.text().await.unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    v["data"]["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            (
                a["labels"].clone(),
                a["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn matches(labels: &serde_json::Value, name: &str, want: Labels) -> bool {
    labels["alertname"] == name && want.iter().all(|(k, v)| labels[*k] == *v)
}

/// 6. Every alert rule goes active in a real Prometheus scraping `buildlog serve` for a build
/// that should trigger it, and stays silent for one that should not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alert_fires_for_a_build_that_should_trigger_it_and_only_there() {
    let Some(prom_bin) = tool("prometheus") else {
        return;
    };
    let rules = prometheus_alert_rules();
    assert!(rules.len() >= 8, "{rules:?}");
    for name in rules.keys() {
        assert!(
            ALERT_CASES.iter().any(|(n, _, _)| n == name),
            "alert {name} has no case in ALERT_CASES: which build should trigger it?"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let healthy: &[&str] = &["--health-command", "true"];

    // `slow`: build-01 whose Rust took 700 s by its master summary.
    let slow = tmp.path().join("slow");
    copy_dir_without(&corpus().join("build-01-success"), &slow, "");
    let summary = std::fs::read_to_string(slow.join("master-summary.log")).unwrap();
    let edited = summary.replace(
        "Rust: 2 errors, 3 warnings (1s)",
        "Rust: 2 errors, 3 warnings (700s)",
    );
    assert_ne!(
        summary, edited,
        "build-01's master summary changed: adjust the `slow` build"
    );
    std::fs::write(slow.join("master-summary.log"), edited).unwrap();

    // `growing`: build-01 before its last feature; the feature is added once scraped.
    let src = corpus().join("build-01-success");
    let growing = tmp.path().join("growing");
    std::fs::create_dir(&growing).unwrap();
    let master: Vec<String> = std::fs::read_to_string(src.join("master-summary.log"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        if e.path().is_file()
            && !name.starts_with("development-tools")
            && name != "master-summary.log"
        {
            std::fs::copy(e.path(), growing.join(&name)).unwrap();
        }
    }
    std::fs::write(
        growing.join("master-summary.log"),
        master[..3].join("\n") + "\n",
    )
    .unwrap();

    let mut serves = Vec::new();
    let mut targets = Vec::new();
    for (build, dir, extra) in [
        ("failure", corpus().join("build-02-failure"), healthy),
        ("large", corpus().join("build-13-large"), healthy),
        ("slow", slow.clone(), healthy),
        ("growing", growing.clone(), healthy),
        (
            "unhealthy",
            corpus().join("build-01-success"),
            &["--health-command", "false"][..],
        ),
    ] {
        let (proc, base) = start_serve(&dir, tmp.path(), extra, &[]).await;
        serves.push(proc);
        targets.push((build, base.trim_start_matches("http://").to_string()));
    }
    let dead = format!("127.0.0.1:{}", free_port());
    targets.push(("down", dead.clone()));

    let rules_file = repo().join("pipelines/prometheus/rules/container-build.rules.yml");
    let config = |name: &str, targets: &[(&str, String)]| {
        let mut c = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  external_labels:\n    prometheus: {name}\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: container-build\n    static_configs:\n",
            rules_file.display()
        );
        for (build, addr) in targets {
            c += &format!(
                "      - targets: ['{addr}']\n        labels:\n          build: {build}\n"
            );
        }
        c
    };
    let main_dir = tmp.path().join("main");
    let lonely_dir = tmp.path().join("lonely");
    std::fs::create_dir_all(&main_dir).unwrap();
    std::fs::create_dir_all(&lonely_dir).unwrap();
    let main = Prometheus::start(&prom_bin, &main_dir, &config("main", &targets), &[]).await;
    let lonely = Prometheus::start(
        &prom_bin,
        &lonely_dir,
        &config("lonely", &[("down", dead.clone())]),
        &[],
    )
    .await;

    // The growing build's Development Tools finishes (with an error) once Prometheus has
    // scraped the build without it.
    eventually(DEADLINE, "growing scraped with 4 errors", || {
        let main = &main;
        async move {
            main.value("container_build_errors_total_all{build=\"growing\"}", None)
                .await
                .filter(|v| *v == 4.0)
        }
    })
    .await;
    for name in [
        "development-tools-install.log",
        "development-tools-errors.log",
        "development-tools-summary.log",
    ] {
        std::fs::copy(src.join(name), growing.join(name)).unwrap();
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(growing.join("master-summary.log"))
        .unwrap();
    writeln!(f, "{}", master[3]).unwrap();
    drop(f);

    for (name, hold) in &rules {
        let (_, fire, quiet) = ALERT_CASES.iter().find(|(n, _, _)| n == name).unwrap();
        let states: &[&str] = if *hold == 0.0 {
            &["firing"]
        } else {
            &["pending", "firing"]
        };
        let alerts = eventually(
            Duration::from_secs(90),
            &format!("{name} active for {fire:?}"),
            || {
                let servers = [(&main, "main"), (&lonely, "lonely")];
                async move {
                    let all = alerts_named(&servers, name).await;
                    all.iter()
                        .any(|(l, s)| matches(l, name, fire) && states.contains(&s.as_str()))
                        .then_some(all)
                }
            },
        )
        .await;
        // A rule evaluated before a server's first scrape (`absent`) is pending there until
        // the next evaluation: where it must not fire, it has to be quiet once that passed.
        eventually(
            Duration::from_secs(10),
            &format!("{name} quiet where it should not fire ({quiet:?}); active: {alerts:?}"),
            || {
                let servers = [(&main, "main"), (&lonely, "lonely")];
                async move {
                    let all = alerts_named(&servers, name).await;
                    (!all.iter().any(|(l, _)| matches(l, name, quiet))).then_some(())
                }
            },
        )
        .await;
    }

    // Every query of the Grafana dashboard, its `$instance` set to the failed build's target
    // (a value of its `label_values` query), and every PromQL example of the docs that is not an
    // alert condition (those are the rules above) returns data.
    let instance = &targets.iter().find(|(b, _)| *b == "failure").unwrap().1;
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo().join("pipelines/prometheus/grafana/container-build-dashboard.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let var = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "instance")
        .expect("the dashboard's instance variable");
    let values = var["query"]["query"].as_str().unwrap();
    let (metric, label) = values
        .strip_prefix("label_values(")
        .and_then(|r| r.strip_suffix(')'))
        .and_then(|r| r.split_once(", "))
        .unwrap_or_else(|| panic!("variable query {values}"));
    let offered = main.query(metric, None).await.unwrap();
    assert!(
        offered
            .iter()
            .any(|(l, _, _)| l[label] == instance.as_str()),
        "{instance} not offered by {values}: {offered:?}"
    );
    let mut queries = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"]
                .as_str()
                .unwrap()
                .replace("$instance", instance)
                .replace("$__rate_interval", "1m")
                .replace("$__range", "1h");
            assert!(!expr.contains('$'), "unset variable in {expr}");
            queries.push((format!("dashboard panel {}", p["title"]), expr));
        }
    }
    queries.extend(doc_promql());
    assert!(queries.len() >= 18, "{queries:?}");
    // `rate` and `increase` need two samples in their window: a target scraped once so far
    // has none yet, as a dashboard opened in the build's first second would show.
    let deadline = std::time::Instant::now() + DEADLINE;
    let empty = loop {
        let mut empty = Vec::new();
        for (where_, q) in &queries {
            match main.query(q, None).await {
                Ok(r) if r.is_empty() => empty.push(format!("{where_}: no data: {q}")),
                Ok(_) => {}
                Err(e) => empty.push(format!("{where_}: refused: {q}: {e}")),
            }
        }
        if empty.is_empty() || std::time::Instant::now() > deadline {
            break empty;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(empty.is_empty(), "{}", empty.join("\n"));
    for s in &mut serves {
        assert!(s.alive(), "serve died:\n{}", s.log_text());
    }
}

/// PromQL written inline in `docs/` and its runbooks: code spans that query a `container_`
/// metric, apart from alert conditions (a comparison, `absent`) and the runbooks' `expression`
/// rows, which the alert test runs as rules.
fn doc_promql() -> Vec<(String, String)> {
    let mut files = Vec::new();
    for dir in ["docs", "docs/runbooks"] {
        for e in std::fs::read_dir(repo().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "md") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let name = f.strip_prefix(repo()).unwrap().display().to_string();
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            if line.starts_with("| expression |") {
                continue;
            }
            for (i, span) in line.split('`').enumerate() {
                let condition = [" > ", " < ", " == ", "absent("]
                    .iter()
                    .any(|c| span.contains(c));
                if i % 2 == 1
                    && span.contains("container_")
                    && (span.contains('(') || span.contains('{'))
                    && !condition
                {
                    out.push((name.clone(), span.to_string()));
                }
            }
        }
    }
    out
}

/// The active alerts called `name` of each server, with the server's name as label
/// `prometheus` (external labels are added only to alerts sent out, not in the API).
async fn alerts_named(
    servers: &[(&Prometheus, &str)],
    name: &str,
) -> Vec<(serde_json::Value, String)> {
    let mut all = Vec::new();
    for (p, server) in servers {
        for (mut labels, state) in active_alerts(p).await {
            labels["prometheus"] = (*server).into();
            if labels["alertname"] == name {
                all.push((labels, state));
            }
        }
    }
    all
}

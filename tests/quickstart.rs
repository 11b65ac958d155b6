//! The quickstart stack in pipelines/compose/ holds together: every file it mounts exists in
//! the repository, the data sources link to each other by uids that exist, the dashboards it
//! provisions are dashboards, and Prometheus scrapes the job the alert rules expect.

use serde_yaml::Value;
use std::path::{Path, PathBuf};

fn compose_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/compose")
}

fn yaml(p: &Path) -> Value {
    serde_yaml::from_str(
        &std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn every_mounted_file_exists_and_every_service_is_there() {
    let compose = yaml(&compose_dir().join("docker-compose.yml"));
    let services = compose["services"].as_mapping().unwrap();
    for s in ["loki", "tempo", "prometheus", "grafana"] {
        assert!(services.contains_key(s), "no {s}");
    }
    let mut mounts = 0;
    for (name, svc) in services {
        for v in svc["volumes"].as_sequence().into_iter().flatten() {
            let spec = v.as_str().unwrap();
            let src = spec.split(':').next().unwrap();
            if src.starts_with('.') {
                let p = compose_dir().join(src);
                assert!(p.exists(), "{name:?}: {src} does not exist");
                mounts += 1;
            }
        }
        // Published ports stay on the loopback interface.
        for p in svc["ports"].as_sequence().into_iter().flatten() {
            assert!(
                p.as_str().unwrap().starts_with("127.0.0.1:"),
                "{name:?}: {p:?}"
            );
        }
    }
    assert!(mounts >= 8, "{mounts}");
}

#[test]
fn data_sources_link_logs_and_traces_both_ways() {
    let ds = yaml(&compose_dir().join("grafana/provisioning/datasources/datasources.yaml"));
    let list = ds["datasources"].as_sequence().unwrap();
    let uid = |t: &str| {
        list.iter()
            .find(|d| d["type"] == t)
            .unwrap_or_else(|| panic!("no {t} data source"))["uid"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (loki, tempo) = (uid("loki"), uid("tempo"));
    uid("prometheus");
    let loki_ds = list.iter().find(|d| d["type"] == "loki").unwrap();
    let derived = &loki_ds["jsonData"]["derivedFields"][0];
    assert_eq!(derived["datasourceUid"].as_str().unwrap(), tempo);
    assert_eq!(derived["matcherRegex"].as_str().unwrap(), "trace_id");
    let tempo_ds = list.iter().find(|d| d["type"] == "tempo").unwrap();
    assert_eq!(
        tempo_ds["jsonData"]["tracesToLogsV2"]["datasourceUid"]
            .as_str()
            .unwrap(),
        loki
    );
}

#[test]
fn provisioned_dashboards_are_dashboards() {
    let compose = yaml(&compose_dir().join("docker-compose.yml"));
    let grafana = &compose["services"]["grafana"];
    let mut n = 0;
    for v in grafana["volumes"].as_sequence().unwrap() {
        let spec = v.as_str().unwrap();
        let (src, dst) = (
            spec.split(':').next().unwrap(),
            spec.split(':').nth(1).unwrap(),
        );
        if dst.starts_with("/var/lib/grafana/dashboards/") {
            let d: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(compose_dir().join(src)).unwrap())
                    .unwrap();
            assert!(
                d["title"].is_string() && d["panels"].as_array().is_some_and(|p| !p.is_empty()),
                "{src}"
            );
            n += 1;
        }
    }
    assert_eq!(n, 2);
    let prov = yaml(&compose_dir().join("grafana/provisioning/dashboards/dashboards.yaml"));
    assert_eq!(
        prov["providers"][0]["options"]["path"].as_str().unwrap(),
        "/var/lib/grafana/dashboards"
    );
}

#[test]
fn prometheus_scrapes_the_job_the_rules_watch() {
    let p = yaml(&compose_dir().join("prometheus.yml"));
    let jobs: Vec<&str> = p["scrape_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|j| j["job_name"].as_str().unwrap())
        .collect();
    assert!(jobs.contains(&"container-build"));
    let rules = std::fs::read_to_string(
        compose_dir().join("../prometheus/rules/container-build.rules.yml"),
    )
    .unwrap();
    assert!(rules.contains("job=\"container-build\""));
    // Loki and Tempo accept what buildlog sends: structured metadata and OTLP.
    let loki = yaml(&compose_dir().join("loki.yaml"));
    assert_eq!(
        loki["limits_config"]["allow_structured_metadata"],
        Value::Bool(true)
    );
    assert_eq!(
        loki["limits_config"]["reject_old_samples"],
        Value::Bool(false)
    );
    let tempo = yaml(&compose_dir().join("tempo.yaml"));
    assert!(tempo["distributor"]["receivers"]["otlp"]["protocols"]["http"].is_mapping());
}

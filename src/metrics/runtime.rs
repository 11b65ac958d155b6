//! The runtime metrics of `serve`, as the bash exporter had them: uptime, a health check
//! command with a timeout, disk usage of a few directories, and the scrape time.

use super::{Family, Kind, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where the bash exporter kept the container's start time; honoured when present so that
/// uptime survives an exporter restart, as it did.
pub const START_TIME_FILE: &str = "/tmp/container-start-time";

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Run with `sh -c`; exit 0 is healthy. `None`: no health metrics.
    pub health_command: Option<String>,
    pub health_timeout: Duration,
    /// Directories whose usage is reported, when they exist.
    pub disk_paths: Vec<PathBuf>,
    /// Unix seconds the container (or, failing that, this process) started.
    pub start_time: f64,
}

impl RuntimeConfig {
    /// The container start from the bash exporter's file when it holds a number, else now.
    pub fn start_time_from(file: &Path) -> f64 {
        std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v > 0.0)
            .unwrap_or_else(unix_now)
    }

    /// The bash exporter's health check: `healthcheck --quick` when `healthcheck` is on PATH.
    pub fn default_health_command() -> Option<String> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .any(|d| d.join("healthcheck").is_file())
            .then(|| "healthcheck --quick".to_string())
    }
}

/// The slow part of the runtime metrics, refreshed in the background, not per scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeSample {
    /// Healthy, and how long the check took in seconds.
    pub health: Option<(bool, f64)>,
    /// (path as configured, bytes) for each configured path that exists.
    pub disk: Vec<(String, u64)>,
}

impl RuntimeSample {
    pub async fn collect(cfg: &RuntimeConfig) -> RuntimeSample {
        let health = match &cfg.health_command {
            Some(cmd) => Some(run_health(cmd, cfg.health_timeout).await),
            None => None,
        };
        let paths = cfg.disk_paths.clone();
        let disk = tokio::task::spawn_blocking(move || {
            paths
                .iter()
                .filter(|p| p.is_dir())
                .map(|p| (p.display().to_string(), disk_usage(p)))
                .collect()
        })
        .await
        .unwrap_or_default();
        RuntimeSample { health, disk }
    }
}

/// Runs the health command; a non-zero exit, a failure to start or a timeout is unhealthy.
pub async fn run_health(cmd: &str, timeout: Duration) -> (bool, f64) {
    let started = Instant::now();
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let ok = match child {
        Ok(mut child) => match tokio::time::timeout(timeout, child.wait()).await {
            Ok(Ok(status)) => status.success(),
            Ok(Err(_)) => false,
            Err(_) => {
                tracing::warn!("health command timed out after {timeout:?}");
                let _ = child.kill().await;
                false
            }
        },
        Err(e) => {
            tracing::warn!("health command could not start: {e}");
            false
        }
    };
    (ok, started.elapsed().as_secs_f64())
}

/// Apparent size of the files under `path` (as `du -sb`), symlinks not followed, unreadable
/// entries skipped.
pub fn disk_usage(path: &Path) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        total = total.saturating_add(meta.len());
        if meta.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
    total
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Uptime, health and disk families (scrape time is separate: the bash exporter put it last).
pub fn runtime_families(cfg: &RuntimeConfig, sample: &RuntimeSample, now: f64) -> Vec<Family> {
    let mut out = Vec::new();
    let mut up = Family::new(
        "container_uptime_seconds",
        "Container uptime in seconds",
        Kind::Gauge,
    );
    up.push(
        vec![],
        Value::Gauge((now - cfg.start_time).max(0.0).floor()),
    );
    out.push(up);
    if let Some((ok, secs)) = sample.health {
        let mut status = Family::new(
            "container_healthcheck_status",
            "Current health status (1=healthy, 0=unhealthy)",
            Kind::Gauge,
        );
        status.push(vec![], Value::Gauge(if ok { 1.0 } else { 0.0 }));
        let mut duration = Family::new(
            "container_healthcheck_duration_seconds",
            "Time taken for last healthcheck",
            Kind::Gauge,
        );
        duration.push(vec![], Value::Gauge((secs * 1000.0).round() / 1000.0));
        out.extend([status, duration]);
    }
    if !sample.disk.is_empty() {
        let mut disk = Family::new(
            "container_disk_usage_bytes",
            "Disk space used by container directories",
            Kind::Gauge,
        );
        for (path, bytes) in &sample.disk {
            disk.push(vec![("path", path.clone())], Value::Gauge(*bytes as f64));
        }
        out.push(disk);
    }
    out
}

pub fn scrape_timestamp_family(now: f64) -> Family {
    let mut f = Family::new(
        "container_metrics_scrape_timestamp_seconds",
        "Unix timestamp of metrics collection",
        Kind::Gauge,
    );
    f.push(vec![], Value::Gauge(now.floor()));
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_usage_counts_file_bytes_and_skips_symlink_targets() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![0u8; 1000]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b"), vec![0u8; 234]).unwrap();
        let big = tempfile::tempdir().unwrap();
        std::fs::write(big.path().join("huge"), vec![0u8; 100_000]).unwrap();
        std::os::unix::fs::symlink(big.path(), dir.path().join("link")).unwrap();
        let n = disk_usage(dir.path());
        assert!((1234..1234 + 3 * 4096 + 200).contains(&n), "{n}");
        assert_eq!(disk_usage(&dir.path().join("missing")), 0);
    }

    #[tokio::test]
    async fn health_command_exit_codes_and_timeout() {
        assert!(run_health("exit 0", Duration::from_secs(5)).await.0);
        assert!(!run_health("exit 3", Duration::from_secs(5)).await.0);
        let (ok, secs) = run_health("sleep 5", Duration::from_millis(200)).await;
        assert!(!ok);
        assert!(secs < 4.0, "the timeout did not stop the wait: {secs}");
    }

    #[test]
    fn start_time_file_is_honoured_when_it_holds_a_number() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("start");
        std::fs::write(&f, "1700000000\n").unwrap();
        assert_eq!(RuntimeConfig::start_time_from(&f), 1_700_000_000.0);
        std::fs::write(&f, "yesterday").unwrap();
        assert!(RuntimeConfig::start_time_from(&f) > 1_700_000_000.0);
    }

    #[test]
    fn families_follow_what_was_collected() {
        let cfg = RuntimeConfig {
            health_command: None,
            health_timeout: Duration::from_secs(1),
            disk_paths: vec![],
            start_time: 1000.0,
        };
        let none = runtime_families(&cfg, &RuntimeSample::default(), 1060.5);
        assert_eq!(none.len(), 1);
        assert_eq!(none[0].series[0].value, Value::Gauge(60.0));
        let s = RuntimeSample {
            health: Some((false, 0.0123)),
            disk: vec![("/cache".into(), 42)],
        };
        let names: Vec<_> = runtime_families(&cfg, &s, 1060.0)
            .iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(
            names,
            [
                "container_uptime_seconds",
                "container_healthcheck_status",
                "container_healthcheck_duration_seconds",
                "container_disk_usage_bytes"
            ]
        );
    }
}

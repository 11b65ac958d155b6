//! `report --compare OLD NEW`: per feature and per command, how the duration changed, which
//! commands newly failed, which diagnostics are new. `--max-regression PCT` turns a feature
//! that got slower by more than PCT percent into a non-zero exit code (a CI gate).
//!
//! Features are matched by name, commands by feature and number (and description, so a
//! renumbered command is not compared with another one). A feature's duration is its
//! `feature_end`'s; a percentage needs an old duration above zero (the logger's durations are
//! whole seconds, so a 0 s feature has none).

use super::model::{BuildReport, CommandReport};
use super::text::human;
use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Comparison {
    pub old: String,
    pub new: String,
    pub old_status: String,
    pub new_status: String,
    pub old_duration_seconds: f64,
    pub new_duration_seconds: f64,
    pub features: Vec<FeatureDelta>,
    pub new_failures: Vec<String>,
    /// Diagnostic lines in NEW that OLD does not have, per feature (`error: ...`).
    pub new_diagnostics: Vec<(String, String)>,
    /// Features slower by more than `--max-regression`.
    pub regressions: Vec<String>,
    pub max_regression_percent: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FeatureDelta {
    pub feature: String,
    pub old_seconds: Option<f64>,
    pub new_seconds: Option<f64>,
    pub delta_seconds: Option<f64>,
    pub delta_percent: Option<f64>,
    pub old_status: Option<String>,
    pub new_status: Option<String>,
    pub commands: Vec<CommandDelta>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CommandDelta {
    pub command_num: u32,
    pub description: String,
    pub old_seconds: Option<f64>,
    pub new_seconds: Option<f64>,
    pub delta_seconds: Option<f64>,
    pub delta_percent: Option<f64>,
    pub old_status: Option<String>,
    pub new_status: Option<String>,
}

impl Comparison {
    /// Nothing changed: same durations, same statuses, nothing new.
    pub fn unchanged(&self) -> bool {
        self.new_failures.is_empty()
            && self.new_diagnostics.is_empty()
            && self.old_status == self.new_status
            && self.features.iter().all(|f| {
                f.delta_seconds.is_none_or(|d| d == 0.0)
                    && f.old_status == f.new_status
                    && f.commands.iter().all(|c| {
                        c.delta_seconds.is_none_or(|d| d == 0.0) && c.old_status == c.new_status
                    })
            })
    }
}

fn delta(old: Option<f64>, new: Option<f64>) -> (Option<f64>, Option<f64>) {
    match (old, new) {
        (Some(o), Some(n)) => {
            let d = round3(n - o);
            (Some(d), (o > 0.0).then(|| round3((n - o) / o * 100.0)))
        }
        _ => (None, None),
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn same_command(a: &CommandReport, b: &CommandReport) -> bool {
    a.command_num == b.command_num && a.description == b.description
}

/// Compares two builds.
pub fn compare(old: &BuildReport, new: &BuildReport, max_regression: Option<f64>) -> Comparison {
    let mut names: Vec<&str> = old.features.iter().map(|f| f.feature.as_str()).collect();
    for f in &new.features {
        if !names.contains(&f.feature.as_str()) {
            names.push(&f.feature);
        }
    }
    let mut features = Vec::new();
    let mut new_failures = Vec::new();
    let mut new_diagnostics = Vec::new();
    let mut regressions = Vec::new();
    for name in names {
        let (of, nf) = (old.feature(name), new.feature(name));
        let (os, ns) = (
            of.and_then(|f| f.duration_seconds),
            nf.and_then(|f| f.duration_seconds),
        );
        let (d, p) = delta(os, ns);
        if let (Some(limit), Some(p)) = (max_regression, p) {
            if p > limit {
                regressions.push(format!(
                    "{name}: {} -> {} (+{p:.1}%, limit {limit}%)",
                    human(os.unwrap_or(0.0)),
                    human(ns.unwrap_or(0.0))
                ));
            }
        }
        let mut commands = Vec::new();
        let empty = Vec::new();
        let ocs = of.map(|f| &f.commands).unwrap_or(&empty);
        let ncs = nf.map(|f| &f.commands).unwrap_or(&empty);
        for c in ocs {
            let m = ncs.iter().find(|n| same_command(c, n));
            let (d, p) = delta(c.duration_seconds, m.and_then(|n| n.duration_seconds));
            commands.push(CommandDelta {
                command_num: c.command_num,
                description: c.description.clone(),
                old_seconds: c.duration_seconds,
                new_seconds: m.and_then(|n| n.duration_seconds),
                delta_seconds: d,
                delta_percent: p,
                old_status: Some(c.status.clone()),
                new_status: m.map(|n| n.status.clone()),
            });
        }
        for n in ncs {
            let old_c = ocs.iter().find(|c| same_command(c, n));
            if old_c.is_none() {
                commands.push(CommandDelta {
                    command_num: n.command_num,
                    description: n.description.clone(),
                    old_seconds: None,
                    new_seconds: n.duration_seconds,
                    delta_seconds: None,
                    delta_percent: None,
                    old_status: None,
                    new_status: Some(n.status.clone()),
                });
            }
            if n.failed() && old_c.is_none_or(|c| !c.failed()) {
                new_failures.push(format!(
                    "{name} #{} {}: {}",
                    n.command_num,
                    n.description,
                    n.outcome.clone().unwrap_or_else(|| n.status.clone())
                ));
            }
        }
        if let Some(nf) = nf {
            let old_lines: &[String] = of.map(|f| f.diagnostic_lines.as_slice()).unwrap_or(&[]);
            for l in &nf.diagnostic_lines {
                if !old_lines.contains(l) {
                    new_diagnostics.push((name.to_string(), l.clone()));
                }
            }
        }
        features.push(FeatureDelta {
            feature: name.to_string(),
            old_seconds: os,
            new_seconds: ns,
            delta_seconds: d,
            delta_percent: p,
            old_status: of.map(|f| f.status.clone()),
            new_status: nf.map(|f| f.status.clone()),
            commands,
        });
    }
    Comparison {
        old: old.correlation_id.clone(),
        new: new.correlation_id.clone(),
        old_status: old.status.clone(),
        new_status: new.status.clone(),
        old_duration_seconds: old.duration_seconds,
        new_duration_seconds: new.duration_seconds,
        features,
        new_failures,
        new_diagnostics,
        regressions,
        max_regression_percent: max_regression,
    }
}

fn signed(d: f64) -> String {
    if d >= 0.0 {
        format!("+{}", human(d))
    } else {
        format!("-{}", human(-d))
    }
}

fn opt(s: Option<f64>) -> String {
    s.map(human).unwrap_or_else(|| "–".into())
}

/// The comparison for people.
pub fn render(c: &Comparison) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "Comparing {} (old) with {} (new)", c.old, c.new);
    let _ = writeln!(
        o,
        "  build: {} -> {}, {} -> {}",
        c.old_status,
        c.new_status,
        human(c.old_duration_seconds),
        human(c.new_duration_seconds)
    );
    if c.unchanged() {
        let _ = writeln!(o, "No change.");
        return o;
    }
    let _ = writeln!(o, "\nFeatures (duration old -> new, change)");
    for f in &c.features {
        let change = match (f.delta_seconds, f.delta_percent) {
            (Some(d), Some(p)) => format!("{} ({p:+.1}%)", signed(d)),
            (Some(d), None) => signed(d),
            _ => "".into(),
        };
        let status = match (&f.old_status, &f.new_status) {
            (Some(a), Some(b)) if a != b => format!("  status {a} -> {b}"),
            (None, Some(_)) => "  new feature".into(),
            (Some(_), None) => "  gone".into(),
            _ => String::new(),
        };
        let _ = writeln!(
            o,
            "  {:<28} {:>9} -> {:<9} {change}{status}",
            f.feature,
            opt(f.old_seconds),
            opt(f.new_seconds)
        );
        for cmd in &f.commands {
            let moved =
                cmd.delta_seconds.is_some_and(|d| d != 0.0) || cmd.old_status != cmd.new_status;
            if !moved {
                continue;
            }
            let change = match (cmd.delta_seconds, cmd.delta_percent) {
                (Some(d), Some(p)) => format!("{} ({p:+.1}%)", signed(d)),
                (Some(d), None) => signed(d),
                _ => "".into(),
            };
            let status = match (&cmd.old_status, &cmd.new_status) {
                (Some(a), Some(b)) if a != b => format!("  {a} -> {b}"),
                (None, Some(_)) => "  new".into(),
                (Some(_), None) => "  gone".into(),
                _ => String::new(),
            };
            let _ = writeln!(
                o,
                "    #{:<3} {:<40} {:>9} -> {:<9} {change}{status}",
                cmd.command_num,
                cmd.description.chars().take(40).collect::<String>(),
                opt(cmd.old_seconds),
                opt(cmd.new_seconds)
            );
        }
    }
    if !c.new_failures.is_empty() {
        let _ = writeln!(o, "\nNew failures");
        for f in &c.new_failures {
            let _ = writeln!(o, "  {f}");
        }
    }
    if !c.new_diagnostics.is_empty() {
        let _ = writeln!(o, "\nNew diagnostics");
        for (f, l) in &c.new_diagnostics {
            let _ = writeln!(o, "  {f}: {l}");
        }
    }
    if let Some(limit) = c.max_regression_percent {
        if c.regressions.is_empty() {
            let _ = writeln!(o, "\nNo feature got slower by more than {limit}%.");
        } else {
            let _ = writeln!(o, "\nSlower by more than {limit}%:");
            for r in &c.regressions {
                let _ = writeln!(o, "  {r}");
            }
        }
    }
    o
}

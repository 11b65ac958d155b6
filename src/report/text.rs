//! The terminal summary: per build, its status and wall time, a timeline of its features as
//! proportional bars, the slowest commands, every failed command with its last output lines,
//! and the diagnostic counts per feature. Colour only when asked (a terminal, no `NO_COLOR`).

use super::model::{BuildReport, Report};
use std::fmt::Write;

/// Width of the timeline's bars, in characters.
const BAR: usize = 40;
/// How many of the slowest commands are listed.
const SLOWEST: usize = 5;

struct Paint(bool);

impl Paint {
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn red(&self, s: &str) -> String {
        self.wrap("1;31", s)
    }
    fn green(&self, s: &str) -> String {
        self.wrap("1;32", s)
    }
    fn yellow(&self, s: &str) -> String {
        self.wrap("33", s)
    }
    fn dim(&self, s: &str) -> String {
        self.wrap("2", s)
    }
    fn bold(&self, s: &str) -> String {
        self.wrap("1", s)
    }
}

/// `1.5s`, `4m05s`, `1h02m03s`.
pub fn human(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "?".into();
    }
    let s = seconds.round() as u64;
    if seconds < 60.0 {
        if seconds.fract() == 0.0 {
            format!("{s}s")
        } else {
            format!("{seconds:.1}s")
        }
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60)
    }
}

fn status_word(p: &Paint, failed: bool) -> String {
    if failed {
        p.red("FAILED")
    } else {
        p.green("success")
    }
}

/// Renders the whole report.
pub fn render(r: &Report, colour: bool) -> String {
    let p = Paint(colour);
    let mut out = String::new();
    if r.builds.is_empty() {
        out.push_str("No builds found in the input.\n");
    }
    for (i, b) in r.builds.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        build(&mut out, &p, b);
    }
    out
}

fn pad(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n >= width {
        s.chars().take(width).collect()
    } else {
        format!("{s}{}", " ".repeat(width - n))
    }
}

fn build(out: &mut String, p: &Paint, b: &BuildReport) {
    let commands: usize = b.features.iter().map(|f| f.commands.len()).sum();
    let _ = writeln!(
        out,
        "{} {}  {}  {}  ({} features, {} commands, {} failed)",
        p.bold("Build"),
        b.correlation_id,
        status_word(p, b.failed()),
        human(b.duration_seconds),
        b.features.len(),
        commands,
        b.failures.len(),
    );
    let _ = writeln!(out, "  {} .. {}", b.start, b.end);
    for why in &b.failed_because {
        let _ = writeln!(out, "  {} {why}", p.red("failed because:"));
    }

    // Timeline.
    let total = (b.end_ms - b.start_ms).max(1) as f64;
    let name_w = b
        .features
        .iter()
        .map(|f| f.feature.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(8, 28);
    let _ = writeln!(out, "\n{}", p.bold("Timeline"));
    for f in &b.features {
        let start = f.start_ms.unwrap_or(b.start_ms) - b.start_ms;
        let end = f
            .end_ms
            .unwrap_or_else(|| {
                f.commands
                    .iter()
                    .filter_map(|c| c.end_ms.or(c.start_ms))
                    .max()
                    .unwrap_or(b.end_ms)
            })
            .max(start + b.start_ms)
            - b.start_ms;
        let from = (((start as f64 / total) * BAR as f64).floor() as usize).min(BAR - 1);
        let to = (((end as f64 / total) * BAR as f64).ceil() as usize).clamp(from + 1, BAR);
        let bar = format!(
            "{}{}{}",
            " ".repeat(from),
            "█".repeat(to - from),
            " ".repeat(BAR - to)
        );
        let bar = if f.failed() {
            p.red(&bar)
        } else {
            p.green(&bar)
        };
        let dur = f
            .duration_seconds
            .map(human)
            .unwrap_or_else(|| "unfinished".into());
        let mut note = String::new();
        if f.failed() {
            note = format!("  {}", p.red("FAILED"));
        }
        let _ = writeln!(
            out,
            "  {} |{bar}| {:>9}{note}",
            pad(&f.feature, name_w),
            dur
        );
    }

    // Slowest commands.
    let mut all: Vec<(&str, &super::model::CommandReport)> = b
        .features
        .iter()
        .flat_map(|f| f.commands.iter().map(move |c| (f.feature.as_str(), c)))
        .filter(|(_, c)| c.duration_seconds.is_some())
        .collect();
    all.sort_by(|a, b| {
        b.1.duration_seconds
            .partial_cmp(&a.1.duration_seconds)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    if !all.is_empty() {
        let _ = writeln!(out, "\n{}", p.bold("Slowest commands"));
        for (feature, c) in all.iter().take(SLOWEST) {
            let _ = writeln!(
                out,
                "  {:>9}  {feature} #{} {}",
                human(c.duration_seconds.unwrap_or(0.0)),
                c.command_num,
                c.description
            );
        }
    }

    // Failed commands.
    if !b.failures.is_empty() {
        let _ = writeln!(out, "\n{}", p.bold("Failed commands"));
        for f in &b.failures {
            let exit = match f.exit_code {
                _ if f.outcome.contains("exit") => String::new(),
                Some(c) => format!(" (exit {c})"),
                None => " (no exit code)".into(),
            };
            let _ = writeln!(
                out,
                "  {} #{} {}: {}{exit}",
                f.feature,
                f.command_num,
                f.description,
                p.red(&f.outcome)
            );
            for l in &f.last_output {
                let _ = writeln!(out, "    {} {}", p.dim("│"), l);
            }
        }
    }

    // Diagnostics.
    let _ = writeln!(
        out,
        "\n{}  {}",
        p.bold("Diagnostics"),
        p.dim("(lines that are errors or warnings by their tool's own format)")
    );
    let with: Vec<_> = b
        .features
        .iter()
        .filter(|f| f.diagnostic_errors + f.diagnostic_warnings > 0)
        .collect();
    if with.is_empty() {
        let _ = writeln!(out, "  none");
    } else {
        let _ = writeln!(
            out,
            "  {} {:>7} {:>9}",
            pad("feature", name_w),
            "errors",
            "warnings"
        );
        for f in with {
            let e = format!("{:>7}", f.diagnostic_errors);
            let e = if f.diagnostic_errors > 0 {
                p.red(&e)
            } else {
                e
            };
            let w = format!("{:>9}", f.diagnostic_warnings);
            let w = if f.diagnostic_warnings > 0 {
                p.yellow(&w)
            } else {
                w
            };
            let _ = writeln!(out, "  {} {e} {w}", pad(&f.feature, name_w));
        }
    }
    let _ = writeln!(
        out,
        "  {}",
        p.dim(&format!(
            "the logger counted {} errors and {} warnings by substring",
            b.logger_errors, b.logger_warnings
        ))
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(human(0.0), "0s");
        assert_eq!(human(2.051), "2.1s");
        assert_eq!(human(65.0), "1m05s");
        assert_eq!(human(1608.403), "26m48s");
        assert_eq!(human(3723.0), "1h02m03s");
        assert_eq!(human(f64::NAN), "?");
    }
}

//! The logging library's own blocks, which the install log and the `docker build` console
//! both carry: the `Installation Summary` figures and the `<Feature> Configuration Summary`.
//! One reading of each serves both parsers, so the two cannot drift apart.

use crate::event::Event;
use serde_json::{Map, Value};

/// What a line of an `Installation Summary` block was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummaryLine {
    /// One of the figures (kept).
    Figure,
    /// `End Time: ...` (kept; the install log also sets its clock from it).
    EndTime,
    /// `--- First 10 Errors/Warnings ---`: the list follows.
    FirstErrors,
    /// Not a line of the block's grammar.
    Other,
}

/// The figures of an `Installation Summary` block.
#[derive(Debug, Default, Clone)]
pub struct SummaryFigures {
    pub total_duration: Option<u64>,
    pub commands: Option<u64>,
    pub errors: Option<u64>,
    pub warnings: Option<u64>,
    pub first_errors: Vec<String>,
    pub error_log: Option<String>,
    pub end_time: Option<String>,
    pub no_errors: bool,
}

impl SummaryFigures {
    /// Reads one line of the block (not one of its first-errors list).
    pub fn line(&mut self, t: &str) -> SummaryLine {
        // `Total Duration: 145 seconds`, `Errors Found: 2`: the first word is the number.
        let num = |v: &str| {
            v.split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
        };
        if let Some(v) = t.strip_prefix("Total Duration: ") {
            self.total_duration = num(v);
        } else if let Some(v) = t.strip_prefix("Commands Executed: ") {
            self.commands = num(v);
        } else if let Some(v) = t.strip_prefix("Errors Found: ") {
            self.errors = num(v);
        } else if let Some(v) = t.strip_prefix("Warnings Found: ") {
            self.warnings = num(v);
        } else if t.starts_with("--- First 10 Errors/Warnings ---") {
            return SummaryLine::FirstErrors;
        } else if let Some(v) = t.strip_prefix("Full error log: ") {
            self.error_log = Some(v.to_string());
        } else if t.starts_with("No errors or warnings detected") {
            self.no_errors = true;
        } else if let Some(v) = t.strip_prefix("End Time: ") {
            self.end_time = Some(v.to_string());
            return SummaryLine::EndTime;
        } else {
            return SummaryLine::Other;
        }
        SummaryLine::Figure
    }

    /// The block's texts as a `feature_end`'s details.
    pub fn add_details(self, e: &mut Event) {
        if !self.first_errors.is_empty() {
            e.details
                .insert("first_errors".into(), self.first_errors.into());
        }
        if let Some(p) = self.error_log {
            e.details.insert("error_log".into(), p.into());
        }
        if let Some(t) = self.end_time {
            e.details.insert("end_time".into(), t.into());
        }
        if self.no_errors {
            e.details.insert("no_errors_detected".into(), true.into());
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Section {
    #[default]
    None,
    Paths,
    Env,
    NextSteps,
}

/// A `<Feature> Configuration Summary` block, read line by line into a `feature_summary`'s
/// metadata: `version`, `tools`, `commands`, `paths`, `env`, `log_hint`, `next_steps`, and
/// `other` for lines of no known shape.
#[derive(Debug, Default, Clone)]
pub struct ConfigBlock {
    pub title: String,
    pub line: u64,
    fields: Map<String, Value>,
    section: Section,
    next_steps: Vec<String>,
    other: Vec<String>,
}

impl ConfigBlock {
    pub fn new(title: &str, line: u64) -> Self {
        ConfigBlock {
            title: title.to_string(),
            line,
            ..Default::default()
        }
    }

    /// One line of the block (without its banners).
    pub fn line(&mut self, t: &str) {
        if t.is_empty() {
            // `Next Steps:` items may be separated by blank lines; other lists end there.
            if self.section != Section::NextSteps {
                self.section = Section::None;
            }
            return;
        }
        if let Some(item) = t.strip_prefix("  - ") {
            match self.section {
                Section::Paths => push(&mut self.fields, "paths", item.into()),
                Section::Env => {
                    let (k, v) = item.split_once('=').unwrap_or((item, ""));
                    let env = self
                        .fields
                        .entry("env")
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(m) = env {
                        m.insert(k.to_string(), v.into());
                    }
                }
                Section::NextSteps => self.next_steps.push(item.trim().to_string()),
                Section::None => self.other.push(t.to_string()),
            }
            return;
        }
        let list = |v: &str| -> Value {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(Value::from)
                .collect::<Vec<_>>()
                .into()
        };
        if let Some(v) = t.strip_prefix("Version:") {
            self.fields.insert("version".into(), v.trim().into());
        } else if let Some(v) = t.strip_prefix("Tools:") {
            self.fields.insert("tools".into(), list(v));
        } else if let Some(v) = t.strip_prefix("Commands:") {
            self.fields.insert("commands".into(), list(v));
        } else if t == "Paths:" {
            self.section = Section::Paths;
        } else if t == "Environment Variables:" {
            self.section = Section::Env;
        } else if t == "Next Steps:" {
            self.section = Section::NextSteps;
        } else if t.starts_with("Run 'check-build-logs.sh") {
            self.section = Section::None;
            self.fields.insert("log_hint".into(), t.into());
        } else if self.section == Section::NextSteps {
            self.next_steps.push(t.trim().to_string());
        } else {
            self.other.push(t.to_string());
        }
    }

    /// The metadata of its `feature_summary` event.
    pub fn into_metadata(self) -> Map<String, Value> {
        let mut m = self.fields;
        if !self.next_steps.is_empty() {
            m.insert("next_steps".into(), self.next_steps.into());
        }
        if !self.other.is_empty() {
            m.insert("other".into(), self.other.into());
        }
        m
    }
}

fn push(fields: &mut Map<String, Value>, key: &str, v: Value) {
    if let Value::Array(a) = fields
        .entry(key)
        .or_insert_with(|| Value::Array(Vec::new()))
    {
        a.push(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_figures() {
        let mut s = SummaryFigures::default();
        assert_eq!(s.line("Total Duration: 145 seconds"), SummaryLine::Figure);
        assert_eq!(s.line("Commands Executed: 7"), SummaryLine::Figure);
        assert_eq!(s.line("Errors Found: 2"), SummaryLine::Figure);
        assert_eq!(s.line("Warnings Found: 0"), SummaryLine::Figure);
        assert_eq!(
            s.line("No errors or warnings detected!"),
            SummaryLine::Figure
        );
        assert_eq!(
            s.line("--- First 10 Errors/Warnings ---"),
            SummaryLine::FirstErrors
        );
        assert_eq!(
            s.line("End Time: 2025-11-16 19:33:10"),
            SummaryLine::EndTime
        );
        assert_eq!(s.line("something else"), SummaryLine::Other);
        assert_eq!(
            (
                s.total_duration,
                s.commands,
                s.errors,
                s.warnings,
                s.no_errors
            ),
            (Some(145), Some(7), Some(2), Some(0), true)
        );
    }

    #[test]
    fn configuration_block() {
        let mut c = ConfigBlock::new("Python Configuration Summary", 40);
        for l in [
            "Version: 3.12.1",
            "Tools: pip, poetry",
            "Paths:",
            "  - /usr/local/bin",
            "",
            "Environment Variables:",
            "  - PIP_INDEX_URL=https://x",
            "Next Steps:",
            "  - run python",
            "",
            "  - then pip",
            "Run 'check-build-logs.sh python' to review the logs",
            "stray line",
        ] {
            c.line(l);
        }
        let m = c.into_metadata();
        assert_eq!(m["version"], "3.12.1");
        assert_eq!(m["tools"], serde_json::json!(["pip", "poetry"]));
        assert_eq!(m["paths"], serde_json::json!(["/usr/local/bin"]));
        assert_eq!(m["env"]["PIP_INDEX_URL"], "https://x");
        assert_eq!(
            m["next_steps"],
            serde_json::json!(["run python", "then pip"])
        );
        assert_eq!(m["other"], serde_json::json!(["stray line"]));
        assert!(m["log_hint"]
            .as_str()
            .unwrap()
            .starts_with("Run 'check-build-logs.sh"));
    }
}

//! `buildlog report`: a build's status, timeline, slowest and failed commands and diagnostics,
//! as text, JSON or a self-contained HTML page; or two builds compared.

use super::exit;
use super::input::InputArgs;
use super::UsageError;
use crate::build::parse_inputs;
use crate::parse::ParseOptions;
use crate::report::{compare, html, json, text, Report, ReportBuilder};
use crate::source::{Input, Progress};
use anyhow::Context;
use clap::Args;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  buildlog report /var/log/container-build
  buildlog report --json events.jsonl
  buildlog report --html timeline.html builds/
  buildlog report --compare yesterday/ today/ --max-regression 20

Exit codes: 0 ok, 1 some input unreadable, 2 usage, 4 failure,
5 a feature got slower than --max-regression allows.")]
pub struct ReportArgs {
    #[command(flatten)]
    pub input: InputArgs,

    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,

    /// Also write a self-contained HTML page with a timeline of every build here.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Compare two builds (directories, log files or events files): duration changes per
    /// feature and command, new failures, new diagnostics.
    #[arg(long, num_args = 2, value_names = ["OLD", "NEW"], conflicts_with = "html")]
    pub compare: Option<Vec<PathBuf>>,

    /// With --compare: exit with 5 when a feature got slower by more than PCT percent.
    #[arg(long, value_name = "PCT", requires = "compare")]
    pub max_regression: Option<f64>,
}

fn read(inputs: &[Input], opts: &ParseOptions, quiet: bool) -> (Report, Vec<String>) {
    let mut b = ReportBuilder::new();
    let mut progress = Progress::new(quiet);
    let r = parse_inputs(inputs, opts, &mut progress, &mut |e| {
        b.observe(e);
        Ok(())
    });
    (b.finish(), r.errors)
}

pub fn run(args: ReportArgs) -> anyhow::Result<i32> {
    let opts = args.input.parse_options()?;
    if let Some(m) = args.max_regression {
        if !m.is_finite() || m < 0.0 {
            return Err(UsageError("--max-regression must be a percentage >= 0".into()).into());
        }
    }
    let mut out = std::io::stdout().lock();
    if let Some(pair) = &args.compare {
        if !args.input.paths.is_empty() {
            return Err(
                UsageError("give either PATHs or --compare OLD NEW, not both".into()).into(),
            );
        }
        let mut sides = Vec::new();
        let mut errors = Vec::new();
        for p in pair {
            let (r, e) = read(&[Input::from_path(p.clone())], &opts, args.input.quiet);
            errors.extend(e);
            match r.builds.into_iter().last() {
                Some(b) => sides.push(b),
                None => {
                    for e in &errors {
                        eprintln!("buildlog: {e}");
                    }
                    return Err(UsageError(format!("{}: no build found", p.display())).into());
                }
            }
        }
        for e in &errors {
            eprintln!("buildlog: {e}");
        }
        let c = compare::compare(&sides[0], &sides[1], args.max_regression);
        let body = if args.json {
            let mut s = serde_json::to_string_pretty(&c)?;
            s.push('\n');
            s
        } else {
            compare::render(&c)
        };
        out.write_all(body.as_bytes())
            .context("writing the report")?;
        return Ok(if !c.regressions.is_empty() {
            exit::REGRESSION
        } else if !errors.is_empty() {
            exit::INPUT_ERROR
        } else {
            exit::OK
        });
    }
    let (report, errors) = read(&args.input.inputs(), &opts, args.input.quiet);
    for e in &errors {
        eprintln!("buildlog: {e}");
    }
    if let Some(path) = &args.html {
        std::fs::write(path, html::render(&report))
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("buildlog: wrote {}", path.display());
    }
    let body = if args.json {
        json::render(&report)
    } else {
        let colour = std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        text::render(&report, colour)
    };
    out.write_all(body.as_bytes())
        .context("writing the report")?;
    out.flush().context("writing the report")?;
    Ok(if errors.is_empty() {
        exit::OK
    } else {
        exit::INPUT_ERROR
    })
}

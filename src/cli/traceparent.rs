//! `buildlog traceparent [PATH]`: the W3C `traceparent` of a build's root span, so that a CI
//! job can put its own spans under the build (`TRACEPARENT=$(buildlog traceparent) otel-cli ...`).

use super::exit;
use super::input::InputArgs;
use crate::enrich::ids;
use crate::error::UsageError;
use crate::sink::otlp::ParentContext;
use clap::Args;

#[derive(Debug, Args)]
#[command(after_help = "\
With --correlation-id or $BUILD_CORRELATION_ID (the build being written) nothing is read.
When $TRACEPARENT is set, `ship --otlp` puts the build under that span, so the trace id
printed is TRACEPARENT's and the span id the build's own.

Examples:
  buildlog traceparent /var/log/container-build
  BUILD_CORRELATION_ID=build-1763321440-k3x9qz buildlog traceparent
  export TRACEPARENT=$(buildlog traceparent /var/log/container-build)")]
pub struct TraceparentArgs {
    #[command(flatten)]
    pub input: InputArgs,
}

/// `00-<trace id>-<build span id>-01` for a correlation id, under `parent` when given.
pub fn traceparent(correlation_id: &str, parent: Option<&ParentContext>) -> String {
    let trace = match parent {
        Some(p) => hex::encode(p.trace_id),
        None => ids::trace_id(correlation_id),
    };
    format!("00-{trace}-{}-01", ids::build_span_id(correlation_id))
}

pub fn run(args: TraceparentArgs) -> anyhow::Result<i32> {
    let parent =
        match std::env::var("TRACEPARENT")
            .ok()
            .filter(|v| !v.trim().is_empty())
        {
            Some(tp) => Some(ParentContext::parse(&tp).ok_or_else(|| {
                UsageError(format!("TRACEPARENT={tp:?} is not a W3C traceparent"))
            })?),
            None => None,
        };
    let opts = args.input.parse_options()?;
    if let Some(id) = &opts.correlation_id {
        println!("{}", traceparent(id, parent.as_ref()));
        return Ok(exit::OK);
    }
    // One line per build, in the order the builds are met.
    let mut seen: Vec<String> = Vec::new();
    let mut progress = crate::source::Progress::new(true);
    let report = crate::build::parse_inputs(&args.input.inputs(), &opts, &mut progress, &mut |e| {
        if !seen.iter().any(|c| **c == *e.correlation_id) {
            seen.push(e.correlation_id.to_string());
        }
        Ok(())
    });
    for e in &report.errors {
        eprintln!("buildlog: {e}");
    }
    for id in &seen {
        println!("{}", traceparent(id, parent.as_ref()));
    }
    if seen.is_empty() {
        eprintln!("buildlog: no build found in the input");
        return Ok(exit::INPUT_ERROR);
    }
    Ok(if report.errors.is_empty() {
        exit::OK
    } else {
        exit::INPUT_ERROR
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_the_build_span() {
        let id = "build-1763321440-k3x9qz";
        let tp = traceparent(id, None);
        let p = ParentContext::parse(&tp).unwrap();
        assert_eq!(hex::encode(p.trace_id), ids::trace_id(id));
        assert_eq!(hex::encode(p.span_id), ids::build_span_id(id));
        let outer = ParentContext::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
            .unwrap();
        assert_eq!(
            traceparent(id, Some(&outer)),
            format!(
                "00-0af7651916cd43dd8448eb211c80319c-{}-01",
                ids::build_span_id(id)
            )
        );
    }
}

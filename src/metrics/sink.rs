//! The fold as a pipeline sink: `pipeline::run` can derive metrics alongside other sinks from
//! one parse (and the bench can measure what deriving metrics adds to `convert`).

use super::MetricsState;
use crate::event::Event;
use crate::sink::{Sink, SinkFuture, SinkReport};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Folds every event it receives into a shared `MetricsState`, read after the run.
#[derive(Debug, Clone, Default)]
pub struct MetricsSink {
    pub state: Arc<Mutex<MetricsState>>,
}

impl MetricsSink {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Sink for MetricsSink {
    fn name(&self) -> String {
        "metrics".into()
    }

    fn run(self: Box<Self>, mut events: mpsc::Receiver<Arc<Event>>) -> SinkFuture {
        Box::pin(async move {
            let mut report = SinkReport::new("metrics");
            let mut local = MetricsState::new();
            let mut taken = Vec::with_capacity(crate::sink::TAKE_AT_ONCE);
            while events
                .recv_many(&mut taken, crate::sink::TAKE_AT_ONCE)
                .await
                > 0
            {
                for e in taken.drain(..) {
                    local.observe(&e);
                    report.received += 1;
                    report.delivered += 1;
                }
            }
            *self.state.lock().unwrap_or_else(|e| e.into_inner()) = local;
            Ok(report)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::ParseOptions;
    use crate::source::Input;
    use std::path::Path;

    #[test]
    fn the_sink_sees_what_a_direct_fold_sees() {
        let dir =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus/build-02-failure");
        let sink = MetricsSink::new();
        let state = sink.state.clone();
        let report = crate::pipeline::run(
            vec![Input::from_path(dir.clone())],
            ParseOptions::default(),
            vec![Box::new(sink)],
            true,
        )
        .unwrap();
        let mut direct = MetricsState::new();
        crate::build::parse_inputs(
            &[Input::from_path(dir)],
            &ParseOptions::default(),
            &mut crate::source::Progress::hidden(),
            &mut |e| {
                direct.observe(e);
                Ok(())
            },
        );
        assert_eq!(report.sinks[0].delivered, direct.events());
        assert!(direct.events() > 10);
        assert_eq!(state.lock().unwrap().families(), direct.families());
    }
}

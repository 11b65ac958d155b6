//! Progress on stderr (files, bytes, events, rate) when stderr is a terminal and the input
//! is large. Never on a pipe or with `--quiet`, so logs of logs stay clean.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

pub struct Progress {
    bar: Option<ProgressBar>,
    enabled: bool,
    started: Instant,
    pub files: u64,
    pub bytes: u64,
    pub events: u64,
}

/// Below this much input no bar is shown: small conversions finish before it would matter.
const SHOW_AFTER: Duration = Duration::from_millis(700);

impl Progress {
    pub fn new(quiet: bool) -> Self {
        Progress {
            bar: None,
            enabled: !quiet && std::io::stderr().is_terminal(),
            started: Instant::now(),
            files: 0,
            bytes: 0,
            events: 0,
        }
    }
    pub fn hidden() -> Self {
        Self::new(true)
    }

    pub fn file_started(&mut self) {
        self.files += 1;
    }

    pub fn add(&mut self, bytes: u64, events: u64) {
        self.bytes += bytes;
        self.events += events;
        if !self.enabled {
            return;
        }
        if self.bar.is_none() && self.started.elapsed() >= SHOW_AFTER {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {msg} [{elapsed}] {binary_bytes} {binary_bytes_per_sec}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            self.bar = Some(bar);
        }
        if let Some(bar) = &self.bar {
            bar.set_position(self.bytes);
            bar.set_message(format!("{} files, {} events", self.files, self.events));
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            let secs = self.started.elapsed().as_secs_f64().max(1e-3);
            eprintln!(
                "buildlog: {} files, {:.1} MB, {} events in {:.1}s ({:.1} MB/s)",
                self.files,
                self.bytes as f64 / 1e6,
                self.events,
                secs,
                self.bytes as f64 / 1e6 / secs
            );
        }
    }
}

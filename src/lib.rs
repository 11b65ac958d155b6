//! buildlog: container-build logs in, structured and correlated events out.
//!
//! The parser is synchronous over byte slices (fast, testable, fuzzable); tokio drives the
//! sources and sinks around it. See `docs/` for the user's view and DESIGN.md for the layout.

pub mod build;
pub mod checkpoint;
/// The command line; it depends on the library, never the reverse.
pub mod cli;
pub mod duration;
pub mod enrich;
pub mod error;
pub mod event;
pub mod fsutil;
pub mod line_bytes;
pub mod live;
pub mod live_metrics;
pub mod metrics;
#[cfg(target_arch = "x86_64")]
mod nibble_filter;
pub mod parse;
pub mod pipeline;
pub mod recent;
pub mod report;
pub mod shared_str;
mod short_eq;
pub mod sink;
pub mod source;
pub mod spool;
#[cfg(test)]
mod test_support;

pub use event::{Event, EventType, Level, SourceRef, Timestamp};

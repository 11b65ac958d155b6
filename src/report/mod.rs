//! `buildlog report`: what happened in a build, for people (`text`), for programs (`json`), as
//! a timeline in a browser (`html`), and against another build (`compare`). Everything is
//! computed from the events (`model`), so the report agrees with what `convert` writes.

pub mod compare;
pub mod html;
pub mod json;
pub mod model;
pub mod text;

pub use model::{build_report, Report, ReportBuilder};

//! Enrichment: correlation and trace ids, event ids, and secret scrubbing, applied to every
//! event a parser produced before it leaves the process.

pub mod ids;
pub mod scrub;

//! Deterministic identifiers: event ids, W3C trace and span ids, derived correlation ids.
//! All come from xxh3 over the build's own bytes, so converting twice gives the same ids.

use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

/// The W3C trace id (32 hex) of a build.
pub fn trace_id(correlation_id: &str) -> String {
    let mut h = xxh3_128(correlation_id.as_bytes());
    if h == 0 {
        h = 1; // all-zero ids are invalid in W3C Trace Context
    }
    format!("{h:032x}")
}

fn span(parts: &[&str]) -> String {
    let mut h = xxh3_64(parts.join("\u{1f}").as_bytes());
    if h == 0 {
        h = 1;
    }
    format!("{h:016x}")
}

/// The span id of the build's root span.
pub fn build_span_id(correlation_id: &str) -> String {
    span(&[correlation_id, "build"])
}

/// The span id of a feature's span.
pub fn feature_span_id(correlation_id: &str, feature: &str) -> String {
    span(&[correlation_id, "feature", feature])
}

/// The span id of a command's span.
pub fn command_span_id(correlation_id: &str, feature: &str, command_num: u32) -> String {
    span(&[correlation_id, "command", feature, &command_num.to_string()])
}

/// The event id: same build, same source file (by its name inside the build), same place
/// in it, same id.
pub fn event_id(
    correlation_id: &str,
    source_name: &str,
    line: u64,
    seq: u64,
    event_type: &str,
) -> String {
    let key =
        format!("{correlation_id}\u{1f}{source_name}\u{1f}{line}\u{1f}{seq}\u{1f}{event_type}");
    format!("{:032x}", xxh3_128(key.as_bytes()))
}

/// A correlation id in the logger's format, `build-<unix seconds>-<6 of [a-z0-9]>`, derived
/// from the build's own content (`seed`).
pub fn derived_correlation_id(start_seconds: i64, seed: &[u8]) -> String {
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut h = xxh3_64(seed);
    let mut suffix = String::with_capacity(6);
    for _ in 0..6 {
        suffix.push(ALPHABET[(h % 36) as usize] as char);
        h /= 36;
    }
    format!("build-{start_seconds}-{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_well_formed() {
        let c = derived_correlation_id(1_763_321_440, b"Python\x1f2025-11-16 19:30:40");
        assert_eq!(
            c,
            derived_correlation_id(1_763_321_440, b"Python\x1f2025-11-16 19:30:40")
        );
        assert_ne!(
            c,
            derived_correlation_id(1_763_321_440, b"Rust\x1f2025-11-16 19:30:40")
        );
        let re = regex::Regex::new(r"^build-1763321440-[a-z0-9]{6}$").unwrap();
        assert!(re.is_match(&c), "{c}");
        assert_eq!(trace_id(&c).len(), 32);
        assert_eq!(feature_span_id(&c, "Python").len(), 16);
        assert_ne!(
            feature_span_id(&c, "Python"),
            command_span_id(&c, "Python", 1)
        );
        assert_ne!(
            event_id(&c, "a", 1, 0, "output"),
            event_id(&c, "a", 1, 1, "output")
        );
    }
}

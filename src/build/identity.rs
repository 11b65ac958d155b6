//! The build's correlation id: one rule for batch, follow and the plugin.
//!
//! In order: `--correlation-id` (or `BUILD_CORRELATION_ID`); the id in
//! `json/build-metadata.json`; the JSON logger's id in the first feature's `json/` file (the
//! feature whose `Start Time` is earliest: builds that set `BUILD_CORRELATION_ID` share it
//! across features, and where each feature had its own the first one's names the build);
//! else one derived from the build's content, `build-<Start Time seconds>-<6 of [a-z0-9]>`,
//! whose suffix hashes the first install log's header and its whole first command block (up
//! to and including its `Exit code:` line, at most `SEED_MAX` bytes). All of these are known
//! once the first feature's first command has ended, so following a build gets the same id
//! as converting it afterwards.

use crate::enrich::ids;
use crate::parse::clock::{parse_date_time, Clock};
use jiff::tz::TimeZone;

/// At most this much of the first install log seeds a derived id.
pub const SEED_MAX: usize = 64 * 1024;

/// The part of an install log's first bytes that seeds a derived id: through the line that
/// starts with `Exit code:`, or whole lines up to `SEED_MAX`. `None` while `bytes` may still
/// grow into a longer seed (`at_end`: they will not).
pub fn seed(bytes: &[u8], at_end: bool) -> Option<&[u8]> {
    let mut pos = 0;
    while pos < bytes.len() {
        let Some(nl) = memchr::memchr(b'\n', &bytes[pos..]) else {
            break;
        };
        let end = pos + nl + 1;
        if end > SEED_MAX {
            return Some(&bytes[..pos]);
        }
        if bytes[pos..].starts_with(b"Exit code:") {
            return Some(&bytes[..end]);
        }
        pos = end;
    }
    if bytes.len() > SEED_MAX {
        return Some(&bytes[..pos]);
    }
    at_end.then_some(bytes)
}

/// Only this much of an install log's start is searched for its `Start Time:`.
pub const START_SCAN: usize = 4096;

/// The `Start Time:` of an install log's header, as UTC seconds in `tz`.
pub fn start_seconds(head: &[u8], tz: &TimeZone) -> Option<i64> {
    let text = String::from_utf8_lossy(&head[..head.len().min(START_SCAN)]);
    let start = text
        .lines()
        .take(8)
        .find_map(|l| l.strip_prefix("Start Time: "))?;
    let (d, t) = parse_date_time(start.trim())?;
    Some(Clock::new(tz.clone()).set_datetime(d, t).seconds())
}

/// The feature an install log's header names (`Feature Installation Log: X`).
pub fn header_feature(head: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(&head[..head.len().min(4096)]);
    text.lines()
        .take(8)
        .find_map(|l| l.strip_prefix("Feature Installation Log: "))
        .map(|f| f.trim_end().to_string())
}

/// The id derived from the first install log's seed.
pub fn derived(seed: &[u8], tz: &TimeZone) -> String {
    ids::derived_correlation_id(start_seconds(seed, tz).unwrap_or(0), seed)
}

/// The `correlation_id` of a `build-metadata.json` (read by the caller, bounded).
pub fn metadata_id(bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    v.get("correlation_id")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "=====\nFeature Installation Log: Python\nVersion: 3.12\nStart Time: 2025-08-12 09:41:07\n=====\n[09:41:07] COMMAND #1: Updating\nExecuting: apt-get update\n-----\nHit:1 http://deb.debian.org bookworm InRelease\n-----\nExit code: 0 (Duration: 1s)\n[09:41:09] COMMAND #2: more\n";

    #[test]
    fn the_seed_is_the_header_and_first_command_block() {
        let s = seed(HEAD.as_bytes(), false).unwrap();
        assert!(std::str::from_utf8(s)
            .unwrap()
            .ends_with("Exit code: 0 (Duration: 1s)\n"));
        // Not yet complete while the first command runs.
        let cut = &HEAD.as_bytes()[..HEAD.find("Exit code").unwrap()];
        assert_eq!(seed(cut, false), None);
        assert_eq!(seed(cut, true), Some(cut));
    }

    #[test]
    fn builds_one_output_line_apart_get_different_ids() {
        let other = HEAD.replace("InRelease", "InRelease [151 kB]");
        let tz = TimeZone::UTC;
        let a = derived(seed(HEAD.as_bytes(), false).unwrap(), &tz);
        let b = derived(seed(other.as_bytes(), false).unwrap(), &tz);
        assert_ne!(a, b);
        assert!(a.starts_with("build-1754991667-"), "{a}");
        assert!(b.starts_with("build-1754991667-"), "{b}");
        // Lines after the first block do not change it.
        let later = format!("{HEAD}some output\n");
        assert_eq!(a, derived(seed(later.as_bytes(), false).unwrap(), &tz));
    }

    #[test]
    fn a_huge_first_command_is_cut_at_a_line() {
        let mut big = HEAD[..HEAD.find("Exit code").unwrap()].to_string();
        while big.len() < SEED_MAX + 10 {
            big.push_str("output line\n");
        }
        let s = seed(big.as_bytes(), false).unwrap();
        assert!(s.len() <= SEED_MAX && s.ends_with(b"\n"));
    }
}

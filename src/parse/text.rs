//! Text helpers shared by the parsers: decoding, ANSI stripping, and the logger's own
//! error/warning patterns.

use regex::bytes::Regex;
use std::borrow::Cow;
use std::sync::LazyLock;

/// The logger's patterns, as its `grep -E` applies them to each output line: substrings
/// count (`libgpg-error0`, `0 failed`, `-Werror=...`).
static ERROR_PATTERN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new("ERROR|Error|error|FAILED|Failed|failed|FATAL|Fatal|fatal").unwrap()
});
static WARN_PATTERN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new("WARNING|Warning|warning|WARN|Warn|warn").unwrap());

/// True when the logger counts this line as an error.
pub fn matches_error(line: &[u8]) -> bool {
    ERROR_PATTERN.is_match(line)
}

/// True when the logger counts this line as a warning.
pub fn matches_warning(line: &[u8]) -> bool {
    WARN_PATTERN.is_match(line)
}

/// Stamps an event with the line it came from and what happened to that line on the way in
/// (cut at `--max-line-bytes`, invalid UTF-8 replaced).
pub fn mark_line(e: &mut crate::event::Event, line: &crate::source::Line<'_>, invalid_utf8: bool) {
    e.source.line = line.number;
    e.invalid_utf8 |= invalid_utf8;
    if let Some(n) = line.original_len {
        e.truncated = true;
        e.original_length = Some(n);
    }
}

/// Bytes to text: borrowed when valid UTF-8; otherwise invalid sequences become U+FFFD and
/// the second value is true (the event is flagged `invalid_utf8`).
pub fn decode(bytes: &[u8]) -> (Cow<'_, str>, bool) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (Cow::Borrowed(s), false),
        Err(_) => (String::from_utf8_lossy(bytes), true),
    }
}

/// Removes ANSI escape sequences (CSI `ESC [ ... final`, OSC `ESC ] ... BEL|ST`, and
/// two-byte `ESC x`). Other control characters are kept: JSON encoding escapes them.
pub fn strip_ansi(s: &str) -> Cow<'_, str> {
    if !s.as_bytes().contains(&0x1b) {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != 0x1b {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'[') => {
                // CSI: parameters and intermediates, then one final byte in 0x40..=0x7e.
                let mut j = i + 2;
                while j < b.len() && !(0x40..=0x7e).contains(&b[j]) {
                    j += 1;
                }
                i = (j + 1).min(b.len());
            }
            Some(b']') => {
                let mut j = i + 2;
                while j < b.len() {
                    if b[j] == 0x07 {
                        j += 1;
                        break;
                    }
                    if b[j] == 0x1b && b.get(j + 1) == Some(&b'\\') {
                        j += 2;
                        break;
                    }
                    j += 1;
                }
                i = j;
            }
            Some(&c) if (0x40..=0x5f).contains(&c) => i += 2,
            _ => i += 1,
        }
    }
    // Only whole ASCII sequences were removed, so the rest is still valid UTF-8.
    Cow::Owned(
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logger_patterns_count_substrings() {
        assert!(matches_error(b"  libgpg-error0 libssl-dev"));
        assert!(matches_error(b"test result: ok. 12 passed; 0 failed"));
        assert!(!matches_error(b"Errno is fine? no: ERRNO"));
        assert!(matches_warning(
            b"  = note: `#[warn(unused_variables)]` on by default"
        ));
        assert!(!matches_warning(b"Downloading poetry"));
    }

    #[test]
    fn strips_colour_but_keeps_text_and_controls() {
        assert_eq!(
            strip_ansi("tflint reported \x1b[33m2 issues\x1b[0m\ttab\x01"),
            "tflint reported 2 issues\ttab\x01"
        );
        assert_eq!(strip_ansi("\x1b]0;title\x07done"), "done");
        assert_eq!(strip_ansi("\x1b[?25lDownloading\x1b[?25h"), "Downloading");
        assert_eq!(strip_ansi("cut \x1b["), "cut ");
    }

    #[test]
    fn invalid_utf8_is_replaced_and_flagged() {
        let (s, bad) = decode(b"caf\xe9");
        assert!(bad);
        assert_eq!(s, "caf\u{fffd}");
        assert!(!decode("café".as_bytes()).1);
    }
}

//! Text helpers shared by the parsers: decoding, ANSI stripping, and the logger's own
//! error/warning patterns.

use crate::enrich::scrub::AnchorScan;
#[cfg(target_arch = "x86_64")]
use crate::enrich::scrub::{LineScanner, Scrubber};
use crate::line_bytes::LineBytes;
use aho_corasick::{AhoCorasick, MatchKind};
use std::borrow::Cow;
use std::sync::LazyLock;

/// The logger's patterns, as its `grep -E` applies them to each output line: substrings
/// count (`libgpg-error0`, `0 failed`, `-Werror=...`). Errors:
/// `ERROR|Error|error|FAILED|Failed|failed|FATAL|Fatal|fatal`; warnings:
/// `WARNING|Warning|warning|WARN|Warn|warn`, where the `WARN` forms already cover the
/// `WARNING` ones. The first `ERROR_PATTERNS` literals are the error ones.
const LITERALS: [&str; 12] = [
    "ERROR", "Error", "error", "FAILED", "Failed", "failed", "FATAL", "Fatal", "fatal", "WARN",
    "Warn", "warn",
];
const ERROR_PATTERNS: usize = 9;

/// Both pattern sets in one automaton, so a line is scanned once for both. No occurrence of
/// one literal can overlap another's (no literal's suffix is another's prefix, none contains
/// another), so the non-overlapping scan sees every occurrence.
/// Leftmost-first (rather than the default standard semantics) lets aho-corasick use its
/// SIMD prefilter; without overlaps both report the same occurrences.
static PATTERNS: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostFirst)
        .build(LITERALS)
        .expect("literal patterns build")
});

/// The literals by their first three bytes case-folded (`err`, `fai`, `fat`, `war`), one
/// bucket each, for the SIMD filter.
#[cfg(target_arch = "x86_64")]
fn literal_buckets() -> crate::nibble_filter::Buckets<usize> {
    let mut buckets = crate::nibble_filter::Buckets::new();
    for (i, literal) in LITERALS.iter().enumerate() {
        buckets.group([0, 1, 2].map(|k| Some(literal.as_bytes()[k] | 0x20)), i);
    }
    buckets
}

/// The SIMD filter of the literals, with what each bucket holds; `None` where the CPU has
/// none.
#[cfg(target_arch = "x86_64")]
static FILTER: LazyLock<Option<(crate::nibble_filter::NibbleFilter<1>, Vec<Vec<usize>>)>> =
    LazyLock::new(|| {
        let buckets = literal_buckets();
        let filter = crate::nibble_filter::NibbleFilter::new(&buckets.patterns)?;
        Some((filter, buckets.items))
    });

/// The literals and the scrubber's anchors in one scan (the parser's, when events will be
/// scrubbed); `None` where the CPU has no SIMD filter.
#[cfg(target_arch = "x86_64")]
static WITH_ANCHORS: LazyLock<Option<LineScanner<usize>>> =
    LazyLock::new(|| Scrubber::global().line_scanner(literal_buckets()));

/// Whether the logger counts this line as (an error, a warning).
pub fn classify(line: &[u8]) -> (bool, bool) {
    #[cfg(target_arch = "x86_64")]
    if FILTER.is_some() {
        let c = classify_line(line);
        return (c.error, c.warning);
    }
    classify_by_automaton(line)
}

/// What the parser needs to know of an output line before making its event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineClass {
    /// The logger counts it as an error.
    pub error: bool,
    /// The logger counts it as a warning.
    pub warning: bool,
    /// Whether it holds NUL and ESC bytes.
    pub bytes: LineBytes,
    /// What the scrubber's scan of the line finds, where it was scanned for it too
    /// ([`classify_line_for_scrubber`]).
    pub anchor_scan: Option<AnchorScan>,
}

/// [`classify`], and what the line's bytes hold: one pass where the CPU has AVX2, for what
/// were three (the literals, NUL, ESC).
pub fn classify_line(line: &[u8]) -> LineClass {
    #[cfg(target_arch = "x86_64")]
    if let Some((filter, buckets)) = &*FILTER {
        let mut found = Literals::default();
        let bytes = filter.scan(line, &mut |p, bucket| {
            for &i in &buckets[bucket] {
                found.check(line, p, i);
            }
        });
        return found.class(bytes, None);
    }
    classify_by_plain_searches(line)
}

/// [`classify_line`], and what the scrubber's scan finds in the line, from the same pass
/// where the CPU has AVX2 (else `anchor_scan` is `None` and the scrubber scans the line
/// itself).
pub fn classify_line_for_scrubber(line: &[u8]) -> LineClass {
    #[cfg(target_arch = "x86_64")]
    if let Some(scanner) = &*WITH_ANCHORS {
        let mut found = Literals::default();
        let (anchors, bytes) = scanner.scan(line, &mut |p, &i| found.check(line, p, i));
        return found.class(bytes, Some(anchors));
    }
    classify_by_plain_searches(line)
}

/// The logger's literals found so far in a line.
#[cfg(target_arch = "x86_64")]
#[derive(Default)]
struct Literals {
    error: bool,
    warning: bool,
}

#[cfg(target_arch = "x86_64")]
impl Literals {
    /// A candidate of the filter: whether literal `i` starts at `p` of `line`.
    #[inline]
    fn check(&mut self, line: &[u8], p: usize, i: usize) {
        if line[p..].starts_with(LITERALS[i].as_bytes()) {
            *(if i < ERROR_PATTERNS {
                &mut self.error
            } else {
                &mut self.warning
            }) = true;
        }
    }

    fn class(self, bytes: LineBytes, anchor_scan: Option<AnchorScan>) -> LineClass {
        LineClass {
            error: self.error,
            warning: self.warning,
            bytes,
            anchor_scan,
        }
    }
}

/// [`classify_line`] without the SIMD filter: the automaton, then the byte searches.
fn classify_by_plain_searches(line: &[u8]) -> LineClass {
    let (error, warning) = classify_by_automaton(line);
    LineClass {
        error,
        warning,
        bytes: LineBytes::of(line),
        anchor_scan: None,
    }
}

/// [`classify`] by one Aho-Corasick search (where there is no SIMD filter; the tests compare
/// both).
fn classify_by_automaton(line: &[u8]) -> (bool, bool) {
    let (mut error, mut warning) = (false, false);
    for m in PATTERNS.find_iter(line) {
        if m.pattern().as_usize() < ERROR_PATTERNS {
            error = true;
        } else {
            warning = true;
        }
        if error && warning {
            break;
        }
    }
    (error, warning)
}

/// True when the logger counts this line as an error.
pub fn matches_error(line: &[u8]) -> bool {
    classify(line).0
}

/// True when the logger counts this line as a warning.
pub fn matches_warning(line: &[u8]) -> bool {
    classify(line).1
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
    if bytes.is_ascii() {
        // Nearly every line: the ASCII check is cheaper than validating UTF-8 in general.
        // SAFETY: ASCII is valid UTF-8.
        return (
            Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(bytes) }),
            false,
        );
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => (Cow::Borrowed(s), false),
        Err(_) => (String::from_utf8_lossy(bytes), true),
    }
}

/// Removes ANSI escape sequences (CSI `ESC [ ... final`, OSC `ESC ] ... BEL|ST`, and
/// two-byte `ESC x`). Other control characters are kept: JSON encoding escapes them.
pub fn strip_ansi(s: &str) -> Cow<'_, str> {
    strip_ansi_scanned(s, memchr::memchr(0x1b, s.as_bytes()).is_some())
}

/// [`strip_ansi`] of text already known to hold an ESC byte or not (`escape`, from
/// [`classify_line`] of its bytes: decoding adds none).
pub fn strip_ansi_scanned(s: &str, escape: bool) -> Cow<'_, str> {
    debug_assert_eq!(escape, s.as_bytes().contains(&0x1b));
    if !escape {
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
    use proptest::prelude::*;

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

    proptest! {
        /// The one-pass scan agrees with the logger's two regular expressions.
        #[test]
        fn classify_equals_the_logger_regexes(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(LITERALS.to_vec()).prop_map(String::from),
                    proptest::sample::select(vec!["WARNING", "Warning", "ERRO", "FAIL", "rror", "Fatal", "eRROR", "WARn"]).prop_map(String::from),
                    "[ -~\\x00-\\x1f]{0,12}",
                ],
                0..8,
            )
        ) {
            let line = parts.concat();
            let err = regex::bytes::Regex::new("ERROR|Error|error|FAILED|Failed|failed|FATAL|Fatal|fatal").unwrap();
            let warn = regex::bytes::Regex::new("WARNING|Warning|warning|WARN|Warn|warn").unwrap();
            prop_assert_eq!(
                classify(line.as_bytes()),
                (err.is_match(line.as_bytes()), warn.is_match(line.as_bytes())),
                "{:?}", line
            );
        }
    }

    #[test]
    fn classify_finds_both_kinds_in_one_line() {
        assert_eq!(classify(b"warning: unused; error[E0425]"), (true, true));
        assert_eq!(classify(b"FAILEDWARN"), (true, true));
        assert_eq!(classify(b"WARNING"), (false, true));
        assert_eq!(classify(b"Get:1 http://deb.debian.org"), (false, false));
        assert_eq!(classify(b""), (false, false));
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

    /// Each literal and near-miss (other casings, cut short) at every place of lines of every
    /// length around the SIMD filter's 32-byte blocks: the filter and the automaton agree.
    #[test]
    fn every_length_and_place_gives_the_automatons_answer() {
        for len in 0..=80usize {
            for word in LITERALS
                .iter()
                .copied()
                .chain(["eRRor", "FAILE", "Fatl", "wARN", "war"])
            {
                for at in 0..=len.saturating_sub(word.len()) {
                    let mut line = vec![b'x'; len.max(word.len())];
                    line[at..at + word.len()].copy_from_slice(word.as_bytes());
                    assert_eq!(
                        classify(&line),
                        classify_by_automaton(&line),
                        "{word} at {at} of {len}"
                    );
                }
            }
        }
    }

    /// Every distinct line of the corpus: the filter and the automaton agree, the scan's byte
    /// facts are the plain search's, and the scan made for the scrubber too finds what the
    /// scrubber's own scan does.
    #[test]
    fn the_corpus_lines_get_the_automatons_answer() {
        let distinct = crate::test_support::corpus_lines();
        let (mut errors, mut warnings, mut escapes, mut anchored) = (0, 0, 0, 0);
        for line in &distinct {
            let got = classify_line(line);
            let shown = || line.escape_ascii().to_string();
            assert_eq!(
                (got.error, got.warning),
                classify_by_automaton(line),
                "{}",
                shown()
            );
            assert_eq!(got.bytes, LineBytes::of(line), "{}", shown());
            assert_eq!(got.anchor_scan, None);
            // The scan that also looks for the scrubber's anchors: the same answers, and what
            // the scrubber's own scan finds.
            let both = classify_line_for_scrubber(line);
            assert_eq!(
                (both.error, both.warning, both.bytes),
                (got.error, got.warning, got.bytes),
                "{}",
                shown()
            );
            let scrubbers = crate::enrich::scrub::Scrubber::global().scan(line);
            match both.anchor_scan {
                Some(found) => assert_eq!(found, scrubbers, "{}", shown()),
                None => assert!(!std::is_x86_feature_detected!("avx2")),
            }
            anchored += usize::from(scrubbers.rules() != 0);
            errors += usize::from(got.error);
            warnings += usize::from(got.warning);
            escapes += usize::from(got.bytes.escape);
        }
        assert!(
            distinct.len() > 200_000
                && errors > 100
                && warnings > 100
                && escapes > 10
                && anchored > 1_000,
            "{errors} {warnings} {escapes} {anchored}"
        );
    }

    proptest! {
        #[test]
        fn any_line_gets_the_automatons_answer(
            pieces in proptest::collection::vec(proptest::sample::select(vec![
                "ERROR", "Error", "error", "eRRor", "FAILED", "failed", "FaIled", "fatal", "FATAL",
                "WARN", "warn", "Warn", "wArn", "err", "x", " ", "\u{1b}[31m", "\u{e9}",
            ]), 0..24)
        ) {
            let line = pieces.concat();
            prop_assert_eq!(classify(line.as_bytes()), classify_by_automaton(line.as_bytes()), "{:?}", line);
        }
    }
}

//! A one-pass test that rejects, without running the anchor automaton, a line that cannot hold
//! any of the scrubber's anchors.
//!
//! Why: the anchor automaton steps a DFA over every byte of every line (its own prefilter does
//! not engage for four dozen case-insensitive anchors, some of one byte), and that walk was the
//! largest single cost of `convert` with scrubbing on. Only a few percent of build-log lines hold
//! an anchor, so a cheaper necessary condition pays: for every anchor of three bytes or more,
//! one of its trigrams (the one made of the rarest bytes) must be in the line; for shorter
//! anchors (`@`), one of their first bytes must be. Trigrams are compared ASCII case-folded
//! (`| 0x20` on every byte, which maps both cases of a letter to one value) and looked up in a
//! 65,536-bit set by a multiplicative hash; a collision only lets a clean line through to the
//! exact automaton, never the reverse. The loads of one position do not depend on the last
//! position's, so the loop runs several bytes per cycle-chain where the DFA runs one.

/// See the module documentation.
pub(super) struct TrigramFilter {
    /// Bit `hash(trigram)` is set for each chosen trigram.
    bits: Box<[u64; 1024]>,
    /// The first bytes (case folded) of anchors shorter than three bytes; at most three, else
    /// the filter is off (`None` in [`TrigramFilter::new`]).
    short: Vec<u8>,
    /// Each of `short` repeated in the eight bytes of a word, for a word-at-a-time search.
    short_words: Vec<u64>,
}

impl TrigramFilter {
    /// A filter for `anchors` (any case); `None` when it could not reject anything (more than
    /// three distinct first bytes of short anchors, or an empty anchor).
    pub(super) fn new<S: AsRef<[u8]>>(anchors: &[S]) -> Option<Self> {
        let mut bits = Box::new([0u64; 1024]);
        let mut short = Vec::new();
        for a in anchors {
            let a = a.as_ref();
            match a.len() {
                0 => return None,
                1 | 2 => {
                    if !short.contains(&(a[0] | 0x20)) {
                        short.push(a[0] | 0x20);
                    }
                }
                _ => {
                    let best = a
                        .windows(3)
                        .min_by_key(|w| w.iter().map(|&b| commonness(b)).sum::<u32>())
                        .expect("three bytes or more");
                    let h = hash(fold3(best[0], best[1], best[2]));
                    bits[h / 64] |= 1 << (h % 64);
                }
            }
        }
        if short.len() > 3 {
            return None;
        }
        let short_words = short
            .iter()
            .map(|&b| u64::from(b) * 0x0101_0101_0101_0101)
            .collect();
        Some(TrigramFilter {
            bits,
            short,
            short_words,
        })
    }

    /// False when `s` certainly holds no anchor; true when it may.
    #[inline]
    pub(super) fn may_match(&self, s: &[u8]) -> bool {
        // Eight bytes at a time give six trigrams; the chunks overlap by two bytes so that
        // every trigram is seen once. Short anchors' bytes are looked for in the same word.
        let mut i = 0;
        while i + 8 <= s.len() {
            let word = u64::from_le_bytes(s[i..i + 8].try_into().expect("eight bytes"));
            let word = word | 0x2020_2020_2020_2020;
            let mut hit = 0;
            for k in 0..6 {
                hit |= self.bit(hash((word >> (8 * k)) as u32 & 0x00FF_FFFF));
            }
            for &b in &self.short_words {
                hit |= has_zero_byte(word ^ b);
            }
            if hit != 0 {
                return true;
            }
            i += 6;
        }
        let tail = &s[i..];
        tail.iter().any(|&b| self.short.contains(&(b | 0x20)))
            || tail
                .windows(3)
                .any(|w| self.bit(hash(fold3(w[0], w[1], w[2]))) != 0)
    }

    #[inline(always)]
    fn bit(&self, h: usize) -> u64 {
        (self.bits[h / 64] >> (h % 64)) & 1
    }
}

/// 1 when a byte of `x` is zero (the classic bit trick; exact for the any-byte question).
#[inline(always)]
fn has_zero_byte(x: u64) -> u64 {
    u64::from(x.wrapping_sub(0x0101_0101_0101_0101) & !x & 0x8080_8080_8080_8080 != 0)
}

/// Three bytes, ASCII case folded, as one number.
#[inline(always)]
fn fold3(a: u8, b: u8, c: u8) -> u32 {
    (u32::from(a) | u32::from(b) << 8 | u32::from(c) << 16) | 0x0020_2020
}

/// A trigram's bit: the top 16 bits of a Fibonacci hash.
#[inline(always)]
fn hash(t: u32) -> usize {
    (t.wrapping_mul(0x9E37_79B1) >> 16) as usize
}

/// How common a byte is in build-log text (lower is rarer), for choosing each anchor's
/// trigram: letters by their frequency in English; digits and `.`, `-`, `/` (version numbers,
/// paths) nearly as common as vowels; `_` and other punctuation in between; space most common.
/// Only speed depends on it, never the result.
fn commonness(b: u8) -> u32 {
    const LETTERS_BY_FREQUENCY: &[u8] = b"etaoinsrhldcumfpgwybvkxjqz";
    let b = b.to_ascii_lowercase();
    match LETTERS_BY_FREQUENCY.iter().position(|&l| l == b) {
        Some(rank) => 40 - rank as u32,
        None => match b {
            b' ' => 60,
            b'.' | b'-' | b'/' => 38,
            b'0'..=b'9' => 36,
            b'_' => 20,
            _ => 25,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ANCHORS: &[&str] = &["token", "passw", "@", "ya29.", "private key", "sk-"];

    #[test]
    fn rejects_clean_lines_and_keeps_lines_with_an_anchor() {
        let f = TrigramFilter::new(ANCHORS).expect("a filter");
        assert!(!f.may_match(b"Setting up curl (8.5.0-2) ..."));
        assert!(!f.may_match(b""));
        assert!(f.may_match(b"export GITHUB_TOKEN=x"));
        assert!(f.may_match(b"user@host"));
        assert!(f.may_match(b"-----BEGIN RSA PRIVATE KEY-----"));
        assert!(f.may_match(b"ya29.abc"));
        assert!(f.may_match(b"SK-"));
    }

    #[test]
    fn too_many_short_anchors_turn_the_filter_off() {
        assert!(TrigramFilter::new(&["@", "a", "b", "c"]).is_none());
        assert!(TrigramFilter::new(&[""]).is_none());
    }

    proptest! {
        /// Never a false negative: any text that holds an anchor in any case passes.
        #[test]
        fn every_line_holding_an_anchor_passes(
            before in "[ -~]{0,40}",
            which in 0..ANCHORS.len(),
            flips in proptest::collection::vec(any::<bool>(), 12),
            after in "[ -~]{0,40}",
        ) {
            let f = TrigramFilter::new(ANCHORS).expect("a filter");
            let anchor: String = ANCHORS[which]
                .chars()
                .zip(flips.iter().cycle())
                .map(|(c, &up)| if up { c.to_ascii_uppercase() } else { c })
                .collect();
            let line = format!("{before}{anchor}{after}");
            prop_assert!(f.may_match(line.as_bytes()), "{}", line);
        }
    }
}

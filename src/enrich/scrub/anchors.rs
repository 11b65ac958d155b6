//! Which of the scrubber's anchors a line holds, found in one pass that turns clean lines away
//! cheaply; the answer decides which rules run.
//!
//! Why not an automaton: a case-insensitive Aho-Corasick DFA over four dozen anchors, some of one
//! byte, steps one byte at a time through every line (its own prefilter does not engage), and it
//! was the largest single cost of `convert` with scrubbing on. Only a few percent of build-log
//! lines hold an anchor, so the common case must be cheap and the rest exact:
//!
//! - Every anchor of three bytes or more contains one chosen trigram (the one made of the
//!   rarest bytes) at a known offset; anchors of one or two bytes (`@`) are found by their first
//!   byte. Trigrams are compared ASCII case-folded (`| 0x20` on every byte, which maps both cases
//!   of a letter to one value) and looked up in a 65,536-bit set by a multiplicative hash. The
//!   loads of one position do not depend on the last position's, so the loop runs several bytes
//!   per cycle-chain where a DFA runs one.
//! - A set bit (a chosen trigram, a hash collision, a short anchor's byte) sends only that word to
//!   the exact check: the trigram is looked up among the chosen ones and each anchor holding it
//!   compared (ASCII case-insensitively) where it would start. So a line is reported to hold an
//!   anchor exactly when it does, and no second scan is needed to learn which rules to run.
//! - Where the CPU has AVX2 (`src/nibble_filter.rs`), the same trigrams and short anchors are
//!   looked for 32 positions at a time by nibble lookups (Teddy's idea) instead of one hash per
//!   position: a quarter of the instructions per line. Its candidates go to the same exact
//!   check, so both ways give the same answer (the tests compare them on the corpus).

#[cfg(target_arch = "x86_64")]
use crate::line_bytes::LineBytes;

/// Two sets of eight buckets. On the generated aws-cli log (61,000 true trigram occurrences)
/// two sets give 75,000 candidates; four (one trigram in most buckets) 61,000 for twice the
/// shuffles; one set 1.57 million.
#[cfg(target_arch = "x86_64")]
type AnchorFilter = crate::nibble_filter::NibbleFilter<2>;

/// See the module documentation.
pub(super) struct AnchorFinder {
    /// Bit `hash(trigram)` is set for each chosen trigram.
    bits: Box<[u64; 1024]>,
    /// The chosen trigrams (as [`fold3`] gives them), sorted, each with the anchors that chose
    /// it and the offset of the trigram in the anchor.
    trigrams: Vec<(u32, Vec<Placed>)>,
    /// Anchors of one or two bytes, each with its first byte lowercased.
    short: Vec<(u8, usize)>,
    /// Each short anchor's first byte repeated in the eight bytes of a word, for a
    /// word-at-a-time search: compared with the case-folded word for a letter, with the raw word
    /// otherwise (`@ | 0x20` is a backquote, common in compiler output).
    short_words: Vec<(u64, bool)>,
    /// The anchors, lowercased.
    anchors: Vec<Vec<u8>>,
    /// For each anchor, the bit set of the rules it may trigger.
    anchor_rules: Vec<u64>,
    /// The SIMD filter, where the CPU has one.
    #[cfg(target_arch = "x86_64")]
    simd: Option<Simd<2>>,
}

/// A SIMD filter and what each of its buckets holds: the anchors' buckets, then those a
/// caller added to the scan ([`SharedScan`]), each of a `T` the caller checks itself.
#[cfg(target_arch = "x86_64")]
struct Simd<const SETS: usize, T = ()> {
    masks: crate::nibble_filter::NibbleFilter<SETS>,
    buckets: Vec<Vec<Candidate>>,
    extra: Vec<Vec<T>>,
}

/// One pass over a line for the anchors and for a caller's own short patterns (the logger's
/// error and warning literals, looked for by the install-log parser in every output line):
/// the line is loaded and split into nibbles once for both, where two scans did it twice.
/// The anchors keep the buckets they have alone ([`AnchorFilter`]'s two sets); the caller's
/// patterns get a third set.
#[cfg(target_arch = "x86_64")]
pub(crate) struct SharedScan<T> {
    simd: Simd<3, T>,
}

/// What a candidate position of a bucket is checked for.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
enum Candidate {
    /// The chosen trigram `trigrams[i]`, then its anchors.
    Trigram(usize),
    /// A short anchor, by its index.
    Short(usize),
}

/// An anchor holding a chosen trigram, and where.
struct Placed {
    anchor: usize,
    offset: usize,
}

impl AnchorFinder {
    /// A finder for `anchors` (any case, ASCII, none empty), each with the rules it may
    /// trigger; it uses the SIMD filter where the CPU has one.
    pub(super) fn new(anchors: &[(String, u64)]) -> Self {
        #[allow(unused_mut)]
        let mut finder = Self::portable(anchors);
        #[cfg(target_arch = "x86_64")]
        {
            finder.simd = finder.simd_filter();
        }
        finder
    }

    /// A finder that searches a word at a time on every CPU (the tests compare both).
    pub(super) fn portable(anchors: &[(String, u64)]) -> Self {
        let mut bits = Box::new([0u64; 1024]);
        let mut trigrams: Vec<(u32, Vec<Placed>)> = Vec::new();
        let mut short = Vec::new();
        for (index, (anchor, _)) in anchors.iter().enumerate() {
            let a = anchor.as_bytes();
            assert!(!a.is_empty(), "an empty anchor would match every line");
            if a.len() < 3 {
                short.push((a[0].to_ascii_lowercase(), index));
                continue;
            }
            let (offset, best) = a
                .windows(3)
                .enumerate()
                .min_by_key(|(_, w)| w.iter().map(|&b| commonness(b)).sum::<u32>())
                .expect("three bytes or more");
            let t = fold3(best[0], best[1], best[2]);
            let h = hash(t);
            bits[h / 64] |= 1 << (h % 64);
            let placed = Placed {
                anchor: index,
                offset,
            };
            match trigrams.iter_mut().find(|(u, _)| *u == t) {
                Some((_, list)) => list.push(placed),
                None => trigrams.push((t, vec![placed])),
            }
        }
        trigrams.sort_unstable_by_key(|(t, _)| *t);
        let mut first_bytes: Vec<u8> = short.iter().map(|&(b, _)| b).collect();
        first_bytes.sort_unstable();
        first_bytes.dedup();
        let short_words = first_bytes
            .iter()
            .map(|&b| (u64::from(b) * 0x0101_0101_0101_0101, b.is_ascii_lowercase()))
            .collect();
        AnchorFinder {
            bits,
            trigrams,
            short,
            short_words,
            anchors: anchors
                .iter()
                .map(|(a, _)| a.to_ascii_lowercase().into_bytes())
                .collect(),
            anchor_rules: anchors.iter().map(|&(_, rules)| rules).collect(),
            #[cfg(target_arch = "x86_64")]
            simd: None,
        }
    }

    /// The SIMD filter's buckets: each group of short anchors with the same bytes in one,
    /// then the chosen trigrams, each alone while there are buckets enough, else with the
    /// trigrams whose nibbles it adds the fewest new values to (the fewer, the fewer false
    /// candidates).
    #[cfg(target_arch = "x86_64")]
    fn simd_filter(&self) -> Option<Simd<2>> {
        let buckets = self.simd_buckets()?;
        Some(Simd {
            masks: AnchorFilter::new(&buckets.patterns)?,
            buckets: buckets.items,
            extra: Vec::new(),
        })
    }

    /// A scan for the anchors and for `extra` (at most eight buckets) at once; `None` where
    /// the CPU has no AVX2.
    #[cfg(target_arch = "x86_64")]
    pub(super) fn shared_scan<T>(
        &self,
        extra: crate::nibble_filter::Buckets<T>,
    ) -> Option<SharedScan<T>> {
        let mut buckets = self.simd_buckets()?;
        // The caller's buckets start at the third set, whatever the anchors left free.
        buckets
            .patterns
            .resize_with(AnchorFilter::BUCKETS, Vec::new);
        buckets.items.resize_with(AnchorFilter::BUCKETS, Vec::new);
        buckets.patterns.extend(extra.patterns);
        Some(SharedScan {
            simd: Simd {
                masks: crate::nibble_filter::NibbleFilter::new(&buckets.patterns)?,
                buckets: buckets.items,
                extra: extra.items,
            },
        })
    }

    /// What [`rules_and_escape_in`](Self::rules_and_escape_in) answers, and the caller's
    /// candidates: `on_extra(position, item)` for each item of a bucket of its own that may
    /// start at that position of `s` (the caller's exact check turns false ones away).
    #[cfg(target_arch = "x86_64")]
    #[inline]
    pub(super) fn scan_shared<T>(
        &self,
        shared: &SharedScan<T>,
        s: &[u8],
        on_extra: &mut impl FnMut(usize, &T),
    ) -> (u64, LineBytes) {
        self.scan_simd(&shared.simd, s, on_extra)
    }

    /// The anchors' rules in `s` by the SIMD filter `simd`, its caller's candidates to
    /// `on_extra`, and what the loads saw of NUL and ESC bytes.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    fn scan_simd<const SETS: usize, T>(
        &self,
        simd: &Simd<SETS, T>,
        s: &[u8],
        on_extra: &mut impl FnMut(usize, &T),
    ) -> (u64, LineBytes) {
        let mut rules = 0;
        let bytes = simd
            .masks
            .scan(s, &mut |p, bucket| match simd.buckets.get(bucket) {
                Some(candidates) => {
                    for &c in candidates {
                        rules |= self.candidate_at(s, p, c);
                    }
                }
                None => {
                    for item in &simd.extra[bucket - simd.buckets.len()] {
                        on_extra(p, item);
                    }
                }
            });
        (rules, bytes)
    }

    /// The SIMD filter's buckets of anchors (`None` when they leave none for trigrams).
    #[cfg(target_arch = "x86_64")]
    fn simd_buckets(&self) -> Option<crate::nibble_filter::Buckets<Candidate>> {
        use crate::nibble_filter::{Buckets, Pattern};
        const BUCKETS: usize = AnchorFilter::BUCKETS;
        let mut buckets = Buckets::new();
        for &(_, anchor) in &self.short {
            let a = &self.anchors[anchor];
            let pattern: Pattern = [Some(a[0] | 0x20), a.get(1).map(|b| b | 0x20), None];
            buckets.group(pattern, Candidate::Short(anchor));
        }
        let first_trigram_bucket = buckets.patterns.len();
        let free = BUCKETS
            .checked_sub(first_trigram_bucket)
            .filter(|&n| n > 0)?;
        let capacity = self.trigrams.len().div_ceil(free);
        for (i, &(t, _)) in self.trigrams.iter().enumerate() {
            let pattern: Pattern = [0, 8, 16].map(|shift| Some((t >> shift) as u8));
            let new_nibbles = |held: &Vec<Pattern>| -> usize {
                let mut n = 0;
                for k in 0..3 {
                    let b = pattern[k].expect("three bytes");
                    n += usize::from(
                        !held
                            .iter()
                            .any(|p| p[k].is_some_and(|x| x & 0xf == b & 0xf)),
                    );
                    n += usize::from(!held.iter().any(|p| p[k].is_some_and(|x| x >> 4 == b >> 4)));
                }
                n
            };
            let best = (first_trigram_bucket..BUCKETS)
                .filter(|&b| (buckets.patterns.get(b)).is_none_or(|held| held.len() < capacity))
                .min_by_key(|&b| buckets.patterns.get(b).map_or(0, new_nibbles))
                .expect("capacity leaves room");
            buckets.put(best, pattern, Candidate::Trigram(i));
        }
        Some(buckets)
    }

    /// The union of the rule sets of the anchors `s` holds; 0 when it holds none.
    #[inline]
    pub(super) fn rules_in(&self, s: &[u8]) -> u64 {
        self.rules_and_escape_in(s).0
    }

    /// [`rules_in`](Self::rules_in), and whether `s` holds an ESC byte (an escape sequence
    /// the scrubber must look through), learnt by the same pass where the CPU has AVX2.
    #[inline]
    pub(super) fn rules_and_escape_in(&self, s: &[u8]) -> (u64, bool) {
        #[cfg(target_arch = "x86_64")]
        if let Some(simd) = &self.simd {
            let (rules, bytes) = self.scan_simd(simd, s, &mut |_, &()| {});
            return (rules, bytes.escape);
        }
        (self.rules_in_words(s), memchr::memchr(0x1b, s).is_some())
    }

    /// The rules of the anchors that `candidate` stands for at position `p` of `s`.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    fn candidate_at(&self, s: &[u8], p: usize, candidate: Candidate) -> u64 {
        match candidate {
            Candidate::Short(anchor) => self.anchor_at(s, p, anchor),
            Candidate::Trigram(i) => {
                let (t, placed) = &self.trigrams[i];
                match s.get(p..p + 3) {
                    Some(w) if fold3(w[0], w[1], w[2]) == *t => placed
                        .iter()
                        .filter_map(|pl| {
                            Some(self.anchor_at(s, p.checked_sub(pl.offset)?, pl.anchor))
                        })
                        .fold(0, |a, b| a | b),
                    _ => 0,
                }
            }
        }
    }

    /// [`rules_in`](Self::rules_in) a word at a time, on any CPU.
    fn rules_in_words(&self, s: &[u8]) -> u64 {
        // Eight bytes at a time give six trigrams; the chunks overlap by two bytes so that
        // every trigram is seen once. Short anchors' bytes are looked for in the same word.
        let mut rules = 0;
        let mut i = 0;
        while i + 8 <= s.len() {
            let raw = u64::from_le_bytes(s[i..i + 8].try_into().expect("eight bytes"));
            let word = raw | 0x2020_2020_2020_2020;
            let mut hit = 0;
            for k in 0..6 {
                hit |= self.bit(hash((word >> (8 * k)) as u32 & 0x00FF_FFFF));
            }
            for &(b, letter) in &self.short_words {
                hit |= has_zero_byte(if letter { word } else { raw } ^ b);
            }
            if hit != 0 {
                rules |= self.rules_at(s, i..i + 6);
            }
            i += 6;
        }
        if i < s.len() {
            rules |= self.rules_at(s, i..s.len());
        }
        rules
    }

    /// The exact check: the rules of the anchors that start, or hold their chosen trigram,
    /// at a position in `starts`. Rare, so kept off the fast path.
    #[cold]
    fn rules_at(&self, s: &[u8], starts: std::ops::Range<usize>) -> u64 {
        let mut rules = 0;
        for p in starts {
            if let Some(w) = s.get(p..p + 3) {
                let t = fold3(w[0], w[1], w[2]);
                if self.bit(hash(t)) != 0 {
                    if let Ok(i) = self.trigrams.binary_search_by_key(&t, |(u, _)| *u) {
                        for placed in &self.trigrams[i].1 {
                            if let Some(start) = p.checked_sub(placed.offset) {
                                rules |= self.anchor_at(s, start, placed.anchor);
                            }
                        }
                    }
                }
            }
            let b = s[p].to_ascii_lowercase();
            for &(first, anchor) in &self.short {
                if first == b {
                    rules |= self.anchor_at(s, p, anchor);
                }
            }
        }
        rules
    }

    /// The rules of `anchor` when it starts at `start` of `s`, else 0.
    #[inline]
    fn anchor_at(&self, s: &[u8], start: usize, anchor: usize) -> u64 {
        let a = &self.anchors[anchor];
        match s.get(start..start + a.len()) {
            Some(there) if there.eq_ignore_ascii_case(a) => self.anchor_rules[anchor],
            _ => 0,
        }
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

    const ANCHORS: &[&str] = &[
        "token",
        "passw",
        "@",
        "ya29.",
        "private key",
        "sk-",
        "key",
        "hf_",
        "xox",
    ];

    fn test_anchors() -> Vec<(String, u64)> {
        ANCHORS
            .iter()
            .enumerate()
            .map(|(i, a)| (a.to_string(), 1 << i))
            .collect()
    }

    fn finder() -> AnchorFinder {
        AnchorFinder::new(&test_anchors())
    }

    /// Both ways of searching: the one this CPU gets and the word-at-a-time one.
    fn finders(anchors: &[(String, u64)]) -> [AnchorFinder; 2] {
        [AnchorFinder::new(anchors), AnchorFinder::portable(anchors)]
    }

    /// The scrubber's own anchors and rule sets.
    fn scrubber_anchors() -> Vec<(String, u64)> {
        super::super::Scrubber::new().inner.anchor_list.clone()
    }

    /// The rule set of `anchors` in `s` by the definition.
    fn naive_with(anchors: &[(String, u64)], s: &[u8]) -> u64 {
        let lower = s.to_ascii_lowercase();
        anchors
            .iter()
            .filter(|(a, _)| lower.windows(a.len()).any(|w| w == a.as_bytes()))
            .fold(0, |set, (_, rules)| set | rules)
    }

    #[test]
    fn the_simd_filter_is_used_where_the_cpu_has_avx2() {
        #[cfg(target_arch = "x86_64")]
        {
            let f = AnchorFinder::new(&scrubber_anchors());
            assert_eq!(f.simd.is_some(), std::is_x86_feature_detected!("avx2"));
            assert!(AnchorFinder::portable(&scrubber_anchors()).simd.is_none());
        }
    }

    /// Every length around the SIMD filter's blocks (32 positions, three bytes read from each)
    /// and every place in the line, each anchor in upper and lower case, on clean text and
    /// next to the bytes that fold onto an anchor's (a backquote is `@ | 0x20`, DEL `_ | 0x20`).
    #[test]
    fn every_length_and_place_gives_the_exact_set() {
        let anchors = test_anchors();
        let both = finders(&anchors);
        for len in 0..=100usize {
            for filler in [b'x', b'`', 0x7f, b'~'] {
                let clean = vec![filler; len];
                for f in &both {
                    assert_eq!(f.rules_in(&clean), 0, "{len} x {filler}");
                }
                for (a, _) in &anchors {
                    for a in [a.to_ascii_lowercase(), a.to_ascii_uppercase()] {
                        let a = a.as_bytes();
                        for at in 0..=len.saturating_sub(a.len()) {
                            let mut line = clean.clone();
                            line.resize(len.max(a.len()), filler);
                            line[at..at + a.len()].copy_from_slice(a);
                            let want = naive_with(&anchors, &line);
                            for f in &both {
                                assert_eq!(
                                    f.rules_in(&line),
                                    want,
                                    "{:?}",
                                    line.escape_ascii().to_string()
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// With the scrubber's four dozen anchors (buckets shared by several trigrams, `@` in a
    /// bucket of its own), both ways agree (on the anchors and on ESC bytes) on every distinct
    /// line of the corpus, as written
    /// and upper-cased, and with the definition on each line where an anchor was found and on
    /// every 16th of the others (the definition is slow in a debug build).
    #[test]
    fn the_scrubbers_anchors_on_the_corpus() {
        let anchors = scrubber_anchors();
        let [fast, portable] = finders(&anchors);
        let mut distinct = std::collections::HashSet::new();
        for line in crate::test_support::corpus_lines() {
            distinct.insert(line.to_ascii_uppercase());
            distinct.insert(line);
        }
        let mut holding = 0;
        for (i, line) in distinct.iter().enumerate() {
            let (got, escape) = fast.rules_and_escape_in(line);
            let shown = || line.escape_ascii().to_string();
            assert_eq!(
                (got, escape),
                portable.rules_and_escape_in(line),
                "{}",
                shown()
            );
            if got != 0 || i % 16 == 0 {
                assert_eq!(got, naive_with(&anchors, line), "{}", shown());
            }
            holding += usize::from(got != 0);
        }
        // The corpus is there, with lines both with and without anchors.
        let lines = distinct.len();
        assert!(lines > 200_000, "{lines} lines");
        assert!(
            holding > 1_000 && holding < lines / 2,
            "{holding} of {lines}"
        );
    }

    /// The rule set by the definition: every anchor searched for on its own.
    fn naive(s: &[u8]) -> u64 {
        let lower = s.to_ascii_lowercase();
        ANCHORS
            .iter()
            .enumerate()
            .filter(|(_, a)| lower.windows(a.len()).any(|w| w == a.as_bytes()))
            .fold(0, |set, (i, _)| set | 1 << i)
    }

    #[test]
    fn finds_exactly_the_anchors_a_line_holds() {
        let f = finder();
        let bit = |a: &str| 1u64 << ANCHORS.iter().position(|x| *x == a).expect("an anchor");
        assert_eq!(f.rules_in(b"Setting up curl (8.5.0-2) ..."), 0);
        assert_eq!(f.rules_in(b""), 0);
        assert_eq!(f.rules_in(b"export GITHUB_TOKEN=x"), bit("token"));
        assert_eq!(f.rules_in(b"user@host"), bit("@"));
        // A backquote is `@ | 0x20`: it must not count as the `@` anchor.
        assert_eq!(f.rules_in(b"warning: unused variable: `x`"), 0);
        assert_eq!(
            f.rules_in(b"-----BEGIN RSA PRIVATE KEY-----"),
            bit("private key") | bit("key")
        );
        assert_eq!(f.rules_in(b"ya29.abc"), bit("ya29."));
        assert_eq!(f.rules_in(b"SK-"), bit("sk-"));
        // The chosen trigram without the rest of its anchor is not the anchor.
        assert_eq!(f.rules_in(b"the private driver, the hf-x"), 0);
        // An anchor cut by the end of the line.
        assert_eq!(f.rules_in(b"abcdefghijklmnopqrstuvwxyz toke"), 0);
        assert_eq!(
            f.rules_in(b"abcdefghijklmnopqrstuvwxyz tokEN"),
            bit("token")
        );
    }

    proptest! {
        /// Exact: the same set as searching for every anchor, in any case, wherever it sits.
        #[test]
        fn the_rule_set_is_exactly_the_anchors_present(
            before in "[ -~]{0,40}",
            which in 0..ANCHORS.len(),
            flips in proptest::collection::vec(any::<bool>(), 12),
            after in "[ -~]{0,40}",
            noise in "[ -~\u{80}-\u{7ff}]{0,60}",
        ) {
            let anchor: String = ANCHORS[which]
                .chars()
                .zip(flips.iter().cycle())
                .map(|(c, &up)| if up { c.to_ascii_uppercase() } else { c })
                .collect();
            let line = format!("{before}{anchor}{after}");
            for f in &finders(&test_anchors()) {
                prop_assert_eq!(f.rules_in(line.as_bytes()), naive(line.as_bytes()), "{}", line);
                prop_assert_eq!(f.rules_in(noise.as_bytes()), naive(noise.as_bytes()), "{}", noise);
            }
        }
    }
}

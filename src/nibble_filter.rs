//! A SIMD filter for a few dozen short literals in short lines (AVX2, where the CPU has it):
//! for 32 positions of a line at once, which *buckets* of patterns may start there. The
//! scrubber's anchor search and the logger's error and warning patterns use it.
//!
//! The idea is Teddy's (the multi-literal search of the `aho-corasick` crate, after Geoff
//! Langdale's design): a byte is split in its low and high nibble, and a shuffle looks each up
//! in a 16-entry table whose entry holds the set of buckets (one bit each) having a pattern
//! with that nibble at that position. A pattern's three bytes are checked at three offsets, and
//! a position is a candidate for a bucket when all six lookups agree. With one pattern in a
//! bucket the answer is exact (both nibbles of each byte are pinned); patterns sharing a bucket
//! add false candidates, which the caller's exact check turns away.
//!
//! Why not the crate's searcher: it finds one leftmost match per call and is built for long
//! haystacks; build-log lines are 60 bytes, every one is searched, and every pattern present
//! must be reported. This scan reads the line once, case-folding it as it goes (`| 0x20` on
//! every byte: patterns are given folded), with no copy except of a line under 34 bytes.
//! Each set of eight buckets costs six shuffles per 32 positions: a user takes as few sets as
//! keep its patterns apart.
//!
//! A scan also tells whether the line holds NUL and ESC bytes ([`LineBytes`]), from the same
//! loads, for four instructions per 32 bytes: passes its callers would otherwise make.

use std::arch::x86_64::{
    __m256i, _mm256_and_si256, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8,
    _mm256_or_si256, _mm256_set1_epi8, _mm256_setzero_si256, _mm256_shuffle_epi8,
    _mm256_srli_epi16, _mm256_storeu_si256,
};

use crate::line_bytes::LineBytes;

/// A pattern as the filter sees it: up to three case-folded bytes (`| 0x20`), `None` for a
/// position that matches any byte (patterns shorter than three bytes).
pub(crate) type Pattern = [Option<u8>; 3];

/// A filter's buckets as they are filled: each bucket's patterns, and what the caller checks
/// for a candidate of it.
pub(crate) struct Buckets<T> {
    pub(crate) patterns: Vec<Vec<Pattern>>,
    pub(crate) items: Vec<Vec<T>>,
}

impl<T> Buckets<T> {
    pub(crate) fn new() -> Self {
        Buckets {
            patterns: Vec::new(),
            items: Vec::new(),
        }
    }

    /// `item` in the bucket opened for `pattern` (a new one if none was).
    pub(crate) fn group(&mut self, pattern: Pattern, item: T) {
        match self
            .patterns
            .iter()
            .position(|p| p.first() == Some(&pattern))
        {
            Some(b) => self.items[b].push(item),
            None => self.put(self.patterns.len(), pattern, item),
        }
    }

    /// `pattern` and `item` in bucket `b`: an open one, or the next.
    pub(crate) fn put(&mut self, b: usize, pattern: Pattern, item: T) {
        if b == self.patterns.len() {
            self.patterns.push(Vec::new());
            self.items.push(Vec::new());
        }
        self.patterns[b].push(pattern);
        self.items[b].push(item);
    }
}

/// The lookup tables of `SETS` sets of eight buckets, each a 16-entry table written twice (a
/// shuffle works within each 128-bit half of the register).
pub(crate) struct NibbleFilter<const SETS: usize> {
    /// `[set][position][0 = low nibble, 1 = high nibble]`.
    tables: [[[[u8; 32]; 2]; 3]; SETS],
    /// The patterns shorter than three bytes, with their buckets: the only ones that can
    /// start in a line's last two bytes.
    short: Vec<(usize, Pattern)>,
}

impl<const SETS: usize> NibbleFilter<SETS> {
    /// How many buckets there are.
    pub(crate) const BUCKETS: usize = 8 * SETS;

    /// The tables for `buckets` (at most [`Self::BUCKETS`]), or `None` when this CPU has no
    /// AVX2.
    pub(crate) fn new(buckets: &[Vec<Pattern>]) -> Option<Self> {
        assert!(
            buckets.len() <= Self::BUCKETS,
            "at most {} buckets",
            Self::BUCKETS
        );
        if !std::is_x86_feature_detected!("avx2") {
            return None;
        }
        let mut tables = [[[[0u8; 32]; 2]; 3]; SETS];
        let mut short = Vec::new();
        for (bucket, patterns) in buckets.iter().enumerate() {
            let bit = 1u8 << (bucket % 8);
            let set = &mut tables[bucket / 8];
            for pattern in patterns {
                if pattern.contains(&None) {
                    short.push((bucket, *pattern));
                }
                for (position, byte) in pattern.iter().enumerate() {
                    let [low, high] = &mut set[position];
                    for half in 0..2 {
                        let at = 16 * half;
                        match byte {
                            Some(b) => {
                                low[at + usize::from(b & 0xf)] |= bit;
                                high[at + usize::from(b >> 4)] |= bit;
                            }
                            None => {
                                low[at..at + 16].iter_mut().for_each(|x| *x |= bit);
                                high[at..at + 16].iter_mut().for_each(|x| *x |= bit);
                            }
                        }
                    }
                }
            }
        }
        Some(NibbleFilter { tables, short })
    }

    /// Calls `candidate(position, bucket)` for every position of `s` where a pattern of
    /// `bucket` may start (as `s` case-folded reads), and for no position where none does;
    /// returns what `s` holds of the bytes [`LineBytes`] asks about.
    /// Positions are below `s.len()`; a pattern reported near the end may run past it (the
    /// caller's exact check, bounded by the line, turns it away).
    pub(crate) fn scan(&self, s: &[u8], candidate: &mut impl FnMut(usize, usize)) -> LineBytes {
        // SAFETY: `new` returned `Some` only on a CPU with AVX2.
        unsafe { self.scan_avx2(s, candidate) }
    }

    #[target_feature(enable = "avx2")]
    unsafe fn scan_avx2(&self, s: &[u8], candidate: &mut impl FnMut(usize, usize)) -> LineBytes {
        let mut seen = Seen::new();
        let mut i = 0;
        // Whole blocks straight from the line: the loads read s[i..i + 34].
        while i + 34 <= s.len() {
            // SAFETY: i + 2 + 32 <= s.len(), so each unaligned load reads inside `s`.
            let v = unsafe { load(s.as_ptr().add(i)) };
            seen.add(v[0]);
            self.block(i, v, u32::MAX, candidate);
            i += 32;
        }
        if i == s.len() {
            return seen.bytes();
        }
        if s.len() >= 34 {
            // The last 34 bytes, read again from the line: positions from s.len() - 34 on,
            // those already seen masked off. The last two positions start only short patterns.
            // Its loads at offsets 0 and 2 hold every byte not yet seen (i > s.len() - 34).
            let start = s.len() - 34;
            // SAFETY: start + 2 + 32 == s.len().
            let v = unsafe { load(s.as_ptr().add(start)) };
            seen.add(v[0]);
            seen.add(v[2]);
            self.block(
                start,
                v,
                u32::MAX.checked_shl((i - start) as u32).unwrap_or(0),
                candidate,
            );
            for p in (s.len() - 2).max(i)..s.len() {
                self.short_at(s, p, candidate);
            }
            return seen.bytes();
        }
        // A line under 34 bytes, copied into a buffer padded with spaces; positions past its
        // end are masked off.
        let mut tail = [b' '; 66];
        tail[..s.len()].copy_from_slice(s);
        let mut at = 0;
        while at < s.len() {
            // SAFETY: at <= 32, so the loads read tail[..66].
            let v = unsafe { load(tail.as_ptr().add(at)) };
            seen.add(v[0]);
            let left = s.len() - at;
            let within = if left >= 32 {
                u32::MAX
            } else {
                (1 << left) - 1
            };
            self.block(at, v, within, candidate);
            at += 32;
        }
        seen.bytes()
    }

    /// The short patterns that start at position `p` of `s`, checked one by one.
    #[inline]
    fn short_at(&self, s: &[u8], p: usize, candidate: &mut impl FnMut(usize, usize)) {
        for &(bucket, pattern) in &self.short {
            let starts = pattern.iter().enumerate().all(|(k, byte)| match byte {
                None => true,
                Some(b) => s.get(p + k).is_some_and(|&x| x | 0x20 == *b),
            });
            if starts {
                candidate(p, bucket);
            }
        }
    }

    /// The candidates among the 32 positions from `start` that `within` has a bit for, given
    /// the bytes at offsets 0, 1 and 2 from each.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn block(
        &self,
        start: usize,
        v: [__m256i; 3],
        within: u32,
        candidate: &mut impl FnMut(usize, usize),
    ) {
        let low_nibble = _mm256_set1_epi8(0x0f);
        let fold = _mm256_set1_epi8(0x20);
        let mut nibbles = [[_mm256_setzero_si256(); 2]; 3];
        for (n, x) in nibbles.iter_mut().zip(v) {
            let x = _mm256_or_si256(x, fold);
            *n = [
                _mm256_and_si256(x, low_nibble),
                _mm256_and_si256(_mm256_srli_epi16(x, 4), low_nibble),
            ];
        }
        let mut sets = [_mm256_setzero_si256(); SETS];
        let mut any = _mm256_setzero_si256();
        for (set, tables) in sets.iter_mut().zip(&self.tables) {
            let mut c = _mm256_set1_epi8(-1);
            for (position, [low, high]) in tables.iter().enumerate() {
                // SAFETY: each table is 32 bytes.
                let (low, high) = unsafe {
                    (
                        _mm256_loadu_si256(low.as_ptr().cast()),
                        _mm256_loadu_si256(high.as_ptr().cast()),
                    )
                };
                let [lo, hi] = nibbles[position];
                c = _mm256_and_si256(c, _mm256_shuffle_epi8(low, lo));
                c = _mm256_and_si256(c, _mm256_shuffle_epi8(high, hi));
            }
            *set = c;
            any = _mm256_or_si256(any, c);
        }
        let empty = _mm256_movemask_epi8(_mm256_cmpeq_epi8(any, _mm256_setzero_si256())) as u32;
        let positions = !empty & within;
        if positions != 0 {
            let mut bytes = [[0u8; 32]; SETS];
            for (b, v) in bytes.iter_mut().zip(sets) {
                // SAFETY: a 32-byte store into a 32-byte array.
                unsafe { _mm256_storeu_si256(b.as_mut_ptr().cast(), v) };
            }
            report(start, positions, &bytes, candidate);
        }
    }
}

/// The 32 bytes at `p`, `p + 1` and `p + 2`.
///
/// # Safety
/// The CPU has AVX2 and `p[..34]` is readable.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn load(p: *const u8) -> [__m256i; 3] {
    // SAFETY: the caller's: 34 readable bytes from `p`.
    unsafe {
        [
            _mm256_loadu_si256(p.cast()),
            _mm256_loadu_si256(p.add(1).cast()),
            _mm256_loadu_si256(p.add(2).cast()),
        ]
    }
}

/// The bytes of [`LineBytes`] among those a scan loaded, a lane per byte.
struct Seen {
    nul: __m256i,
    escape: __m256i,
}

impl Seen {
    #[target_feature(enable = "avx2")]
    #[inline]
    fn new() -> Self {
        Seen {
            nul: _mm256_setzero_si256(),
            escape: _mm256_setzero_si256(),
        }
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    fn add(&mut self, bytes: __m256i) {
        self.nul = _mm256_or_si256(self.nul, _mm256_cmpeq_epi8(bytes, _mm256_setzero_si256()));
        let escape = _mm256_cmpeq_epi8(bytes, _mm256_set1_epi8(0x1b));
        self.escape = _mm256_or_si256(self.escape, escape);
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    fn bytes(&self) -> LineBytes {
        LineBytes {
            nul: _mm256_movemask_epi8(self.nul) != 0,
            escape: _mm256_movemask_epi8(self.escape) != 0,
        }
    }
}

/// The rare part: each position of `positions` (a bit per position from `start`) and each
/// bucket of it.
#[cold]
#[inline(never)]
fn report<const SETS: usize>(
    start: usize,
    mut positions: u32,
    bytes: &[[u8; 32]; SETS],
    candidate: &mut impl FnMut(usize, usize),
) {
    while positions != 0 {
        let q = positions.trailing_zeros() as usize;
        for (set, b) in bytes.iter().enumerate() {
            let mut buckets = b[q];
            while buckets != 0 {
                candidate(start + q, 8 * set + buckets.trailing_zeros() as usize);
                buckets &= buckets - 1;
            }
        }
        positions &= positions - 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A filter with one pattern; the byte facts do not depend on the patterns.
    fn filter() -> Option<NibbleFilter<1>> {
        NibbleFilter::new(&[vec![[Some(b'e'), Some(b'r'), Some(b'r')]]])
    }

    /// NUL and ESC at every place of lines of every length around the 32-byte blocks (a line
    /// under 34 bytes, whole blocks, the last 34 bytes read again, the last two positions),
    /// alone, together and next to the bytes they fold onto (`ESC | 0x20` is `;`, `NUL | 0x20`
    /// a space): the scan tells what the plain search tells.
    #[test]
    fn the_scan_sees_every_nul_and_escape() {
        let Some(f) = filter() else {
            eprintln!("skipped: this CPU has no AVX2");
            return;
        };
        let scan = |line: &[u8]| f.scan(line, &mut |_, _| {});
        for len in 0..=130usize {
            for filler in [b'x', b';', b' ', 0xff] {
                let clean = vec![filler; len];
                assert_eq!(scan(&clean), LineBytes::default(), "{len} x {filler}");
                for at in 0..len {
                    for marks in [&[0u8][..], &[0x1b], &[0, 0x1b]] {
                        let mut line = clean.clone();
                        for (k, &m) in marks.iter().enumerate() {
                            line[(at + 7 * k) % len] = m;
                        }
                        assert_eq!(
                            scan(&line),
                            LineBytes::of(&line),
                            "{marks:?} at {at} of {len} x {filler}"
                        );
                    }
                }
            }
        }
    }

    /// The candidates are those of the line, whatever the byte facts: a pattern next to an
    /// ESC or a NUL is still reported, at its place.
    #[test]
    fn candidates_next_to_the_bytes_it_looks_for() {
        let Some(f) = filter() else { return };
        for line in [
            &b"\x1berr"[..],
            b"err\0",
            b"\x1b[31merror\x1b[0m",
            b"x\0x\x1b err",
        ] {
            let mut at = Vec::new();
            let bytes = f.scan(line, &mut |p, _| at.push(p));
            let want: Vec<usize> = (0..line.len())
                .filter(|&p| line[p..].starts_with(b"err"))
                .collect();
            assert_eq!(at, want, "{}", line.escape_ascii());
            assert_eq!(bytes, LineBytes::of(line));
        }
    }
}

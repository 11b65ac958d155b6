//! Two questions asked of every line by different stages: does it hold a NUL byte (the logger
//! then counts its file as binary), an ESC byte (an ANSI escape sequence to strip, or to scrub
//! through)? Each was a pass of its own over the line; the SIMD filter (`src/nibble_filter.rs`)
//! answers both from the loads it makes for its patterns, and [`LineBytes::of`] is the plain
//! search where there is none.

/// What a line's bytes hold, as far as the parser and the scrubber need to know.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineBytes {
    /// A NUL byte.
    pub nul: bool,
    /// An ESC byte (0x1b), which starts ANSI escape sequences.
    pub escape: bool,
}

impl LineBytes {
    /// The facts found by plain searches (CPUs without AVX2; the tests compare both ways).
    pub fn of(s: &[u8]) -> Self {
        LineBytes {
            nul: memchr::memchr(0, s).is_some(),
            escape: memchr::memchr(0x1b, s).is_some(),
        }
    }
}

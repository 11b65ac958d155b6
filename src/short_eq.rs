//! Equality of the short names compared at every event (a source's file name, a feature's
//! name, mostly under 32 bytes), written inline: the lengths, then the bytes as two
//! overlapping words. `==` on strings calls libc's `memcmp`, and six such calls per event,
//! each with its set-up, were 3% of `convert`'s instructions.

/// `a == b`, without a call for strings of up to 32 bytes.
#[inline(always)]
pub(crate) fn short_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0 => true,
        // Positions 0, n / 2 and n - 1 are every position of a string of three bytes or fewer.
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => word::<4>(a, 0) == word::<4>(b, 0) && word::<4>(a, n - 4) == word::<4>(b, n - 4),
        8..=16 => word::<8>(a, 0) == word::<8>(b, 0) && word::<8>(a, n - 8) == word::<8>(b, n - 8),
        17..=32 => {
            word::<16>(a, 0) == word::<16>(b, 0) && word::<16>(a, n - 16) == word::<16>(b, n - 16)
        }
        _ => a == b,
    }
}

/// The `N` bytes of `s` from `at`, as an array that compares as one word.
#[inline(always)]
fn word<const N: usize>(s: &[u8], at: usize) -> [u8; N] {
    s[at..at + N].try_into().expect("N bytes")
}

#[cfg(test)]
mod tests {
    use super::short_eq;
    use proptest::prelude::*;

    proptest! {
        /// Equal strings, and strings that differ in one byte anywhere, of every length
        /// around the words' sizes.
        #[test]
        fn is_string_equality(
            a in "[ab]{0,70}",
            at in any::<prop::sample::Index>(),
            other in "[ab]{0,70}",
        ) {
            prop_assert!(short_eq(&a, &a.clone()));
            if !a.is_empty() {
                let mut b = a.clone().into_bytes();
                let i = at.index(b.len());
                b[i] = if b[i] == b'a' { b'b' } else { b'a' };
                let b = String::from_utf8(b).expect("ASCII");
                prop_assert!(!short_eq(&a, &b), "{} {}", a, b);
            }
            prop_assert_eq!(short_eq(&a, &other), a == other);
        }
    }
}

//! Read buffers kept by a thread from one file to the next.
//!
//! Each file read allocated a zeroed buffer (256 KiB for a parser, 64 KiB for a prefix or
//! a line scan): jemalloc hands out a recycled large block zeroed by giving its pages back
//! to the kernel (`madvise`), so every file faulted its buffer's pages in again, cleared by
//! the kernel. An archive of builds reads thousands of files.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

/// How many buffers a thread keeps (a parser's, a prefix's and a line scan's can be out at
/// once).
const KEPT_AT_MOST: usize = 4;

thread_local! {
    static KEPT: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of `len` bytes, given back to the thread's pool when dropped. Its bytes are
/// whatever an earlier read left there (zeros when new): callers use only what they read.
pub(crate) struct ReadBuffer {
    buf: Vec<u8>,
    len: usize,
}

impl ReadBuffer {
    pub(crate) fn take(len: usize) -> Self {
        let kept = KEPT.with_borrow_mut(|kept| {
            let fits = kept.iter().position(|b| b.len() >= len);
            fits.or(kept.len().checked_sub(1))
                .map(|i| kept.swap_remove(i))
        });
        let mut buf = kept.unwrap_or_default();
        if buf.len() < len {
            buf.resize(len, 0);
        }
        ReadBuffer { buf, len }
    }
}

impl Drop for ReadBuffer {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        // `try_with`: a buffer dropped while the thread ends is simply freed.
        let _ = KEPT.try_with(|kept| {
            let mut kept = kept.borrow_mut();
            if kept.len() < KEPT_AT_MOST {
                kept.push(buf);
            }
        });
    }
}

impl Deref for ReadBuffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl DerefMut for ReadBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A buffer comes back to the next taker with its length as asked, whether the kept one
    /// is larger or smaller; no more than the limit are kept.
    #[test]
    fn buffers_are_reused_at_the_length_asked() {
        let first = {
            let mut b = ReadBuffer::take(1000);
            assert_eq!(b.len(), 1000);
            b[999] = 7;
            b.buf.as_ptr()
        };
        let again = ReadBuffer::take(10);
        assert_eq!(again.len(), 10);
        assert_eq!(again.buf.as_ptr(), first, "the kept buffer is reused");
        drop(again);
        let larger = ReadBuffer::take(5000);
        assert_eq!(larger.len(), 5000);
        assert_eq!(larger[4999], 0, "grown with zeros");
        drop(larger);
        let many: Vec<_> = (0..KEPT_AT_MOST + 3)
            .map(|_| ReadBuffer::take(64))
            .collect();
        assert!(many.iter().all(|b| b.len() == 64));
        drop(many);
        assert_eq!(KEPT.with_borrow(Vec::len), KEPT_AT_MOST);
    }
}

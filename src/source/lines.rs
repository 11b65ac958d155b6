//! Chunks in, lines out, independent of where the chunks were cut.

use memchr::memchr;

/// One line, without its `\n` (and without a `\r` before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    pub bytes: &'a [u8],
    /// 1-based line number in its source.
    pub number: u64,
    /// When the line was longer than the cap: its full length in bytes (without the newline).
    pub original_len: Option<u64>,
    /// The source ended without a newline after this line.
    pub unterminated: bool,
}

/// Splits a stream of chunks into lines of at most `max` bytes. A longer line is cut to its
/// first `max` bytes and reported once with its original length; the rest is skipped without
/// being buffered.
pub struct LineSplitter {
    max: usize,
    carry: Vec<u8>,
    /// Bytes of the current line beyond `max` that were skipped.
    overflow: u64,
    next_number: u64,
}

impl LineSplitter {
    pub fn new(max: usize) -> Self {
        LineSplitter {
            max: max.max(1),
            carry: Vec::new(),
            overflow: 0,
            next_number: 1,
        }
    }

    /// Feeds a chunk; calls `f` for every line completed by it.
    pub fn push<E>(
        &mut self,
        mut chunk: &[u8],
        f: &mut dyn FnMut(Line<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        while let Some(pos) = memchr(b'\n', chunk) {
            let (head, rest) = (&chunk[..pos], &chunk[pos + 1..]);
            if self.carry.is_empty() && self.overflow == 0 {
                if head.len() <= self.max {
                    let n = self.take_number();
                    f(make_line(head, n, None, false))?;
                } else {
                    let n = self.take_number();
                    let full = head.len() as u64;
                    f(make_line(&head[..self.max], n, Some(full), false))?;
                }
            } else {
                self.append(head);
                self.emit_carry(false, f)?;
            }
            chunk = rest;
        }
        self.append(chunk);
        Ok(())
    }

    /// Ends the stream: a last line without a newline is still a line.
    pub fn finish<E>(&mut self, f: &mut dyn FnMut(Line<'_>) -> Result<(), E>) -> Result<(), E> {
        if !self.carry.is_empty() || self.overflow > 0 {
            self.emit_carry(true, f)?;
        }
        Ok(())
    }

    /// Bytes held for an incomplete line.
    pub fn pending(&self) -> usize {
        self.carry.len()
    }

    /// Bytes of a partial last line held until its newline arrives.
    pub fn pending_bytes(&self) -> u64 {
        self.carry.len() as u64 + self.overflow
    }

    fn append(&mut self, bytes: &[u8]) {
        let room = self.max.saturating_sub(self.carry.len());
        let take = room.min(bytes.len());
        self.carry.extend_from_slice(&bytes[..take]);
        self.overflow += (bytes.len() - take) as u64;
    }

    fn emit_carry<E>(
        &mut self,
        unterminated: bool,
        f: &mut dyn FnMut(Line<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let n = self.take_number();
        let original = (self.overflow > 0).then(|| self.carry.len() as u64 + self.overflow);
        let carry = std::mem::take(&mut self.carry);
        self.overflow = 0;
        let r = f(make_line(&carry, n, original, unterminated));
        // Keep the allocation for the next carried line.
        self.carry = carry;
        self.carry.clear();
        r
    }

    fn take_number(&mut self) -> u64 {
        let n = self.next_number;
        self.next_number += 1;
        n
    }
}

fn make_line(bytes: &[u8], number: u64, original_len: Option<u64>, unterminated: bool) -> Line<'_> {
    // A CRLF line ending is a line ending; a CR inside a line (progress bars) is content.
    let bytes = if original_len.is_none() {
        bytes.strip_suffix(b"\r").unwrap_or(bytes)
    } else {
        bytes
    };
    Line {
        bytes,
        number,
        original_len,
        unterminated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]], max: usize) -> Vec<(Vec<u8>, u64, Option<u64>, bool)> {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        let mut f = |l: Line<'_>| -> Result<(), ()> {
            out.push((l.bytes.to_vec(), l.number, l.original_len, l.unterminated));
            Ok(())
        };
        for c in chunks {
            s.push(c, &mut f).unwrap();
        }
        s.finish(&mut f).unwrap();
        out
    }

    #[test]
    fn splits_crlf_and_keeps_inner_cr() {
        let out = split(&[b"a\r\nb\rc\nlast"], 100);
        assert_eq!(out[0].0, b"a");
        assert_eq!(out[1].0, b"b\rc");
        assert_eq!(out[2], (b"last".to_vec(), 3, None, true));
    }

    #[test]
    fn long_lines_are_cut_with_their_length() {
        let line = vec![b'x'; 5000];
        let mut input = line.clone();
        input.extend_from_slice(b"\nok\n");
        let whole = split(&[&input], 1024);
        assert_eq!(whole[0].0.len(), 1024);
        assert_eq!(whole[0].2, Some(5000));
        assert_eq!(whole[1].0, b"ok");
        let pieces: Vec<&[u8]> = input.chunks(7).collect();
        assert_eq!(split(&pieces, 1024), whole);
    }

    #[test]
    fn empty_input_has_no_lines() {
        assert!(split(&[b""], 10).is_empty());
        assert_eq!(split(&[b"\n"], 10).len(), 1);
    }
}

//! Line framing: which bytes of a read buffer form complete lines.
//!
//! The framer never looks behind the buffer it is given and never consumes an incomplete line
//! unless told to (a drained, rotated-away file), so any split of a byte stream into reads
//! yields the same pieces at the same offsets: line ids stay deterministic however reads fall.

/// The result of framing one buffer that starts at a piece boundary.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Framed {
    /// How many bytes form complete pieces (everything after stays for the next read).
    pub len: usize,
    /// Ends (relative to the buffer) of pieces cut because the line was longer than the limit.
    pub cuts: Vec<u32>,
    /// The last piece has no newline and was emitted only because `flush_partial` was set.
    pub partial_end: bool,
    /// The consumed bytes end inside a line (after a cut): the next piece continues it.
    pub ends_mid_line: bool,
}

/// Frames `buf`: complete `\n`-terminated lines, lines longer than `max_line` cut into pieces of
/// `max_line` bytes, and (only when `flush_partial`) a trailing line without newline.
///
/// A line of exactly `max_line` bytes plus its `\n` is not cut. `starts_mid_line` carries over
/// whether the buffer begins after a cut.
pub fn frame(buf: &[u8], max_line: usize, flush_partial: bool, starts_mid_line: bool) -> Framed {
    let mut framed = Framed {
        ends_mid_line: starts_mid_line,
        ..Framed::default()
    };
    let mut pos = 0;
    while pos < buf.len() {
        let window_end = buf
            .len()
            .min(pos.saturating_add(max_line).saturating_add(1));
        if let Some(newline) = memchr::memchr(b'\n', &buf[pos..window_end]) {
            pos += newline + 1;
            framed.ends_mid_line = false;
        } else if buf.len() - pos > max_line {
            pos += max_line;
            framed.cuts.push(pos as u32);
            framed.ends_mid_line = true;
        } else {
            if flush_partial {
                pos = buf.len();
                framed.partial_end = true;
                framed.ends_mid_line = false;
            }
            break;
        }
        framed.len = pos;
    }
    framed.len = pos;
    framed
}

/// How a piece ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceEnd {
    /// With its `\n` (not included in the piece's text).
    Newline,
    /// Cut at the line-length limit; the line continues in the next piece.
    Cut,
    /// Without newline, emitted because its file was drained after rotation or deletion.
    Partial,
}

/// One piece of framed data: a line, or part of an over-long line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece<'a> {
    /// Offset of the piece's first byte relative to the framed buffer.
    pub start: usize,
    /// The bytes without the trailing `\n`.
    pub text: &'a [u8],
    /// How the piece ended.
    pub end: PieceEnd,
    /// The piece continues a line (or an event) that was cut before it.
    pub continues: bool,
    /// Lines in the piece: 1, or more for an event joined from several lines (its text keeps
    /// the `\n` between them).
    pub lines: u32,
}

/// Events joined from several lines in framed data (see `agent::multiline`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Joins<'a> {
    /// `(start, end)` of each event of more than one line; `end` just after its last `\n`.
    pub events: &'a [(u32, u32)],
    /// Ends of events cut at their limits (the next piece continues them).
    pub cut: &'a [u32],
}

/// Iterates the pieces of framed bytes `data` (exactly `Framed::len` bytes) given its cuts.
pub fn pieces<'a>(
    data: &'a [u8],
    cuts: &'a [u32],
    partial_end: bool,
    starts_mid_line: bool,
) -> impl Iterator<Item = Piece<'a>> + 'a {
    joined_pieces(data, cuts, partial_end, starts_mid_line, Joins::default())
}

/// [`pieces`], where each event of `joins` is one piece.
pub fn joined_pieces<'a>(
    data: &'a [u8],
    cuts: &'a [u32],
    partial_end: bool,
    starts_mid_line: bool,
    joins: Joins<'a>,
) -> impl Iterator<Item = Piece<'a>> + 'a {
    let mut pos = 0usize;
    let mut cut_index = 0usize;
    let mut event_index = 0usize;
    let mut continues = starts_mid_line;
    std::iter::from_fn(move || {
        if pos >= data.len() {
            return None;
        }
        // Events come from disk too: ignore any that are out of order or out of range.
        while joins
            .events
            .get(event_index)
            .is_some_and(|&(start, _)| (start as usize) < pos)
        {
            event_index += 1;
        }
        if let Some(&(start, end)) = joins.events.get(event_index) {
            let end = end as usize;
            if start as usize == pos && end > pos && end <= data.len() {
                event_index += 1;
                let bytes = &data[pos..end];
                let (text, kind) = match bytes.strip_suffix(b"\n") {
                    Some(text) if joins.cut.contains(&(end as u32)) => (text, PieceEnd::Cut),
                    Some(text) => (text, PieceEnd::Newline),
                    None => (bytes, PieceEnd::Partial),
                };
                let piece = Piece {
                    start: pos,
                    text,
                    end: kind,
                    continues,
                    lines: memchr::memchr_iter(b'\n', text).count() as u32 + 1,
                };
                continues = kind == PieceEnd::Cut;
                pos = end;
                return Some(piece);
            }
        }
        // Cuts come from disk: ignore any that are out of order or out of range.
        while cuts.get(cut_index).is_some_and(|&c| c as usize <= pos) {
            cut_index += 1;
        }
        let next_cut = cuts.get(cut_index).map(|&c| (c as usize).min(data.len()));
        let limit = next_cut.unwrap_or(data.len());
        let start = pos;
        let (text, end) = match memchr::memchr(b'\n', &data[pos..limit]) {
            Some(newline) => {
                pos += newline + 1;
                (&data[start..start + newline], PieceEnd::Newline)
            }
            None if next_cut.is_some() => {
                cut_index += 1;
                pos = limit;
                (&data[start..limit], PieceEnd::Cut)
            }
            None => {
                // Only a flushed partial line ends without a newline or a cut.
                pos = data.len();
                let _ = partial_end;
                (&data[start..], PieceEnd::Partial)
            }
        };
        // A one-line event cut at `max_lines` ends like a cut line: the next piece continues it.
        let end = if end == PieceEnd::Newline && joins.cut.contains(&(pos as u32)) {
            PieceEnd::Cut
        } else {
            end
        };
        let piece = Piece {
            start,
            text,
            end,
            continues,
            lines: 1,
        };
        continues = end == PieceEnd::Cut;
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all_pieces(
        data: &[u8],
        framed: &Framed,
        mid: bool,
    ) -> Vec<(usize, Vec<u8>, PieceEnd, bool)> {
        pieces(&data[..framed.len], &framed.cuts, framed.partial_end, mid)
            .map(|p| (p.start, p.text.to_vec(), p.end, p.continues))
            .collect()
    }

    #[test]
    fn complete_lines_only() {
        let framed = frame(b"a\nbb\nccc", 10, false, false);
        assert_eq!(framed.len, 5);
        assert!(framed.cuts.is_empty() && !framed.partial_end);
        let got = all_pieces(b"a\nbb\nccc", &framed, false);
        assert_eq!(got[0], (0, b"a".to_vec(), PieceEnd::Newline, false));
        assert_eq!(got[1], (2, b"bb".to_vec(), PieceEnd::Newline, false));
    }

    #[test]
    fn partial_only_when_flushed() {
        let framed = frame(b"a\nccc", 10, true, false);
        assert_eq!(framed.len, 5);
        assert!(framed.partial_end);
        let got = all_pieces(b"a\nccc", &framed, false);
        assert_eq!(got[1], (2, b"ccc".to_vec(), PieceEnd::Partial, false));
    }

    #[test]
    fn long_line_is_cut_and_flagged() {
        let data = b"abcdefghij\nxy\n";
        let framed = frame(data, 4, false, false);
        assert_eq!(framed.len, data.len());
        assert_eq!(framed.cuts, vec![4, 8]);
        let got = all_pieces(data, &framed, false);
        assert_eq!(got[0], (0, b"abcd".to_vec(), PieceEnd::Cut, false));
        assert_eq!(got[1], (4, b"efgh".to_vec(), PieceEnd::Cut, true));
        assert_eq!(got[2], (8, b"ij".to_vec(), PieceEnd::Newline, true));
        assert_eq!(got[3], (11, b"xy".to_vec(), PieceEnd::Newline, false));
    }

    #[test]
    fn line_of_exactly_max_is_not_cut() {
        let framed = frame(b"abcd\n", 4, false, false);
        assert_eq!(framed.len, 5);
        assert!(framed.cuts.is_empty());
    }

    #[test]
    fn nonsense_cuts_from_disk_do_not_panic() {
        let data = b"abcdef\ngh";
        let got: Vec<_> = pieces(data, &[5, 2, 100, 3], true, false).collect();
        let total: usize = got.iter().map(|p| p.text.len()).sum();
        assert!(total <= data.len());
        assert!(pieces(data, &[0, 0], false, false).count() >= 1);
    }

    #[test]
    fn empty_lines_are_pieces() {
        let framed = frame(b"\n\n", 4, false, false);
        let got = all_pieces(b"\n\n", &framed, false);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], (1, Vec::new(), PieceEnd::Newline, false));
    }

    /// Frames `stream` the way the agent reads it: reads of the given sizes appended to what is
    /// still unconsumed, then a final flushed read.
    fn frame_in_reads(
        stream: &[u8],
        reads: &[usize],
        max_line: usize,
    ) -> Vec<(usize, Vec<u8>, PieceEnd, bool)> {
        let mut out = Vec::new();
        let mut committed = 0usize;
        let mut available = 0usize;
        let mut mid = false;
        let mut step = |available: usize, flush: bool, committed: &mut usize, mid: &mut bool| {
            let buf = &stream[*committed..available];
            let framed = frame(buf, max_line, flush, *mid);
            for (start, text, end, cont) in all_pieces(buf, &framed, *mid) {
                out.push((start + *committed, text, end, cont));
            }
            *committed += framed.len;
            *mid = framed.ends_mid_line;
        };
        for &read in reads {
            available = (available + read).min(stream.len());
            step(available, false, &mut committed, &mut mid);
        }
        step(stream.len(), true, &mut committed, &mut mid);
        out
    }

    proptest! {
        #[test]
        fn any_read_split_yields_same_pieces(
            stream in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'a'), Just(b'b')], 0..300),
            reads in proptest::collection::vec(1usize..50, 0..20),
            max_line in 1usize..20,
        ) {
            let whole = frame_in_reads(&stream, &[], max_line);
            let split = frame_in_reads(&stream, &reads, max_line);
            prop_assert_eq!(&whole, &split);
            // Pieces tile the stream exactly.
            let mut rebuilt = Vec::new();
            for (start, text, end, _) in &whole {
                prop_assert_eq!(*start, rebuilt.len());
                prop_assert!(text.len() <= max_line);
                rebuilt.extend_from_slice(text);
                if *end == PieceEnd::Newline { rebuilt.push(b'\n'); }
            }
            prop_assert_eq!(rebuilt, stream);
        }
    }
}

//! Joining consecutive lines into events (a stack trace is one event, not thirty lines).
//!
//! The joiner runs inside the tailer on framed bytes that begin at an event boundary (the
//! checkpoint never falls inside an event). It closes every event it can decide on and leaves
//! the last one open, unread, unless it may be closed now (the file has not grown for the entry's
//! `timeout_ms`, or it is being drained). An open event is read again, from its first byte, at
//! the next read. So, as for lines, any split of the file into reads gives the same events: an
//! event's extent depends only on the lines of the file and on whether the timeout passed with
//! it last; and since its end is committed with the checkpoint, a replay after a crash reads the
//! same events from there. A timeout is the only thing that depends on time: a continuation line
//! written after its event was closed by the timeout starts an event of its own.
//!
//! Rules (`config::multiline::Rule`), for a line after an event's first line:
//! - `start = RE`: the line continues the event unless it matches `RE`;
//! - `continue = RE`: the line continues the event if it matches `RE`;
//! - preset `java`: it continues if it is a frame (`<whitespace>at ...`), `Caused by: ...`,
//!   `Suppressed: ...` (indented or not), `<whitespace>... N more` / `... N common frames
//!   omitted`, or an exception line: a dotted class name ending in `Exception`, `Error` or
//!   `Throwable`, alone or followed by `:` (`java.lang.IllegalStateException: boom`);
//! - preset `python`: `Traceback (most recent call last):` continues the line before it (the
//!   log line); inside a traceback, indented lines continue it, and the first line that is not
//!   indented (the exception, `ValueError: boom`) ends the traceback and continues the event;
//!   after it, an empty line, `During handling of the above exception, another exception
//!   occurred:` or `The above exception was the direct cause of the following exception:` and
//!   the empty line after those continue it (chained tracebacks);
//! - preset `go`: an event whose first line starts with `panic: `, `fatal error: `, `SIGQUIT: `
//!   or `goroutine N [` is a dump; every following line that is empty, indented, starts with
//!   `goroutine `, `created by `, `panic: `, `[signal `, `exit status `, `PC=` or `signal `, or
//!   is a call frame (`name(args)` without spaces before the parenthesis) continues it. Other
//!   events are single lines.
//!
//! An event reaching `max_lines` lines, or that a line would take past `max_bytes`, is cut
//! there: both parts are flagged `split` and the second goes on joining lines. A line that was
//! itself cut at `max_line_bytes` is never joined with others.

use std::time::Duration;

use regex::bytes::Regex;

use crate::config::multiline::{Multiline, Preset, Rule};

/// A compiled `multiline`.
#[derive(Debug, Clone)]
pub struct Joiner {
    rule: Compiled,
    max_lines: usize,
    max_bytes: usize,
    timeout: Duration,
}

#[derive(Debug, Clone)]
enum Compiled {
    Start(Regex),
    Continue(Regex),
    Java(Regex),
    Python,
    Go { start: Regex, continuation: Regex },
}

/// What the joiner knows about the event being built (reset at each event's first line).
#[derive(Debug, Clone, Copy, Default)]
struct EventState {
    /// Python: inside `Traceback ...`, before its exception line.
    in_traceback: bool,
    /// Python: right after an exception line, or after a chaining sentence.
    after_exception: bool,
    /// Go: the event is a panic or goroutine dump.
    dump: bool,
}

/// The events found in framed bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grouped {
    /// Bytes of the closed events (the rest, the open event, stays for the next read).
    pub len: usize,
    /// `(start, end)` of every closed event of more than one line (relative to the buffer;
    /// `end` just after its last line's `\n`). Single-line events are plain lines.
    pub joined: Vec<(u32, u32)>,
    /// Ends of events cut at `max_lines` / `max_bytes` (the next event continues them).
    pub cut: Vec<u32>,
}

const JAVA: &str = r"^(?:\s+at\s|\s*Caused by:|\s*Suppressed:|\s+\.\.\. \d+ (?:more|common frames omitted)\s*$|(?:[A-Za-z_$][\w$]*\.)+[A-Za-z_$][\w$]*(?:Exception|Error|Throwable)(?::|\s*$))";
const GO_START: &str = r"^(?:panic: |fatal error: |SIGQUIT: |goroutine \d+ \[)";
const GO_CONTINUE: &str = r"^(?:\s*$|\s|goroutine |created by |panic: |\[signal |exit status |PC=|signal |[^\s(]+\(.*\)\s*$)";

const TRACEBACK: &[u8] = b"Traceback (most recent call last):";
const CHAINED: [&[u8]; 2] = [
    b"During handling of the above exception, another exception occurred:",
    b"The above exception was the direct cause of the following exception:",
];

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

fn is_indented(line: &[u8]) -> bool {
    matches!(line.first(), Some(b' ' | b'\t'))
}

impl Joiner {
    /// Compiles `config` (already checked by `config::validate_collect_entry`; a regex that
    /// does not compile here is an error all the same).
    pub fn new(config: &Multiline) -> Result<Joiner, regex::Error> {
        let rule = match &config.rule {
            Rule::Start(pattern) => Compiled::Start(Regex::new(pattern)?),
            Rule::Continue(pattern) => Compiled::Continue(Regex::new(pattern)?),
            Rule::Preset(Preset::Java) => Compiled::Java(Regex::new(JAVA)?),
            Rule::Preset(Preset::Python) => Compiled::Python,
            Rule::Preset(Preset::Go) => Compiled::Go {
                start: Regex::new(GO_START)?,
                continuation: Regex::new(GO_CONTINUE)?,
            },
        };
        Ok(Joiner {
            rule,
            max_lines: config.max_lines,
            max_bytes: config.max_bytes,
            timeout: Duration::from_millis(config.timeout_ms),
        })
    }

    /// How long a file must stay unchanged before its last event is closed.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The largest event in bytes (reads must be able to hold one).
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The state of an event whose first line is `line`; `rest`: the event is the rest of one
    /// cut at its limits (inside a traceback if the line is indented; inside a dump).
    fn first(&self, line: &[u8], rest: bool) -> EventState {
        let mut state = EventState::default();
        match &self.rule {
            Compiled::Python => {
                state.in_traceback = line.starts_with(TRACEBACK) || (rest && is_indented(line));
            }
            Compiled::Go { start, .. } => state.dump = rest || start.is_match(line),
            _ => {}
        }
        state
    }

    /// Whether `line` continues the event whose state is `state` (updated).
    fn continues(&self, line: &[u8], state: &mut EventState) -> bool {
        match &self.rule {
            Compiled::Start(start) => !start.is_match(line),
            Compiled::Continue(continuation) => continuation.is_match(line),
            Compiled::Java(frame) => frame.is_match(line),
            Compiled::Go { continuation, .. } => state.dump && continuation.is_match(line),
            Compiled::Python => {
                if line.starts_with(TRACEBACK) {
                    state.in_traceback = true;
                    state.after_exception = false;
                    return true;
                }
                if state.in_traceback {
                    if !is_indented(line) && !is_blank(line) {
                        state.in_traceback = false;
                        state.after_exception = true;
                    }
                    return true;
                }
                if state.after_exception {
                    if is_blank(line) {
                        return true;
                    }
                    if CHAINED.iter().any(|c| line.starts_with(c)) {
                        return true;
                    }
                }
                false
            }
        }
    }

    /// Groups the framed bytes `buf` (starting at an event boundary, inside an over-long line
    /// when `starts_mid_line`, or with the rest of an event cut at its limits when
    /// `starts_in_event`; `cuts` are the framer's cuts of over-long lines) into events. The
    /// last event stays open unless `close_last`.
    ///
    /// The rest of a cut event starts over as an event of its own (its state taken from its
    /// first line, as [`Grouped::len`] may stop there), so the events found never depend on
    /// where reads ended.
    pub fn group(
        &self,
        buf: &[u8],
        cuts: &[u32],
        starts_mid_line: bool,
        starts_in_event: bool,
        close_last: bool,
    ) -> Grouped {
        let mut rest = starts_in_event;
        let mut grouped = Grouped::default();
        // The event being built: start, end, lines, state.
        let mut open: Option<(usize, usize, usize, EventState)> = None;
        let mut pos = 0usize;
        let mut cut_index = 0usize;
        // After a framer cut, the pieces up to the line's end are not joinable.
        let mut in_long_line = starts_mid_line;
        while pos < buf.len() {
            let next_cut = cuts
                .get(cut_index)
                .map(|&c| c as usize)
                .filter(|&c| c > pos && c <= buf.len());
            let limit = next_cut.unwrap_or(buf.len());
            let (end, was_cut) = match memchr::memchr(b'\n', &buf[pos..limit]) {
                Some(newline) => (pos + newline + 1, false),
                None if next_cut.is_some() => {
                    cut_index += 1;
                    (limit, true)
                }
                None => (buf.len(), false),
            };
            let start = pos;
            pos = end;
            if was_cut || in_long_line {
                // A piece of an over-long line: it closes the event before it and stands alone.
                if let Some(event) = open.take() {
                    close(&mut grouped, event, false);
                }
                grouped.len = end;
                in_long_line = was_cut;
                continue;
            }
            let text = buf[start..end]
                .strip_suffix(b"\n")
                .unwrap_or(&buf[start..end]);
            match open.as_mut() {
                None => open = Some((start, end, 1, self.first(text, std::mem::take(&mut rest)))),
                Some((event_start, event_end, lines, state)) => {
                    if self.continues(text, state) {
                        if *lines >= self.max_lines || end - *event_start > self.max_bytes {
                            let event = (*event_start, *event_end, *lines, *state);
                            close(&mut grouped, event, true);
                            open = Some((start, end, 1, self.first(text, true)));
                        } else {
                            *event_end = end;
                            *lines += 1;
                        }
                    } else {
                        let event = (*event_start, *event_end, *lines, *state);
                        close(&mut grouped, event, false);
                        open = Some((start, end, 1, self.first(text, false)));
                    }
                }
            }
        }
        if close_last {
            if let Some(event) = open.take() {
                close(&mut grouped, event, false);
            }
        }
        grouped
    }
}

/// Records the closed `event` (start, end, lines, state); `cut`: at a limit.
fn close(grouped: &mut Grouped, event: (usize, usize, usize, EventState), cut: bool) {
    let (start, end, lines, _) = event;
    if lines > 1 {
        grouped.joined.push((start as u32, end as u32));
    }
    if cut {
        grouped.cut.push(end as u32);
    }
    grouped.len = end;
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::agent::framing::frame;

    fn joiner(rule: Rule, max_lines: usize, max_bytes: usize) -> Joiner {
        Joiner::new(&Multiline {
            rule,
            max_lines,
            max_bytes,
            timeout_ms: 1000,
        })
        .unwrap()
    }

    /// The closed events of `text` as strings (the last one closed too).
    fn events(joiner: &Joiner, text: &str) -> Vec<String> {
        let grouped = joiner.group(text.as_bytes(), &[], false, false, true);
        let mut out = Vec::new();
        let mut pos = 0usize;
        let mut joined = grouped.joined.iter().peekable();
        while pos < grouped.len {
            let end = match joined.peek() {
                Some(&&(start, end)) if start as usize == pos => {
                    joined.next();
                    end as usize
                }
                _ => memchr::memchr(b'\n', &text.as_bytes()[pos..])
                    .map_or(text.len(), |n| pos + n + 1),
            };
            out.push(text[pos..end].trim_end_matches('\n').to_string());
            pos = end;
        }
        out
    }

    #[test]
    fn the_preset_patterns_compile() {
        for pattern in [JAVA, GO_START, GO_CONTINUE] {
            Regex::new(pattern).unwrap();
        }
    }

    #[test]
    fn java_stack_traces_are_one_event_each() {
        let text = "2026-12-01 10:00:00 ERROR c.e.Checkout - payment failed\n\
java.lang.IllegalStateException: boom\n\
\tat com.example.Checkout.pay(Checkout.java:42)\n\
\tat com.example.Checkout.run(Checkout.java:10)\n\
Caused by: java.io.IOException: connection reset\n\
\tat java.base/sun.nio.ch.SocketDispatcher.read0(Native Method)\n\
\t... 12 more\n\
\tSuppressed: java.lang.RuntimeException: close failed\n\
\t\tat com.example.Db.close(Db.java:7)\n\
2026-12-01 10:00:01 INFO c.e.Checkout - next order\n\
2026-12-01 10:00:02 INFO c.e.Checkout - done\n";
        let found = events(&joiner(Rule::Preset(Preset::Java), 500, 1 << 20), text);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert_eq!(found[0].lines().count(), 9);
        assert!(found[0].ends_with("Db.java:7)"));
        assert_eq!(
            found[1],
            "2026-12-01 10:00:01 INFO c.e.Checkout - next order"
        );
    }

    #[test]
    fn python_tracebacks_end_with_their_exception_line() {
        let text = [
            "ERROR:root:request failed",
            "Traceback (most recent call last):",
            "  File \"app.py\", line 3, in <module>",
            "    main()",
            "KeyError: 'user'",
            "",
            "During handling of the above exception, another exception occurred:",
            "",
            "Traceback (most recent call last):",
            "  File \"app.py\", line 5, in <module>",
            "ValueError: boom",
            "INFO:root:next",
            "",
        ]
        .join("\n");
        let text = text.as_str();
        let found = events(&joiner(Rule::Preset(Preset::Python), 500, 1 << 20), text);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0].starts_with("ERROR:root:request failed\nTraceback"));
        assert!(found[0].ends_with("ValueError: boom"));
        assert_eq!(found[1], "INFO:root:next");
    }

    #[test]
    fn go_panics_and_goroutine_dumps_are_one_event() {
        let text = "2026/12/01 10:00:00 serving\n\
panic: runtime error: index out of range [3] with length 3\n\
\n\
goroutine 1 [running]:\n\
main.handler(0xc000012345)\n\
\t/src/app/main.go:12 +0x1d\n\
created by main.main\n\
\t/src/app/main.go:20 +0x45\n\
exit status 2\n\
2026/12/01 10:00:05 restarted\n";
        let found = events(&joiner(Rule::Preset(Preset::Go), 500, 1 << 20), text);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[1].starts_with("panic: runtime error"));
        assert!(found[1].ends_with("exit status 2"));
    }

    #[test]
    fn start_and_continue_rules() {
        let start = joiner(Rule::Start(r"^\d{4}-".into()), 500, 1 << 20);
        let text = "2026-01 a\n more\n more\n2026-02 b\n";
        assert_eq!(
            events(&start, text),
            ["2026-01 a\n more\n more", "2026-02 b"]
        );
        let cont = joiner(Rule::Continue(r"^\s".into()), 500, 1 << 20);
        assert_eq!(
            events(&cont, text),
            ["2026-01 a\n more\n more", "2026-02 b"]
        );
    }

    #[test]
    fn the_last_event_stays_open_until_it_may_be_closed() {
        let start = joiner(Rule::Start(r"^\d".into()), 500, 1 << 20);
        let text = b"1 a\n x\n2 b\n y\n";
        let grouped = start.group(text, &[], false, false, false);
        assert_eq!(grouped.len, 7, "the second event is still open");
        assert_eq!(grouped.joined, [(0, 7)]);
        let closed = start.group(text, &[], false, false, true);
        assert_eq!(closed.len, text.len());
    }

    #[test]
    fn limits_cut_events_and_flag_both_parts() {
        let start = joiner(Rule::Start(r"^\d".into()), 2, 1 << 20);
        let grouped = start.group(b"1\na\nb\nc\n2\n", &[], false, false, true);
        assert_eq!(grouped.joined, [(0, 4), (4, 8)]);
        assert_eq!(grouped.cut, [4]);
        let bytes = joiner(Rule::Start(r"^\d".into()), 500, 6);
        let grouped = bytes.group(b"1\naa\nbb\n2\n", &[], false, false, true);
        assert_eq!(grouped.joined, [(0, 5)]);
        assert_eq!(grouped.cut, [5]);
    }

    #[test]
    fn pieces_of_an_over_long_line_stand_alone() {
        let start = joiner(Rule::Start(r"^\d".into()), 500, 1 << 20);
        let buf = b"1 a\nxxxxxxxxxxxx\nyy\n";
        let framed = frame(buf, 8, false, false);
        let grouped = start.group(&buf[..framed.len], &framed.cuts, false, false, true);
        // "1 a" alone (its continuation was too long to join), then the long line's pieces,
        // then "yy", which continues nothing joinable and starts an event of its own.
        assert!(grouped.joined.is_empty(), "{grouped:?}");
        assert_eq!(grouped.len, buf.len());
    }

    proptest! {
        /// Any split into reads gives the same events: reading from each closed event's end
        /// (as the tailer does, its checkpoint there) finds the events of reading all at once.
        #[test]
        fn any_split_into_reads_gives_the_same_events(
            lines in proptest::collection::vec(
                prop_oneof![
                    Just("2026 start".to_string()),
                    Just("\tat x.Y(Z.java:1)".to_string()),
                    Just(" cont".to_string()),
                    Just(String::new()),
                    Just("Traceback (most recent call last):".to_string()),
                    Just("  File \"a.py\", line 1".to_string()),
                    Just("ValueError: x".to_string()),
                    Just("During handling of the above exception, another exception occurred:".to_string()),
                    Just("panic: x".to_string()),
                    Just("goroutine 1 [running]:".to_string()),
                    Just("main.f(0x1)".to_string()),
                    "[a-z ]{0,12}",
                ],
                0..40,
            ),
            reads in proptest::collection::vec(1usize..60, 1..30),
            rule in prop_oneof![
                Just(Rule::Start(r"^\d".into())),
                Just(Rule::Continue(r"^\s".into())),
                Just(Rule::Preset(Preset::Java)),
                Just(Rule::Preset(Preset::Python)),
                Just(Rule::Preset(Preset::Go)),
            ],
            max_lines in 1usize..6,
        ) {
            let joiner = joiner(rule, max_lines, 1 << 20);
            let mut text = Vec::new();
            for line in &lines {
                text.extend_from_slice(line.as_bytes());
                text.push(b'\n');
            }
            let whole = joiner.group(&text, &[], false, false, false);
            // Now in reads: each read sees what was written so far, from the checkpoint.
            let mut checkpoint = 0usize;
            let mut in_event = false;
            let mut written = 0usize;
            let mut joined = Vec::new();
            let mut cut = Vec::new();
            for step in reads.iter().chain(std::iter::once(&usize::MAX)) {
                written = written.saturating_add(*step).min(text.len());
                let visible = &text[checkpoint..written];
                let framed = frame(visible, 1 << 20, false, false);
                let grouped = joiner.group(&visible[..framed.len], &framed.cuts, false, in_event, false);
                joined.extend(grouped.joined.iter().map(|&(s, e)| (s as usize + checkpoint, e as usize + checkpoint)));
                cut.extend(grouped.cut.iter().map(|&e| e as usize + checkpoint));
                checkpoint += grouped.len;
                // As the tailer's checkpoint records it: stopped between two parts of a cut event.
                if grouped.len > 0 {
                    in_event = grouped.cut.last() == Some(&(grouped.len as u32));
                }
            }
            let whole_joined: Vec<(usize, usize)> =
                whole.joined.iter().map(|&(s, e)| (s as usize, e as usize)).collect();
            prop_assert_eq!(checkpoint, whole.len);
            prop_assert_eq!(joined, whole_joined);
            prop_assert_eq!(cut, whole.cut.iter().map(|&e| e as usize).collect::<Vec<_>>());
        }
    }
}

//! Reading input line by line with bounded memory: a bad line (too long,
//! not UTF-8, unreadable) fails alone, with its number, and reading goes on.
//!
//! Memory does not depend on the input: a line is read into a buffer of at
//! most `--max-line-bytes` (+2 for its ending); the rest of a longer line is
//! skipped as it streams by, never stored. The reader thread of `ingest`
//! and `check FILE` runs ahead of the database by a bounded number of
//! bytes, and batches close at a byte budget as well as a line count.

use std::borrow::Cow;
use std::io::{BufRead, ErrorKind, Read};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::Duration;

use crate::{EXIT_BAD_INPUT, Fail};

/// The default longest line (or CSV row), in bytes: 1 MiB.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;

/// The most characters of bad input an error message quotes.
pub const QUOTE_CHARS: usize = 60;

/// A batch (of `ingest`, `import`, `check FILE`) closes once its lines hold
/// this many bytes, whatever its line count: 1,000 lines of 1 MiB would
/// otherwise be a gigabyte in one transaction.
pub const BATCH_BYTES: usize = 4 << 20;

/// How far the reader thread may run ahead of the database, in bytes
/// (besides at most [`AHEAD_LINES`] lines).
const AHEAD_BYTES: usize = 4 << 20;

/// How far the reader thread may run ahead, in lines.
const AHEAD_LINES: usize = 4096;

/// The line cap of the commands that read lines or rows.
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct Limit {
    /// The longest line (or CSV row) accepted, in bytes. A longer one is an
    /// error for that line alone; it is skipped without being kept in memory.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_LINE_BYTES, value_parser = parse_cap)]
    pub max_line_bytes: usize,
}

/// `--max-line-bytes`: from 16 bytes to 1 GiB.
fn parse_cap(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (16..=1 << 30).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a number of bytes from 16 to {} (default {DEFAULT_MAX_LINE_BYTES})",
            1 << 30
        )),
    }
}

/// Lines of a reader, each at most `cap` bytes (without its `\n` or
/// `\r\n`). A line that is longer, not UTF-8 or unreadable is an error for
/// that line alone; a read error ends the lines after its error.
pub struct Lines<R> {
    reader: R,
    cap: usize,
    buf: Vec<u8>,
    done: bool,
}

/// The lines of `reader`, at most [`DEFAULT_MAX_LINE_BYTES`] each.
pub fn text_lines<R: BufRead>(reader: R) -> Lines<R> {
    capped_lines(reader, DEFAULT_MAX_LINE_BYTES)
}

/// The lines of `reader`, at most `cap` bytes each.
pub fn capped_lines<R: BufRead>(reader: R, cap: usize) -> Lines<R> {
    Lines {
        reader,
        cap,
        buf: Vec::new(),
        done: false,
    }
}

impl<R: BufRead> Lines<R> {
    /// Skips the rest of the current line (through its `\n`) without
    /// storing it.
    fn skip_line(&mut self) -> std::io::Result<()> {
        loop {
            let chunk = match self.reader.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                return Ok(());
            }
            match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.reader.consume(i + 1);
                    return Ok(());
                }
                None => {
                    let n = chunk.len();
                    self.reader.consume(n);
                }
            }
        }
    }
}

impl<R: BufRead> Iterator for Lines<R> {
    type Item = Result<String, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        self.buf.clear();
        // The content, then room for "\r\n": one byte more than that and
        // the line is too long whatever follows.
        let limit = self.cap as u64 + 2;
        let read = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut self.buf);
        match read {
            Ok(0) => {
                self.done = true;
                None
            }
            Ok(_) => {
                let ended = self.buf.last() == Some(&b'\n');
                if ended {
                    self.buf.pop();
                    if self.buf.last() == Some(&b'\r') {
                        self.buf.pop();
                    }
                }
                if self.buf.len() > self.cap {
                    let message = too_long(self.cap, &self.buf);
                    if !ended && let Err(e) = self.skip_line() {
                        self.done = true;
                        return Some(Err(format!("{message}; then cannot read: {e}")));
                    }
                    // Give back what the long line held.
                    self.buf = Vec::new();
                    return Some(Err(message));
                }
                Some(utf8(&self.buf))
            }
            Err(e) => {
                self.done = true;
                Some(Err(format!("cannot read: {e}")))
            }
        }
    }
}

/// The line as text, or an error naming the first bad byte.
fn utf8(bytes: &[u8]) -> Result<String, String> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_owned()),
        Err(e) => Err(not_utf8(bytes, &e)),
    }
}

/// "not valid UTF-8" with where, and the text around the bad byte.
pub fn not_utf8(bytes: &[u8], e: &std::str::Utf8Error) -> String {
    let at = e.valid_up_to();
    let byte = bytes.get(at).copied().unwrap_or_default();
    // Up to 40 bytes before it (valid UTF-8: start on a character) and 20
    // after.
    let mut from = at.saturating_sub(40);
    while from < at && bytes.get(from).is_some_and(|b| b & 0xC0 == 0x80) {
        from += 1;
    }
    let near = bytes
        .get(from..bytes.len().min(at + 20))
        .unwrap_or_default();
    format!(
        "the line is not valid UTF-8: byte 0x{byte:02X} at column {} (near {}{})",
        at + 1,
        if from > 0 { "…" } else { "" },
        quote_bytes(near)
    )
}

/// "line is longer than N bytes" and how it starts.
pub fn too_long(cap: usize, start: &[u8]) -> String {
    format!(
        "line is longer than {cap} bytes (starts with {})",
        quote_start(start)
    )
}

/// At most [`QUOTE_CHARS`] characters of raw input, in quotes, with control
/// characters escaped and an ellipsis if cut (bad UTF-8 shows as U+FFFD).
pub fn quote_bytes(bytes: &[u8]) -> String {
    // 4 bytes per character at most.
    let head = bytes.get(..QUOTE_CHARS * 4).unwrap_or(bytes);
    quote(&String::from_utf8_lossy(head), bytes.len() > head.len())
}

/// As [`quote_bytes`], for the start of something longer: always with an
/// ellipsis.
pub fn quote_start(bytes: &[u8]) -> String {
    let head = bytes.get(..QUOTE_CHARS * 4).unwrap_or(bytes);
    quote(&String::from_utf8_lossy(head), true)
}

fn quote(text: &str, cut: bool) -> String {
    let mut out = String::from("\"");
    let mut chars = text.chars();
    for c in chars.by_ref().take(QUOTE_CHARS) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('"');
    if cut || chars.next().is_some() {
        out.push('…');
    }
    out
}

/// An error message with every quoted value (`"..."`, as `{:?}` writes
/// them) longer than [`QUOTE_CHARS`] characters cut to that many and an
/// ellipsis: a message quotes at most a short prefix of bad input, however
/// long the value was.
pub fn shorten(message: &str) -> Cow<'_, str> {
    if message.len() <= QUOTE_CHARS {
        return Cow::Borrowed(message);
    }
    let mut out = String::with_capacity(message.len().min(1024));
    let mut changed = false;
    let mut rest = message;
    while let Some(open) = rest.find('"') {
        let (before, from_quote) = rest.split_at(open);
        out.push_str(before);
        let inner = from_quote.get(1..).unwrap_or_default();
        // The closing quote: the first one not escaped by a backslash.
        let mut close = None;
        let mut escaped = false;
        for (i, c) in inner.char_indices() {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => {
                    close = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let Some(close) = close else {
            // An unmatched quote: the rest as it is.
            out.push_str(from_quote);
            rest = "";
            break;
        };
        let value = inner.get(..close).unwrap_or_default();
        if value.chars().count() > QUOTE_CHARS {
            let cut: String = value.chars().take(QUOTE_CHARS).collect();
            // Do not end inside an escape sequence.
            let cut = match cut.rfind('\\') {
                Some(i) if cut.len() - i < 12 => cut.get(..i).unwrap_or_default().to_owned(),
                _ => cut,
            };
            out.push('"');
            out.push_str(&cut);
            out.push_str("\"…");
            changed = true;
        } else {
            out.push('"');
            out.push_str(value);
            out.push('"');
        }
        rest = inner.get(close + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(message)
    }
}

/// Bytes the reader thread has sent and the consumer not yet taken.
struct Budget {
    state: Mutex<(usize, bool)>,
    freed: Condvar,
}

impl Budget {
    /// Waits until `n` more bytes fit (a line alone always fits); false
    /// once the consumer is gone.
    fn take(&self, n: usize) -> bool {
        let Ok(mut s) = self.state.lock() else {
            return false;
        };
        while !s.1 && s.0 > 0 && s.0 + n > AHEAD_BYTES {
            s = match self.freed.wait(s) {
                Ok(s) => s,
                Err(_) => return false,
            };
        }
        s.0 += n;
        !s.1
    }

    fn give(&self, n: usize) {
        if let Ok(mut s) = self.state.lock() {
            s.0 = s.0.saturating_sub(n);
            self.freed.notify_all();
        }
    }

    fn close(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.1 = true;
            self.freed.notify_all();
        }
    }
}

/// What the reader thread hands over: a line and its size, or its error.
type Item = Result<String, String>;

/// Lines read on a thread, at most [`AHEAD_BYTES`] and [`AHEAD_LINES`]
/// ahead of their consumer.
pub struct Receiver {
    rx: mpsc::Receiver<Item>,
    budget: Arc<Budget>,
}

impl Receiver {
    fn took(&self, item: Item) -> Item {
        if let Ok(text) = &item {
            self.budget.give(cost(text));
        }
        item
    }

    /// The next line, waiting for it; `None` at the end.
    pub fn recv(&self) -> Option<Item> {
        self.rx.recv().ok().map(|i| self.took(i))
    }

    /// The next line if it arrives within `wait`.
    pub fn recv_timeout(&self, wait: Duration) -> Result<Item, mpsc::RecvTimeoutError> {
        self.rx.recv_timeout(wait).map(|i| self.took(i))
    }
}

impl Iterator for Receiver {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        self.recv()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.budget.close();
    }
}

/// What a line counts against the read-ahead budget.
fn cost(text: &str) -> usize {
    text.len() + 64
}

/// Reads lines on a thread, so that a pause in a stream (a pipe from a
/// webhook receiver) commits what has arrived instead of waiting for a full
/// batch. Lines are at most `cap` bytes.
pub fn reader(file: &str, cap: usize) -> Result<Receiver, Fail> {
    let input: Box<dyn BufRead + Send> = if file == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(file)
            .map_err(|e| Fail(EXIT_BAD_INPUT, format!("cannot read {file}: {e}")))?;
        Box::new(std::io::BufReader::new(f))
    };
    // Bounded in lines and in bytes: a fast file cannot run ahead of the
    // database by more than a few batches, so memory stays flat.
    let (tx, rx) = mpsc::sync_channel(AHEAD_LINES);
    let budget = Arc::new(Budget {
        state: Mutex::new((0, false)),
        freed: Condvar::new(),
    });
    let theirs = budget.clone();
    std::thread::spawn(move || {
        for line in capped_lines(input, cap) {
            if let Ok(text) = &line
                && !theirs.take(cost(text))
            {
                return;
            }
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    Ok(Receiver { rx, budget })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], cap: usize) -> Vec<Result<String, String>> {
        capped_lines(input, cap).collect()
    }

    #[test]
    fn cap_counts_the_content_not_the_ending() {
        let got = lines(b"abcd\nabcd\r\nabcde\nab\n", 4);
        assert_eq!(got[0], Ok("abcd".into()));
        assert_eq!(got[1], Ok("abcd".into()));
        assert_eq!(
            got[2],
            Err("line is longer than 4 bytes (starts with \"abcde\"…)".into())
        );
        assert_eq!(got[3], Ok("ab".into()));
        assert_eq!(got.len(), 4);
    }

    #[test]
    fn a_long_line_is_skipped_whole_even_through_a_small_buffer() {
        let mut input = vec![b'x'; 100_000];
        input.extend_from_slice(b"\nnext\nlast");
        let reader = std::io::BufReader::with_capacity(7, &input[..]);
        let got: Vec<_> = capped_lines(reader, 10).collect();
        assert_eq!(got.len(), 3);
        let err = got[0].clone().unwrap_err();
        assert!(err.starts_with("line is longer than 10 bytes (starts with \"xxx"));
        assert!(err.ends_with("\"…)"), "{err}");
        assert_eq!(got[1], Ok("next".into()));
        assert_eq!(got[2], Ok("last".into()));
    }

    #[test]
    fn bad_bytes_fail_their_line_only() {
        let got = lines(b"ok\ncaf\xe9 au lait\n\x1b[31m\xff\nok", 100);
        assert_eq!(got[0], Ok("ok".into()));
        assert_eq!(
            got[1],
            Err(
                "the line is not valid UTF-8: byte 0xE9 at column 4 (near \"caf\u{fffd} au lait\")"
                    .into()
            )
        );
        let e = got[2].clone().unwrap_err();
        assert!(e.contains("column 6") && e.contains("\\u{1b}[31m"), "{e}");
        assert_eq!(got[3], Ok("ok".into()));
    }

    #[test]
    fn shorten_cuts_long_quoted_values() {
        let long = "x".repeat(500);
        let msg = format!("unknown op {long:?}: expected one of config, check");
        let short = shorten(&msg);
        assert_eq!(
            short,
            format!(
                "unknown op \"{}\"…: expected one of config, check",
                "x".repeat(QUOTE_CHARS)
            )
        );
        assert_eq!(
            shorten("bad time \"x\": expected"),
            "bad time \"x\": expected"
        );
        let escaped = format!("{:?} and \"short\"", format!("a\"b{}", "y".repeat(80)));
        let s = shorten(&escaped);
        assert!(s.starts_with("\"a\\\"byyy"), "{s}");
        assert!(s.ends_with("\"… and \"short\""), "{s}");
        assert!(s.chars().count() < 90, "{s}");
    }
}

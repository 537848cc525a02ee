//! Reading input line by line: a bad line fails alone.

use std::io::BufRead;
use std::sync::mpsc;

use crate::{EXIT_BAD_INPUT, Fail};

/// The lines of a reader; a line that is not UTF-8 (or cannot be read) is
/// an error for that line alone, and reading goes on.
pub fn text_lines<R: BufRead>(mut reader: R) -> impl Iterator<Item = Result<String, String>> {
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut buf = Vec::new();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => None,
            Ok(_) => {
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                    if buf.last() == Some(&b'\r') {
                        buf.pop();
                    }
                }
                Some(String::from_utf8(buf).map_err(|_| "the line is not valid UTF-8".to_owned()))
            }
            Err(e) => {
                done = true;
                Some(Err(format!("cannot read: {e}")))
            }
        }
    })
}

/// Reads lines on a thread, so that a pause in a stream (a pipe from a
/// webhook receiver) commits what has arrived instead of waiting for a full
/// batch.
pub fn reader(file: &str) -> Result<mpsc::Receiver<Result<String, String>>, Fail> {
    let reader: Box<dyn BufRead + Send> = if file == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(file)
            .map_err(|e| Fail(EXIT_BAD_INPUT, format!("cannot read {file}: {e}")))?;
        Box::new(std::io::BufReader::new(f))
    };
    // Bounded: a fast file cannot run ahead of the database by more than
    // a few batches, so memory stays flat.
    let (tx, rx) = mpsc::sync_channel(4096);
    std::thread::spawn(move || {
        for line in text_lines(reader) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

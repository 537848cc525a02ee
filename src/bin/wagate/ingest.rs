//! `wagate ingest`: event lines applied durably, in batches.

use std::io::Write;
use std::sync::mpsc;
use std::time::Duration;

use serde::Serialize;
use wagate::Event;
use wagate::scenario::{Line, LineError, Output, parse_live_line};

use crate::lines::{BATCH_BYTES, shorten};
use crate::{EXIT_BAD_INPUT, Fail};

/// `wagate ingest` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// The file, or - for standard input.
    #[arg(default_value = "-")]
    file: String,
    /// Most lines per transaction.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch: u32,
    #[command(flatten)]
    limit: crate::lines::Limit,
}

/// A parsed line (its event is in the batch's list of events): the error
/// to report instead if a status callback with an invalid address turns out
/// to be about a message sent elsewhere; or why the line is not an event.
type Parsed = Result<Option<LineError>, String>;

/// Applies event lines in batches; prints one line per input line.
pub fn run(db: &crate::Db<'_>, business: &str, args: &Args) -> Result<u8, Fail> {
    let gate = db.create()?;
    let business = gate.business(business)?;
    let batch = args.batch as usize;
    let rx = crate::lines::reader(&args.file, args.limit.max_line_bytes)?;
    let mut out = std::io::stdout().lock();
    let mut n = 0usize;
    let mut failed = false;
    let mut tally = crate::progress::Tally::new("ingest", "lines");
    let mut done = false;
    while !done {
        // Collect up to `batch` lines (and at most BATCH_BYTES of them), or
        // what arrives before a short pause.
        let mut lines: Vec<(usize, Parsed)> = Vec::new();
        let mut events: Vec<Event> = Vec::new();
        let mut bytes = 0usize;
        let mut first = true;
        while lines.len() < batch && bytes < BATCH_BYTES {
            let next = if first {
                rx.recv().ok_or(mpsc::RecvTimeoutError::Disconnected)
            } else {
                rx.recv_timeout(Duration::from_millis(20))
            };
            match next {
                Ok(Ok(text)) => {
                    first = false;
                    n += 1;
                    bytes += text.len();
                    match parse_live_line(&text) {
                        Ok(Line::Skip) => {}
                        Ok(Line::Event {
                            event,
                            address_error,
                            ..
                        }) => {
                            events.push(event);
                            lines.push((n, Ok(address_error)));
                        }
                        Ok(_) => lines.push((
                            n,
                            Err("ingest takes inbound, consent, template, status and link lines; use check or replay for questions".into()),
                        )),
                        Err(e) => lines.push((n, Err(shorten(&e.0).into_owned()))),
                    }
                }
                Ok(Err(e)) => {
                    // An unreadable line is that line's error; the stream goes on.
                    first = false;
                    n += 1;
                    lines.push((n, Err(e)));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    done = true;
                    break;
                }
            }
        }
        let results = match business.ingest_batch(&events) {
            Ok(r) => r,
            Err(e) => {
                tally.finish();
                let from = lines.first().map_or(n, |(line, _)| *line);
                return Err(Fail(
                    EXIT_BAD_INPUT,
                    format!(
                        "lines {from} to {n} not stored: {e}; every line acknowledged before them is stored"
                    ),
                ));
            }
        };
        drop(events);
        let mut results = results.into_iter();
        for (line, parsed) in lines {
            let outcome = match parsed {
                Err(msg) => Err(msg),
                Ok(address_error) => match (results.next(), address_error) {
                    (Some(Ok(o)), _) => Ok(o),
                    // An invalid address matters only for a message sent elsewhere.
                    (Some(Err(wagate::Error::UnknownMessage(_))), Some(e)) => {
                        Err(shorten(&e.0).into_owned())
                    }
                    (Some(Err(e)), _) => Err(shorten(&e.to_string()).into_owned()),
                    (None, _) => Err("internal: missing result".into()),
                },
            };
            let o = match outcome {
                Ok(o) => {
                    tally.applied(o.duplicate);
                    Output::value(
                        line,
                        &IngestLine {
                            ok: true,
                            outcome: o,
                        },
                    )
                }
                Err(msg) => {
                    failed = true;
                    tally.error();
                    Output::error(line, &msg)
                }
            };
            writeln!(out, "{}", o.json)?;
        }
        out.flush()?;
        tally.show();
    }
    tally.finish();
    Ok(if failed { EXIT_BAD_INPUT } else { 0 })
}

#[derive(Serialize)]
struct IngestLine {
    ok: bool,
    #[serde(flatten)]
    outcome: wagate::IngestOutcome,
}

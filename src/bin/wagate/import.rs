//! `wagate import`: bulk consent records from CSV or JSON Lines.
//!
//! A row is keyed by its content: the address, action, scope, `at`,
//! source, evidence and conditional (and `received_at` when the row gives
//! one). A row whose key the address's trail already holds is a duplicate:
//! nothing is written for it. So an import stopped midway (a full disk, a
//! kill) is finished by running it again: the batches that committed are
//! skipped, the rest lands, and the consent chains stay whole (new events
//! are appended; a skipped row writes nothing).

use std::collections::HashSet;
use std::io::{BufRead, ErrorKind, Write};
use std::path::PathBuf;

use csv_core::ReadRecordResult;
use wagate::chain::{Digest, Hash};
use wagate::scenario::{Line, Output, parse_live_line};
use wagate::store::NewConsent;
use wagate::{Address, Business, ConsentEvent, Event, Scope, Timestamp};

use crate::lines::{BATCH_BYTES, Limit, capped_lines, quote_bytes, quote_start, shorten};
use crate::progress::Tally;
use crate::{EXIT_BAD_INPUT, Fail};

/// The columns of a CSV file, in the order the code reads them.
const COLUMNS: [&str; 6] = ["user", "action", "scope", "at", "source", "evidence"];
/// The columns a header must have.
const REQUIRED: [&str; 4] = ["user", "action", "at", "source"];
/// More header fields than this and the header is refused unread.
const MAX_HEADER_FIELDS: usize = 64;
/// How many raw bytes of a row are kept to quote in its error.
const HEAD_BYTES: usize = 240;

/// `wagate import` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// The file (.csv with a header, or JSON Lines).
    file: PathBuf,
    /// Most rows per transaction (a batch also closes at 4 MiB of rows).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch: u32,
    #[command(flatten)]
    limit: Limit,
}

/// A row: its line number, and the consent event or why it is not one.
type Row = (u64, Result<ConsentEvent, String>);

/// Imports the file; prints an error line per bad row, a summary on stderr.
pub fn run(db: &crate::Db<'_>, business: &str, args: &Args) -> Result<u8, Fail> {
    let gate = db.create()?;
    let handle = gate.business(business)?;
    let file = &args.file;
    let f = std::fs::File::open(file).map_err(|e| {
        Fail(
            EXIT_BAD_INPUT,
            format!("cannot read {}: {e}", file.display()),
        )
    })?;
    let reader = std::io::BufReader::new(f);
    let cap = args.limit.max_line_bytes;
    let csv = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let rows: Box<dyn Iterator<Item = Row>> = if csv {
        let mut records = CsvRecords::new(reader, cap);
        let columns = header(&mut records)?;
        records.expect_fields(columns.count);
        Box::new(records.map(move |(n, fields)| (n, fields.and_then(|f| csv_row(&columns, &f)))))
    } else {
        Box::new(json_rows(reader, cap))
    };
    let mut import = Import {
        business: &handle,
        tally: Tally::new("import", "rows"),
        out: std::io::stdout().lock(),
        landed: 0,
        duplicates: 0,
        through: None,
    };
    let batch = args.batch as usize;
    let mut pending: Vec<Row> = Vec::new();
    let mut bytes = 0;
    for row in rows {
        bytes += match &row.1 {
            Ok(c) => c.source.len() + c.evidence.as_ref().map_or(0, String::len) + 64,
            Err(e) => e.len() + 64,
        };
        pending.push(row);
        if pending.len() >= batch || bytes >= BATCH_BYTES {
            import.flush(&mut pending)?;
            bytes = 0;
        }
    }
    import.flush(&mut pending)?;
    import.finish();
    Ok(if import.tally.errors() > 0 {
        EXIT_BAD_INPUT
    } else {
        0
    })
}

/// An import in progress.
struct Import<'a> {
    business: &'a Business,
    tally: Tally,
    out: std::io::StdoutLock<'static>,
    /// Rows written.
    landed: u64,
    /// Rows whose content was already in the trail (or earlier in the file's batch).
    duplicates: u64,
    /// The last line of the last committed batch.
    through: Option<u64>,
}

/// What becomes of a row of a batch.
enum Fate {
    Bad(String),
    Duplicate,
    New,
}

impl Import<'_> {
    /// Writes one batch in one transaction: new rows land, duplicates are
    /// counted, bad rows print their error line.
    fn flush(&mut self, pending: &mut Vec<Row>) -> Result<(), Fail> {
        let (Some(first), Some(last)) = (pending.first(), pending.last()) else {
            return Ok(());
        };
        let (first, last) = (first.0, last.0);
        let now = Timestamp::now();
        // What earlier batches (or an earlier run) committed: the rows the
        // trail already holds, read in one transaction.
        let recorded = self
            .business
            .recorded(pending.iter().filter_map(|(_, row)| row.as_ref().ok()));
        let mut recorded = match recorded {
            Ok(r) => r.into_iter(),
            Err(e) => return Err(self.stopped(first, last, &e)),
        };
        let mut seen: HashSet<Hash> = HashSet::new();
        let fates: Vec<Fate> = pending
            .iter_mut()
            .map(|(_, row)| {
                let c = match row {
                    Err(e) => return Fate::Bad(std::mem::take(e)),
                    Ok(c) => c,
                };
                let same_arrival = c.received_at.is_some_and(|r| r <= now);
                let new = NewConsent {
                    action: c.action,
                    scope: c.scope,
                    at: c.at,
                    received_at: c.received_at.unwrap_or(now),
                    conditional: c.conditional,
                    source: &c.source,
                    evidence: c.evidence.as_deref(),
                };
                // Once in the trail, or earlier in this batch: a duplicate.
                let fresh = seen.insert(key(c.user.as_str(), &new, same_arrival));
                if recorded.next() == Some(false) && fresh {
                    Fate::New
                } else {
                    Fate::Duplicate
                }
            })
            .collect();
        let mut events = Vec::new();
        let mut rows = Vec::with_capacity(pending.len());
        for ((n, row), fate) in pending.drain(..).zip(fates) {
            if let (Fate::New, Ok(c)) = (&fate, row) {
                events.push(Event::Consent(c));
            }
            rows.push((n, fate));
        }
        let mut results = match self.business.ingest_batch(&events) {
            Ok(r) => r.into_iter(),
            Err(e) => return Err(self.stopped(first, last, &e)),
        };
        drop(events);
        for (n, fate) in rows {
            let error = match fate {
                Fate::Bad(msg) => Some(msg),
                Fate::Duplicate => {
                    self.duplicates += 1;
                    self.tally.applied(true);
                    None
                }
                Fate::New => match results.next() {
                    Some(Ok(_)) => {
                        self.landed += 1;
                        self.tally.applied(false);
                        None
                    }
                    Some(Err(e)) => Some(shorten(&e.to_string()).into_owned()),
                    None => Some("internal: missing result".into()),
                },
            };
            if let Some(msg) = error {
                self.tally.error();
                writeln!(
                    self.out,
                    "{}",
                    Output::error(usize::try_from(n).unwrap_or(usize::MAX), &msg).json
                )?;
            }
        }
        self.out.flush()?;
        self.through = Some(last);
        self.tally.show();
        Ok(())
    }

    /// The failure that ends the import (a full disk, a lost lock): what
    /// landed before it, and how to finish.
    fn stopped(&mut self, first: u64, last: u64, e: &wagate::Error) -> Fail {
        self.finish();
        let before = match self.through {
            Some(line) => format!(" (every row through line {line})"),
            None => String::new(),
        };
        Fail(
            EXIT_BAD_INPUT,
            format!(
                "import stopped: the rows of lines {first} to {last} were not stored: {e}. \
                 {} rows landed before them{before}, {} were already there, {} failed; \
                 run the same import again to finish it: rows that landed are skipped as duplicates",
                self.landed,
                self.duplicates,
                self.tally.errors()
            ),
        )
    }

    /// The summary on stderr.
    fn finish(&self) {
        self.tally.finish();
        if self.duplicates > 0 {
            eprintln!(
                "import: {} rows were already in the trail (imported before, or twice in the file): nothing written for them",
                self.duplicates
            );
        }
    }
}

/// The content key of a row (for rows repeated within one batch).
fn key(user: &str, c: &NewConsent<'_>, same_arrival: bool) -> Hash {
    let mut d = Digest::new();
    d.field(b"wagate.import.v1");
    d.field(user.as_bytes());
    d.field(c.action.as_str().as_bytes());
    d.field(c.scope.as_str().as_bytes());
    d.field(c.at.as_millis().to_string().as_bytes());
    d.field(c.source.as_bytes());
    match c.evidence {
        None => d.field(b"0"),
        Some(e) => {
            d.field(b"1");
            d.field(e.as_bytes());
        }
    }
    d.field(if c.conditional { b"1" } else { b"0" });
    if same_arrival {
        d.field(c.received_at.as_millis().to_string().as_bytes());
    }
    d.finish()
}

/// JSON Lines: one `consent` line per row; blank and `#` lines skipped.
fn json_rows<R: BufRead>(reader: R, cap: usize) -> impl Iterator<Item = Row> {
    capped_lines(reader, cap)
        .enumerate()
        .filter_map(|(i, line)| {
            let n = i as u64 + 1;
            let text = match line {
                Ok(text) => text,
                // An unreadable row is that row's error; the others go on.
                Err(e) => return Some((n, Err(e))),
            };
            let text = if i == 0 {
                text.trim_start_matches('\u{feff}')
            } else {
                &text
            };
            if text.trim().is_empty() || text.trim_start().starts_with('#') {
                return None;
            }
            Some((n, json_row(text)))
        })
}

fn json_row(line: &str) -> Result<ConsentEvent, String> {
    match parse_live_line(line).map_err(|e| shorten(&e.0).into_owned())? {
        Line::Event {
            event: Event::Consent(c),
            ..
        } => Ok(c),
        _ => Err("import takes consent lines ({\"op\":\"consent\", ...}) or CSV".into()),
    }
}

/// Where each known column is, and how many fields a row has.
struct Columns {
    at: [Option<usize>; 6],
    count: usize,
}

/// Reads the header: every column known, none twice, the required ones
/// there.
fn header<R: BufRead>(records: &mut CsvRecords<R>) -> Result<Columns, Fail> {
    let bad = |why: String| Fail(EXIT_BAD_INPUT, format!("header: {why}"));
    let expected = COLUMNS.join(",");
    let (n, names) = records
        .next()
        .ok_or_else(|| bad(format!("the file is empty; expected a header: {expected}")))?;
    let names = names.map_err(|e| bad(format!("line {n}: {e}; expected {expected}")))?;
    let mut at = [None; 6];
    for (i, name) in names.iter().enumerate() {
        let name = name.trim();
        let Some(c) = COLUMNS.iter().position(|c| name.eq_ignore_ascii_case(c)) else {
            return Err(bad(format!(
                "unknown column {}; expected {expected}",
                shorten(&format!("{name:?}"))
            )));
        };
        match at.get_mut(c) {
            Some(slot @ None) => *slot = Some(i),
            _ => return Err(bad(format!("column {name:?} appears twice"))),
        }
    }
    for (c, p) in COLUMNS.iter().zip(&at) {
        if p.is_none() && REQUIRED.contains(c) {
            return Err(bad(format!("missing column {c:?}; expected {expected}")));
        }
    }
    Ok(Columns {
        at,
        count: names.len(),
    })
}

fn csv_row(cols: &Columns, fields: &[String]) -> Result<ConsentEvent, String> {
    let get = |i: usize| -> &str {
        cols.at
            .get(i)
            .copied()
            .flatten()
            .and_then(|p| fields.get(p))
            .map_or("", |s| s.as_str())
    };
    let user =
        Address::parse(get(0).trim()).map_err(|e| shorten(&format!("user: {e}")).into_owned())?;
    let action = get(1)
        .trim()
        .parse()
        .map_err(|e| shorten(&format!("{e}")).into_owned())?;
    let scope = match get(2).trim() {
        "" => Scope::All,
        s => s
            .parse()
            .map_err(|e| shorten(&format!("{e}")).into_owned())?,
    };
    let at =
        Timestamp::parse(get(3).trim()).map_err(|e| shorten(&format!("at: {e}")).into_owned())?;
    let source = get(4).trim();
    if source.is_empty() {
        return Err("missing source".into());
    }
    let mut event = ConsentEvent::new(user, action, scope, at, source);
    if !get(5).is_empty() {
        event = event.with_evidence(get(5));
    }
    Ok(event)
}

/// Why a record was not read whole.
#[derive(Clone, Copy)]
enum Overflow {
    /// More than the cap of field bytes.
    Long,
    /// More fields than the header (or than a header may have).
    Fields,
}

/// The records of a CSV file (RFC 4180: quoted fields may hold commas,
/// quotes as `""` and line breaks; records end at LF, CRLF or a lone CR;
/// blank lines are skipped; a UTF-8 BOM is dropped), each with the line it
/// starts on. A record is read into buffers of fixed size: one with more
/// than `cap` bytes of fields, or more fields than expected, is an error
/// and is skipped, quotes and all, without being stored.
struct CsvRecords<R> {
    reader: R,
    parser: csv_core::Reader,
    cap: usize,
    out: Vec<u8>,
    ends: Vec<usize>,
    /// The fields every record must have (after the header).
    expected: Option<usize>,
    /// Line breaks read so far (LF, CRLF and a lone CR count one each).
    breaks: u64,
    prev_cr: bool,
    started: bool,
    done: bool,
}

impl<R: BufRead> CsvRecords<R> {
    fn new(reader: R, cap: usize) -> Self {
        CsvRecords {
            reader,
            parser: csv_core::Reader::new(),
            cap,
            out: vec![0; cap],
            ends: vec![0; MAX_HEADER_FIELDS],
            expected: None,
            breaks: 0,
            prev_cr: false,
            started: false,
            done: false,
        }
    }

    /// From now on, a record must have exactly `n` fields.
    fn expect_fields(&mut self, n: usize) {
        self.expected = Some(n);
        // One more slot than needed: a record that fills it is ragged.
        self.ends = vec![0; n + 1];
    }

    /// Drops a UTF-8 byte order mark at the start of the file.
    fn skip_bom(&mut self) -> std::io::Result<()> {
        let input = self.reader.fill_buf()?;
        if input.starts_with(b"\xEF\xBB\xBF") {
            self.reader.consume(3);
        }
        Ok(())
    }

    /// The next record: its first line and its fields (or its error).
    fn record(&mut self) -> Option<(u64, Result<Vec<String>, String>)> {
        if self.done {
            return None;
        }
        if !self.started {
            self.started = true;
            if let Err(e) = self.skip_bom() {
                self.done = true;
                return Some((1, Err(format!("cannot read: {e}"))));
            }
        }
        let (mut nout, mut nend) = (0, 0);
        let mut start: Option<u64> = None;
        let mut head: Vec<u8> = Vec::new();
        let mut overflow: Option<Overflow> = None;
        loop {
            let input = match self.reader.fill_buf() {
                Ok(input) => input,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.done = true;
                    return Some((self.breaks + 1, Err(format!("cannot read: {e}"))));
                }
            };
            // Once the record overflowed, its bytes go through the same
            // buffers again and again: parsed (quotes matter) but not kept.
            let (out, ends) = match overflow {
                None => (
                    self.out.get_mut(nout..).unwrap_or_default(),
                    self.ends.get_mut(nend..).unwrap_or_default(),
                ),
                Some(_) => (self.out.as_mut_slice(), self.ends.as_mut_slice()),
            };
            let (result, nin, o, e) = self.parser.read_record(input, out, ends);
            for &b in input.get(..nin).unwrap_or_default() {
                if start.is_none() && b != b'\r' && b != b'\n' {
                    start = Some(self.breaks + 1);
                }
                if start.is_some() && head.len() < HEAD_BYTES {
                    head.push(b);
                }
                match b {
                    b'\n' if self.prev_cr => self.prev_cr = false,
                    b'\n' => self.breaks += 1,
                    b'\r' => {
                        self.breaks += 1;
                        self.prev_cr = true;
                    }
                    _ => self.prev_cr = false,
                }
            }
            self.reader.consume(nin);
            if overflow.is_none() {
                nout += o;
                nend += e;
            }
            match result {
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull => {
                    overflow.get_or_insert(Overflow::Long);
                }
                ReadRecordResult::OutputEndsFull => {
                    overflow.get_or_insert(Overflow::Fields);
                }
                ReadRecordResult::Record => break,
                ReadRecordResult::End => {
                    self.done = true;
                    return None;
                }
            }
        }
        let line = start.unwrap_or(self.breaks + 1);
        while head.last().is_some_and(|b| matches!(b, b'\r' | b'\n')) {
            head.pop();
        }
        let quoted = || quote_start(&head);
        let fields = match overflow {
            Some(Overflow::Long) => Err(format!(
                "row is longer than {} bytes (starts with {})",
                self.cap,
                quoted()
            )),
            Some(Overflow::Fields) => Err(match self.expected {
                Some(n) => format!(
                    "row has more fields than the header's {n} (a comma in a field that is not quoted?); starts with {}",
                    quoted()
                ),
                None => format!("more than {MAX_HEADER_FIELDS} columns"),
            }),
            None => self.fields(nout, nend, &head),
        };
        Some((line, fields))
    }

    /// The fields of a record read whole.
    fn fields(&self, nout: usize, nend: usize, head: &[u8]) -> Result<Vec<String>, String> {
        let data = self.out.get(..nout).unwrap_or_default();
        let mut fields = Vec::with_capacity(nend);
        let mut from = 0;
        for &end in self.ends.get(..nend).unwrap_or_default() {
            let bytes = data.get(from..end).unwrap_or_default();
            from = end;
            match std::str::from_utf8(bytes) {
                Ok(s) => fields.push(s.to_owned()),
                Err(e) => {
                    let at = e.valid_up_to();
                    return Err(format!(
                        "the row is not valid UTF-8: byte 0x{:02X} in field {} (starts with {})",
                        bytes.get(at).copied().unwrap_or_default(),
                        fields.len() + 1,
                        quote_bytes(head)
                    ));
                }
            }
        }
        if fields.iter().all(|f| f.trim().is_empty()) {
            // A blank row (spaces, or only commas as spreadsheets export
            // them): nothing to import.
            return Ok(Vec::new());
        }
        match self.expected {
            Some(n) if fields.len() != n => Err(format!(
                "row has {} field{}, the header has {n} (starts with {})",
                fields.len(),
                if fields.len() == 1 { "" } else { "s" },
                quote_bytes(head)
            )),
            _ => Ok(fields),
        }
    }
}

impl<R: BufRead> Iterator for CsvRecords<R> {
    type Item = (u64, Result<Vec<String>, String>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.record()? {
                // A blank row is skipped.
                (_, Ok(fields)) if fields.is_empty() => continue,
                other => return Some(other),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CsvRecords;

    fn records(
        input: &[u8],
        cap: usize,
        expected: Option<usize>,
    ) -> Vec<(u64, Result<Vec<String>, String>)> {
        let mut r = CsvRecords::new(input, cap);
        if let Some(n) = expected {
            r.expect_fields(n);
        }
        r.collect()
    }

    fn ok(v: &[&str]) -> Result<Vec<String>, String> {
        Ok(v.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn quoting_endings_and_bom() {
        let got = records(
            b"\xEF\xBB\xBFa,b\r\n\"x, y\",\"say \"\"hi\"\"\"\r\rp,\"two\nlines\"\nq,r\r",
            100,
            None,
        );
        assert_eq!(
            got,
            vec![
                (1, ok(&["a", "b"])),
                (2, ok(&["x, y", "say \"hi\""])),
                (4, ok(&["p", "two\nlines"])),
                (6, ok(&["q", "r"])),
            ]
        );
    }

    #[test]
    fn ragged_long_and_blank_rows_fail_or_skip_alone() {
        let mut input = b"a,b\n1,2,3\n,\n  \n".to_vec();
        input.extend_from_slice(b"1,2,3,4,5\n");
        input.extend_from_slice(b"\"");
        input.extend(std::iter::repeat_n(b'x', 5000));
        input.extend_from_slice(b",\n\"\n4,5\n6\n");
        let got = records(&input, 64, Some(2));
        assert_eq!(got.len(), 6, "{got:?}");
        let err = |i: usize| got[i].1.clone().unwrap_err();
        assert_eq!(got[0], (1, ok(&["a", "b"])));
        assert_eq!(got[1].0, 2);
        assert!(
            err(1).starts_with("row has 3 fields, the header has 2"),
            "{}",
            err(1)
        );
        assert_eq!(got[2].0, 5);
        assert!(
            err(2).starts_with("row has more fields than the header's 2"),
            "{}",
            err(2)
        );
        assert_eq!(got[3].0, 6);
        assert!(
            err(3).starts_with("row is longer than 64 bytes (starts with \"\"xxx"),
            "{}",
            err(3)
        );
        assert_eq!(got[4], (8, ok(&["4", "5"])));
        assert_eq!(got[5].0, 9);
        assert!(
            err(5).starts_with("row has 1 field, the header has 2"),
            "{}",
            err(5)
        );
    }
}

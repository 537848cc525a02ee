//! `wagate import`: bulk consent records from CSV or JSON Lines.

use std::io::Write;
use std::path::Path;

use wagate::scenario::{Line, Output, parse_live_line};
use wagate::{Address, ConsentEvent, Event, Gate, Scope, Timestamp};

use crate::lines::text_lines;
use crate::{EXIT_BAD_INPUT, Fail};

const BATCH: usize = 1000;
const COLUMNS: [&str; 6] = ["user", "action", "scope", "at", "source", "evidence"];

/// Imports `file`; prints an error line per bad row, a summary on stderr.
pub fn run(gate: &Gate, business: &str, file: &Path) -> Result<u8, Fail> {
    let business = gate.business(business)?;
    let f = std::fs::File::open(file).map_err(|e| {
        Fail(
            EXIT_BAD_INPUT,
            format!("cannot read {}: {e}", file.display()),
        )
    })?;
    let mut lines = text_lines(std::io::BufReader::new(f)).enumerate();
    let mut out = std::io::stdout().lock();
    let csv = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    // CSV: the header names the columns.
    let header = if csv {
        loop {
            match lines.next() {
                None => {
                    return Err(Fail(
                        EXIT_BAD_INPUT,
                        "empty CSV file: expected a header".into(),
                    ));
                }
                Some((_, line)) => {
                    let line = line.map_err(|e| Fail(EXIT_BAD_INPUT, format!("header: {e}")))?;
                    let line = line.trim_start_matches('\u{feff}');
                    if line.trim().is_empty() {
                        continue;
                    }
                    break Some(header(line)?);
                }
            }
        }
    } else {
        None
    };
    let mut tally = crate::progress::Tally::new("import", "rows");
    let mut pending: Vec<(usize, Result<Event, String>)> = Vec::with_capacity(BATCH);
    let mut flush = |pending: &mut Vec<(usize, Result<Event, String>)>,
                     out: &mut std::io::StdoutLock<'_>|
     -> Result<(), Fail> {
        let events: Vec<Event> = pending
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok().cloned())
            .collect();
        let mut results = business.ingest_batch(&events)?.into_iter();
        for (n, parsed) in pending.drain(..) {
            let err = match parsed {
                Err(msg) => Some(msg),
                Ok(_) => match results.next() {
                    Some(Ok(_)) => None,
                    Some(Err(e)) => Some(e.to_string()),
                    None => Some("internal: missing result".into()),
                },
            };
            match err {
                None => tally.applied(false),
                Some(msg) => {
                    tally.error();
                    writeln!(out, "{}", Output::error(n, &msg).json)?;
                }
            }
        }
        tally.show();
        Ok(())
    };
    for (i, line) in lines {
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                // An unreadable row is that row's error; the others go on.
                pending.push((i + 1, Err(e)));
                continue;
            }
        };
        if line.trim().is_empty() || (header.is_none() && line.trim_start().starts_with('#')) {
            continue;
        }
        let parsed = match &header {
            Some(cols) => csv_row(cols, &line),
            None => json_row(&line),
        };
        pending.push((i + 1, parsed));
        if pending.len() >= BATCH {
            flush(&mut pending, &mut out)?;
        }
    }
    flush(&mut pending, &mut out)?;
    tally.finish();
    Ok(if tally.errors() > 0 {
        EXIT_BAD_INPUT
    } else {
        0
    })
}

/// Column positions of the known columns.
fn header(line: &str) -> Result<Vec<Option<usize>>, Fail> {
    let names = split_csv(line).map_err(|e| Fail(EXIT_BAD_INPUT, format!("header: {e}")))?;
    let pos: Vec<Option<usize>> = COLUMNS
        .iter()
        .map(|c| names.iter().position(|n| n.trim().eq_ignore_ascii_case(c)))
        .collect();
    for (c, p) in COLUMNS.iter().zip(&pos) {
        if p.is_none() && matches!(*c, "user" | "action" | "at" | "source") {
            return Err(Fail(
                EXIT_BAD_INPUT,
                format!(
                    "header: missing column {c:?}; expected {}",
                    COLUMNS.join(",")
                ),
            ));
        }
    }
    Ok(pos)
}

fn csv_row(cols: &[Option<usize>], line: &str) -> Result<Event, String> {
    let fields = split_csv(line)?;
    let get = |i: usize| -> &str {
        cols.get(i)
            .copied()
            .flatten()
            .and_then(|p| fields.get(p))
            .map_or("", |s| s.as_str())
    };
    let user = Address::parse(get(0).trim()).map_err(|e| format!("user: {e}"))?;
    let action = get(1).trim().parse().map_err(|e| format!("{e}"))?;
    let scope = match get(2).trim() {
        "" => Scope::All,
        s => s.parse().map_err(|e| format!("{e}"))?,
    };
    let at = Timestamp::parse(get(3).trim()).map_err(|e| format!("at: {e}"))?;
    let source = get(4).trim();
    if source.is_empty() {
        return Err("missing source".into());
    }
    let mut event = ConsentEvent::new(user, action, scope, at, source);
    if !get(5).is_empty() {
        event = event.with_evidence(get(5));
    }
    Ok(Event::Consent(event))
}

fn json_row(line: &str) -> Result<Event, String> {
    match parse_live_line(line).map_err(|e| e.0)? {
        Line::Event {
            event: e @ Event::Consent(_),
            ..
        } => Ok(e),
        _ => Err("import takes consent lines ({\"op\":\"consent\", ...}) or CSV".into()),
    }
}

/// Splits one CSV line (RFC 4180 quoting; a quoted field cannot span lines).
fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            (false, '"') => return Err("a quote inside an unquoted field".into()),
            (false, ',') => {
                fields.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted field (fields cannot span lines)".into());
    }
    fields.push(field);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::split_csv;

    #[test]
    fn csv_quoting() {
        assert_eq!(split_csv("a,b,,c").unwrap(), ["a", "b", "", "c"]);
        assert_eq!(
            split_csv(r#"x,"form v3, checkbox","say ""yes""""#).unwrap(),
            ["x", "form v3, checkbox", r#"say "yes""#]
        );
        assert!(split_csv(r#"x,"open"#).is_err());
        assert!(split_csv(r#"x,ab"c"#).is_err());
    }
}

//! Progress for long runs (`ingest`, `import`): a live count on stderr when
//! it is a terminal, and always one summary line at the end.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

/// Counts of a run and its progress display.
pub struct Tally {
    what: &'static str,
    unit: &'static str,
    applied: u64,
    duplicates: u64,
    errors: u64,
    started: Instant,
    bar: ProgressBar,
}

impl Tally {
    /// A tally for `what` (the command) counting `unit`s (lines, rows).
    pub fn new(what: &'static str, unit: &'static str) -> Self {
        // Hidden unless stderr is a terminal (indicatif checks).
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} [{elapsed}]") {
            bar.set_style(style);
        }
        Tally {
            what,
            unit,
            applied: 0,
            duplicates: 0,
            errors: 0,
            started: Instant::now(),
            bar,
        }
    }

    /// One item landed (a duplicate changed nothing).
    pub fn applied(&mut self, duplicate: bool) {
        self.applied += 1;
        self.duplicates += u64::from(duplicate);
    }

    /// One item failed.
    pub fn error(&mut self) {
        self.errors += 1;
    }

    /// Items that failed so far.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    fn total(&self) -> u64 {
        self.applied + self.errors
    }

    /// Updates the live display (after each committed batch).
    pub fn show(&self) {
        self.bar.set_message(format!(
            "{}: {} {}, {} applied, {} errors",
            self.what,
            self.total(),
            self.unit,
            self.applied,
            self.errors
        ));
        self.bar.tick();
    }

    /// Clears the display and prints the summary line on stderr.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            self.total() as f64 / secs
        } else {
            0.0
        };
        eprintln!(
            "{}: {} {}, {} applied ({} duplicates), {} errors, {secs:.1} s, {rate:.0} {}/s",
            self.what,
            self.total(),
            self.unit,
            self.applied,
            self.duplicates,
            self.errors,
            self.unit
        );
    }
}

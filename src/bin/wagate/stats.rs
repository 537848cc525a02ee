//! `wagate stats`: counts over one business.

use std::io::Write;

use crate::{Fail, json};

/// Prints the counts of one business.
pub fn run(db: &crate::Db<'_>, business: &str, as_json: bool) -> Result<u8, Fail> {
    let gate = db.existing(None)?;
    let s = crate::existing_business(&gate, business)?.stats()?;
    let mut out = std::io::stdout().lock();
    if as_json {
        writeln!(out, "{}", json(&s))?;
    } else {
        writeln!(out, "people            {}", s.people)?;
        writeln!(out, "addresses         {}", s.users)?;
        writeln!(out, "links             {}", s.links)?;
        writeln!(out, "opted in          {}", s.opted_in)?;
        writeln!(out, "opted out         {}", s.opted_out)?;
        writeln!(out, "open windows now  {}", s.open_windows)?;
        writeln!(out, "consent events    {}", s.consent_events)?;
        writeln!(out, "inbound messages  {}", s.inbound_messages)?;
        writeln!(out, "send attempts     {}", s.send_attempts)?;
        writeln!(out, "templates         {}", s.templates)?;
    }
    Ok(0)
}

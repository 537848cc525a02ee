//! `wagate forget`: erase a person, keeping what stops messages to them.

use std::io::Write;

use wagate::Address;

use crate::{EXIT_BAD_INPUT, Fail, json};

/// `wagate forget`.
#[derive(clap::Args)]
pub struct Args {
    /// The person to forget, by any of their addresses (every linked
    /// address goes with it).
    #[arg(long)]
    user: String,
    /// Then rewrite the whole file (SQLite's VACUUM): for a database written
    /// before every connection zeroed what it freed (schema version 3 or
    /// older), whose free space may hold old copies.
    #[arg(long)]
    vacuum: bool,
    /// One JSON object instead of a sentence.
    #[arg(long)]
    json: bool,
}

/// Forgets one person of one business.
pub fn run(db: &crate::Db<'_>, business: &str, args: &Args) -> Result<u8, Fail> {
    let user =
        Address::parse(&args.user).map_err(|e| Fail(EXIT_BAD_INPUT, format!("--user: {e}")))?;
    let gate = db.existing(None)?;
    let b = crate::existing_business(&gate, business)?;
    let mut done = b.forget(&user)?;
    if args.vacuum {
        b.vacuum()?;
        done.file_scrubbed = true;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", json(&done))?;
        return Ok(0);
    }
    if !done.found() {
        writeln!(
            out,
            "nothing was recorded about {}: nothing to forget",
            crate::printable(user.as_str())
        )?;
        return Ok(0);
    }
    writeln!(
        out,
        "forgot {} addresses: {} consent events sealed (their opt-outs still count), {} inbound messages, {} windows, {} send attempts scrubbed, {} links, {} feedback rows",
        done.addresses,
        done.consent_events,
        done.inbound_messages,
        done.windows,
        done.send_attempts,
        done.links,
        done.external_feedback
    )?;
    if db.url().is_some() {
        writeln!(
            out,
            "note: PostgreSQL keeps old row versions until VACUUM reclaims them (autovacuum does, in time; VACUUM the store's tables to hasten it)"
        )?;
    } else if !done.file_scrubbed {
        writeln!(
            out,
            "note: a reader held old pages in the write-ahead log; they leave the disk at the next checkpoint (run forget again later to force one)"
        )?;
    }
    Ok(0)
}

//! `wagate export`: every consent event with its chain, and every link, as
//! JSON Lines that `wagate ingest` takes back and `wagate verify --export`
//! (or the recipe in docs/rules.md) re-verifies outside the database.

use std::io::Write;

use serde::Serialize;
use wagate::Timestamp;

use crate::{Fail, json, parse_time};

/// `wagate export` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Only events and links received at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
}

/// A `consent` line: exported with its place in the chain, or from a
/// webhook without one.
#[derive(Serialize)]
pub struct ConsentLine<'a> {
    pub op: &'static str,
    pub at: Timestamp,
    pub received_at: Timestamp,
    pub user: &'a str,
    pub action: wagate::Action,
    pub scope: wagate::Scope,
    pub source: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub conditional: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<Chain<'a>>,
}

/// The chain fields: enough to recompute the hash and link it to the
/// previous event of the same address.
#[derive(Serialize)]
pub struct Chain<'a> {
    /// The business name (part of the hash).
    pub business: &'a str,
    /// Position in the address's trail.
    pub seq: i64,
    /// The previous event's hash (hex; zeros for the first).
    pub prev: String,
    /// This event's hash (hex).
    pub hash: String,
    /// The address's subject (hex), which the hash covers.
    pub subject: String,
    /// The event's salt (hex, 16 bytes), while its evidence is in clear.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// The evidence digest (hex) that erasure kept, once the person was
    /// forgotten (the line's user is then a tombstone, `erased:...`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence_digest: Option<String>,
}

/// A `link` line.
#[derive(Serialize)]
pub struct LinkLine<'a> {
    pub op: &'static str,
    pub at: Timestamp,
    pub received_at: Timestamp,
    pub phone: &'a str,
    pub bsuid: &'a str,
    pub source: &'a str,
}

/// Writes the export to standard output.
pub fn run(db: &crate::Db<'_>, business: &str, args: &Args) -> Result<u8, Fail> {
    let since = args
        .since
        .as_deref()
        .map(|s| parse_time("--since", s))
        .transpose()?;
    let gate = db.existing(None)?;
    let b = crate::existing_business(&gate, business)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut io_error = None;
    let mut write = |line: String| -> wagate::Result<()> {
        if let Err(e) = writeln!(out, "{line}") {
            io_error = Some(e);
            return Err(wagate::Error::InvalidEvent("output closed".into()));
        }
        Ok(())
    };
    let name = b.name().to_owned();
    let consent = b.export_consent(since, |user, r| {
        write(json(&ConsentLine {
            op: "consent",
            at: r.at,
            received_at: r.received_at,
            user,
            action: r.action,
            scope: r.scope,
            source: &r.source,
            evidence: r.evidence.as_deref(),
            conditional: r.conditional,
            chain: Some(Chain {
                business: &name,
                seq: r.seq,
                prev: r.prev.to_hex(),
                hash: r.hash.to_hex(),
                subject: r.subject.to_hex(),
                salt: r.salt.map(|s| wagate::chain::hex(&s)),
                evidence_digest: r.sealed.map(|h| h.to_hex()),
            }),
        }))
    });
    let links = consent.and_then(|()| {
        b.export_links(since, |l| {
            write(json(&LinkLine {
                op: "link",
                at: l.at,
                received_at: l.received_at,
                phone: &l.phone,
                bsuid: &l.bsuid,
                source: &l.source,
            }))
        })
    });
    if let Some(e) = io_error {
        return Err(e.into());
    }
    links?;
    out.flush()?;
    Ok(0)
}

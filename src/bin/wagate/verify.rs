//! `wagate verify`: every consent chain of every business, or an export
//! file outside the database.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;
use wagate::Event;
use wagate::chain::{Digest, Evidence, Hash, Link, SALT_LEN, from_hex};
use wagate::scenario::{Line, parse_live_line};

use crate::{EXIT_BAD_INPUT, Fail, json};

/// `wagate verify` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Verify this export file (from `wagate export`) instead of the database.
    #[arg(long, value_name = "FILE")]
    export: Option<PathBuf>,
    /// Also print every address's chain head.
    #[arg(long)]
    heads: bool,
    /// With --export: accept trails that start mid-chain (an export made
    /// with --since); their first prev is taken on trust.
    #[arg(long, requires = "export")]
    partial: bool,
    /// JSON Lines instead of sentences.
    #[arg(long)]
    json: bool,
    /// A heads digest recorded earlier, as BUSINESS=HEX (repeatable): exit 1
    /// unless the business's trails and links still digest to it. For a
    /// copy that should not have changed since (an archive, a backup, a
    /// replica): it catches a rewrite of a whole chain, which no chain can
    /// catch on its own.
    #[arg(long, value_name = "BUSINESS=HEX", conflicts_with = "export")]
    expect: Vec<String>,
}

#[derive(Serialize)]
struct BusinessLine<'a> {
    business: &'a str,
    #[serde(flatten)]
    report: &'a wagate::VerifyReport,
}

/// Verifies and prints; exits 1 when a chain is broken.
pub fn run(db: &crate::Db<'_>, args: &Args) -> Result<u8, Fail> {
    if let Some(file) = &args.export {
        return verify_export(file, args);
    }
    let mut expected = std::collections::BTreeMap::new();
    for e in &args.expect {
        let (business, hex) = e.split_once('=').ok_or_else(|| {
            Fail(
                EXIT_BAD_INPUT,
                format!("--expect {e:?}: expected BUSINESS=HEX, the heads digest verify printed"),
            )
        })?;
        expected.insert(business.to_owned(), hex.to_ascii_lowercase());
    }
    let gate = db.existing(None)?;
    let mut out = std::io::stdout().lock();
    let mut broken = false;
    let businesses = gate.businesses()?;
    if let Some(missing) = expected.keys().find(|b| !businesses.contains(b)) {
        return Err(Fail(
            EXIT_BAD_INPUT,
            format!("--expect names business {missing:?}, which this database does not hold"),
        ));
    }
    for name in businesses {
        let b = gate.existing_business(&name)?;
        let mut report = b.verify()?;
        if let Some(want) = expected.get(&name)
            && *want != report.heads_digest
            && report.broken.is_none()
        {
            report.broken = Some(format!(
                "the heads digest is {}, not the {want} recorded earlier: its trails or links differ from then (new events since, or a rewrite)",
                report.heads_digest
            ));
        }
        broken |= report.broken.is_some();
        if args.json {
            writeln!(
                out,
                "{}",
                json(&BusinessLine {
                    business: &name,
                    report: &report
                })
            )?;
        } else {
            writeln!(
                out,
                "{name}: {} addresses, {} consent events, heads digest {}",
                report.addresses, report.events, report.heads_digest
            )?;
            if let Some(why) = &report.broken {
                writeln!(out, "  BROKEN: {why}")?;
            }
        }
        if args.heads {
            for h in b.chain_heads()? {
                if args.json {
                    writeln!(out, "{}", json(&h))?;
                } else {
                    writeln!(
                        out,
                        "  {} {} {}",
                        h.user,
                        h.events,
                        h.head.as_deref().unwrap_or("-")
                    )?;
                }
            }
        }
    }
    if broken {
        return Err(Fail(
            EXIT_BAD_INPUT,
            "a consent trail is broken: the database was altered or corrupted".into(),
        ));
    }
    Ok(0)
}

/// The last verified event of one address in an export.
struct Tail {
    seq: i64,
    hash: Hash,
}

fn verify_export(file: &PathBuf, args: &Args) -> Result<u8, Fail> {
    let f = std::fs::File::open(file).map_err(|e| {
        Fail(
            EXIT_BAD_INPUT,
            format!("cannot read {}: {e}", file.display()),
        )
    })?;
    let bad = |n: usize, why: String| Fail(EXIT_BAD_INPUT, format!("line {n}: {why}"));
    let mut tails: BTreeMap<(String, String), Tail> = BTreeMap::new();
    let mut links: Vec<(String, String)> = Vec::new();
    let (mut events, mut anchored) = (0u64, 0u64);
    for (i, line) in crate::lines::text_lines(std::io::BufReader::new(f)).enumerate() {
        let n = i + 1;
        let text = line.map_err(|e| bad(n, e))?;
        // A forgotten person's events name a tombstone, not an address:
        // parse the rest of the line with a stand-in (its hash reads the
        // subject and evidence, never the user).
        let replaced = stand_ins(&text);
        let parsed = match &replaced {
            Some((_, stand_in)) => parse_live_line(stand_in),
            None => parse_live_line(&text),
        }
        .map_err(|e| bad(n, e.0))?;
        let tombstone = |field: &str| replaced.as_ref().and_then(|(f, _)| f.get(field)).cloned();
        let c = match parsed {
            Line::Event {
                event: Event::Consent(c),
                ..
            } => c,
            Line::Event {
                event: Event::Link(l),
                ..
            } => {
                links.push((
                    tombstone("phone").unwrap_or_else(|| l.phone.as_str().to_owned()),
                    tombstone("bsuid").unwrap_or_else(|| l.bsuid.as_str().to_owned()),
                ));
                continue;
            }
            _ => continue, // blank lines and comments
        };
        let raw: Value = serde_json::from_str(&text).map_err(|e| bad(n, e.to_string()))?;
        let chain = raw
            .get("chain")
            .ok_or_else(|| bad(n, "a consent line without its chain".into()))?;
        let field = |k: &str| chain.get(k).and_then(Value::as_str);
        let business = field("business").ok_or_else(|| bad(n, "chain.business".into()))?;
        let seq = chain
            .get("seq")
            .and_then(Value::as_i64)
            .ok_or_else(|| bad(n, "chain.seq".into()))?;
        let hex = |k: &str| {
            field(k)
                .and_then(Hash::from_hex)
                .ok_or_else(|| bad(n, format!("chain.{k} is not 64 hex digits")))
        };
        let (prev, hash) = (hex("prev")?, hex("hash")?);
        let received_at = c
            .received_at
            .ok_or_else(|| bad(n, "a consent line without received_at".into()))?;
        let erased = tombstone("user");
        let user = erased.as_deref().unwrap_or(c.user.as_str());
        let key = (business.to_owned(), user.to_owned());
        match tails.get(&key) {
            Some(t) if t.seq + 1 != seq || t.hash != prev => {
                return Err(bad(
                    n,
                    format!(
                        "{user} event {seq} does not follow event {} of the line before",
                        t.seq
                    ),
                ));
            }
            Some(_) => {}
            None if seq == 1 && prev != Hash::ZERO => {
                return Err(bad(n, format!("{user} event 1 must have a zero prev")));
            }
            // An export --since starts mid-chain: its first prev is an anchor,
            // accepted only when asked for (a cut-off start would hide events).
            None if seq > 1 && args.partial => anchored += 1,
            None if seq > 1 => {
                return Err(bad(
                    n,
                    format!(
                        "{user} starts at event {seq}, not 1: events before it are missing (pass --partial for an export made with --since)"
                    ),
                ));
            }
            None => {}
        }
        let subject = hex("subject")?;
        // A tombstone names its subject: that much an auditor can check.
        if erased.is_some() && user != wagate::chain::tombstone(&subject) {
            return Err(bad(
                n,
                format!("{user}: a tombstone that is not its chain.subject"),
            ));
        }
        let salt;
        let evidence = match (field("salt"), field("evidence_digest")) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    n,
                    "chain.salt and chain.evidence_digest together: an event is open or sealed"
                        .into(),
                ));
            }
            // Only erasure seals, and it leaves no evidence behind.
            (None, Some(d)) if erased.is_some() && c.evidence.is_none() => Evidence::Sealed(
                Hash::from_hex(d)
                    .ok_or_else(|| bad(n, "chain.evidence_digest is not 64 hex digits".into()))?,
            ),
            (None, Some(_)) => {
                return Err(bad(
                    n,
                    format!("{user}: a sealed event must name a tombstone and carry no evidence"),
                ));
            }
            (salt_hex, None) => {
                salt = salt_hex
                    .and_then(from_hex)
                    .filter(|s| s.len() == SALT_LEN)
                    .ok_or_else(|| bad(n, "chain.salt is not 32 hex digits".into()))?;
                Evidence::Open {
                    salt: &salt,
                    text: c.evidence.as_deref(),
                }
            }
        };
        let computed = Link {
            business,
            seq,
            action: c.action,
            scope: c.scope,
            at: c.at,
            received_at,
            conditional: c.conditional,
            source: &c.source,
            subject,
            evidence,
        }
        .hash(&prev);
        if computed != hash {
            return Err(bad(
                n,
                format!("{user} event {seq}: the hash does not match the line's content"),
            ));
        }
        events += 1;
        tails.insert(key, Tail { seq, hash });
    }
    let mut out = std::io::stdout().lock();
    let mut by_business: BTreeMap<&str, Digest> = BTreeMap::new();
    for ((business, user), t) in &tails {
        let d = by_business.entry(business).or_default();
        d.field(user.as_bytes());
        d.field(t.seq.to_string().as_bytes());
        d.field(&t.hash.0);
    }
    if args.heads {
        for ((business, user), t) in &tails {
            writeln!(out, "  {business} {user} {} {}", t.seq, t.hash)?;
        }
    }
    writeln!(
        out,
        "{}: {events} consent events of {} addresses verify{}",
        file.display(),
        tails.len(),
        if anchored > 0 {
            format!(" ({anchored} trails start mid-chain, anchored by their first prev)")
        } else {
            String::new()
        }
    )?;
    // The links take part in the digest after the heads, as in the
    // database (an export holds one business).
    links.sort();
    let single = by_business.len() == 1;
    for (business, mut d) in by_business {
        if single {
            for (phone, bsuid) in &links {
                d.field(phone.as_bytes());
                d.field(bsuid.as_bytes());
            }
        }
        writeln!(out, "{business}: heads digest {}", d.finish())?;
    }
    Ok(0)
}

/// A line naming tombstones (`erased:...`, a forgotten person's
/// addresses) where addresses go: the tombstone of each such field (`user`,
/// `phone`, `bsuid`), and the line with stand-in addresses the parser
/// accepts. A consent event's hash reads its subject and evidence, never
/// the user; a link's fields are read back from the tombstones.
fn stand_ins(text: &str) -> Option<(BTreeMap<&'static str, String>, String)> {
    if !text.contains(wagate::store::TOMBSTONE) {
        return None;
    }
    let mut v: Value = serde_json::from_str(text).ok()?;
    let mut found = BTreeMap::new();
    for (field, stand_in) in [
        ("user", "whatsapp:+10000000000"),
        ("phone", "whatsapp:+10000000000"),
        ("bsuid", "bsuid:US.10000000000000000000"),
    ] {
        if let Some(slot) = v.get_mut(field)
            && let Some(t) = slot
                .as_str()
                .filter(|t| t.starts_with(wagate::store::TOMBSTONE))
        {
            found.insert(field, t.to_owned());
            *slot = Value::String(stand_in.into());
        }
    }
    (!found.is_empty()).then(|| (found, v.to_string()))
}

//! `wagate history`: what an auditor asks for about one person.

use std::io::Write;

use serde::Serialize;
use wagate::{Address, Timestamp};

use crate::{EXIT_BAD_INPUT, Fail, json};

/// `wagate history` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// The user: a phone or bsuid:<id>; the whole person is shown.
    #[arg(long)]
    user: String,
    /// JSON Lines instead of a table.
    #[arg(long)]
    json: bool,
}

/// Prints a person's addresses, links, consent trail and windows.
pub fn run(db: &crate::Db<'_>, business: &str, args: &Args) -> Result<u8, Fail> {
    let gate = db.existing(None)?;
    let user =
        Address::parse(&args.user).map_err(|e| Fail(EXIT_BAD_INPUT, format!("--user: {e}")))?;
    let b = crate::existing_business(&gate, business)?;
    let person = b.person(&user)?;
    let records = b.consent_history(&user)?;
    let windows = b.windows(&user)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        for a in &person.addresses {
            #[derive(Serialize)]
            struct Row<'a> {
                address: &'a str,
            }
            writeln!(
                out,
                "{}",
                json(&Tagged {
                    kind: "address",
                    inner: &Row { address: a }
                })
            )?;
        }
        for l in &person.links {
            writeln!(
                out,
                "{}",
                json(&Tagged {
                    kind: "link",
                    inner: l
                })
            )?;
        }
        for r in &records {
            writeln!(
                out,
                "{}",
                json(&Tagged {
                    kind: "consent",
                    inner: r
                })
            )?;
        }
        for (sender, w) in &windows {
            let row = WindowRow::new(sender, w, gate.config().policy.margin_ms);
            writeln!(
                out,
                "{}",
                json(&Tagged {
                    kind: "window",
                    inner: &row
                })
            )?;
        }
        return Ok(0);
    }
    writeln!(
        out,
        "Person of {user} (business {business}): {}",
        person.addresses.join(", ")
    )?;
    for l in &person.links {
        writeln!(
            out,
            "  linked {} = {} at {} (received {}, {})",
            l.phone,
            l.bsuid,
            l.at,
            l.received_at,
            crate::printable(&l.source)
        )?;
    }
    writeln!(out, "Consent trail, oldest first:")?;
    if records.is_empty() {
        writeln!(out, "  (no consent events)")?;
    }
    for r in &records {
        let counted = match (r.conditional, r.counted) {
            (true, true) => " [keyword opt-in, counted: the person was opted out]",
            (true, false) => " [keyword opt-in, not counted: the person was not opted out]",
            _ => "",
        };
        writeln!(
            out,
            "  {}  {} ({})  {} #{}  source={}  at={}  received={}{}",
            r.effective,
            r.action,
            r.scope,
            r.user,
            r.seq,
            crate::printable(&r.source),
            r.at,
            r.received_at,
            counted
        )?;
        if let Some(e) = &r.evidence {
            writeln!(out, "      evidence: {}", crate::printable(e))?;
        }
    }
    writeln!(out, "Windows:")?;
    if windows.is_empty() {
        writeln!(out, "  (the person never wrote)")?;
    }
    for (sender, w) in &windows {
        let row = WindowRow::new(sender, w, gate.config().policy.margin_ms);
        writeln!(
            out,
            "  with {}: last inbound {}, window end {}{}",
            row.sender,
            row.last_inbound.map_or("-".into(), |t| t.to_string()),
            row.window_closes_at.map_or("-".into(), |t| t.to_string()),
            row.closed_by_provider_at.map_or(String::new(), |t| format!(
                ", closed by a provider error for sends up to {t}"
            )),
        )?;
    }
    Ok(0)
}

#[derive(Serialize)]
struct Tagged<'a, T: Serialize> {
    kind: &'static str,
    #[serde(flatten)]
    inner: &'a T,
}

#[derive(Serialize)]
struct WindowRow {
    sender: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_inbound: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    window_closes_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    closed_by_provider_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    referral_at: Option<Timestamp>,
}

impl WindowRow {
    fn new(sender: &Address, w: &wagate::policy::WindowFacts, margin_ms: i64) -> Self {
        WindowRow {
            sender: sender.to_string(),
            last_inbound: w.last_inbound,
            window_closes_at: w
                .last_inbound
                .map(|t| t.plus_millis(wagate::policy::WINDOW_MS - margin_ms)),
            closed_by_provider_at: w
                .closed_through
                .filter(|s| w.last_inbound.is_some_and(|l| l <= *s)),
            referral_at: w.referral_at,
        }
    }
}

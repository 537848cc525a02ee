//! `wagate sends`: why was this sent (or not)? Recorded attempts read back.

use std::io::Write;

use wagate::gate::SendQuery;
use wagate::{Address, SendRecord};

use crate::{EXIT_BAD_INPUT, Fail, json, parse_time};

/// `wagate sends` arguments.
#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("which").required(true).multiple(true).args(["user", "key", "provider_id"]))]
pub struct Args {
    /// Attempts to any address of this user's person (a phone or bsuid:<id>).
    #[arg(long)]
    user: Option<String>,
    /// Attempts under this idempotency key.
    #[arg(long)]
    key: Option<String>,
    /// The attempt the provider knows by this message id.
    #[arg(long)]
    provider_id: Option<String>,
    /// Only attempts at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Only attempts before this time (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// At most this many attempts, oldest first.
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    /// JSON Lines instead of sentences.
    #[arg(long)]
    json: bool,
}

/// Prints the matching attempts.
pub fn run(db: &crate::Db<'_>, business: &str, args: &Args) -> Result<u8, Fail> {
    let query = SendQuery {
        user: args
            .user
            .as_deref()
            .map(|u| Address::parse(u).map_err(|e| Fail(EXIT_BAD_INPUT, format!("--user: {e}"))))
            .transpose()?,
        key: args.key.clone(),
        provider_id: args.provider_id.clone(),
        since: args
            .since
            .as_deref()
            .map(|s| parse_time("--since", s))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|s| parse_time("--until", s))
            .transpose()?,
    };
    let gate = db.existing(None)?;
    let records = crate::existing_business(&gate, business)?.sends(&query, args.limit)?;
    let mut out = std::io::stdout().lock();
    if records.is_empty() && !args.json {
        writeln!(out, "(no recorded attempts)")?;
    }
    for r in &records {
        if args.json {
            writeln!(out, "{}", json(r))?;
        } else {
            writeln!(out, "{}", sentence(r))?;
        }
    }
    Ok(0)
}

/// One attempt in words.
fn sentence(r: &SendRecord) -> String {
    let what = match (&r.template, &r.language) {
        (Some(t), Some(l)) => format!("template {t} ({l})"),
        _ => r.content.clone(),
    };
    let mut s = format!(
        "{}  key {}  {} -> {}  {what}{}: {} ({}), {}",
        r.at,
        r.key,
        r.from,
        r.to,
        r.purpose
            .as_deref()
            .map(|p| format!(" for {p}"))
            .unwrap_or_default(),
        r.decision,
        r.reason,
        r.state.as_str()
    );
    if let Some(p) = &r.provider_id {
        s.push_str(&format!(", provider id {p}"));
    }
    if let Some(st) = &r.status {
        s.push_str(&format!(", status {st}"));
    }
    if let Some(e) = &r.error {
        s.push_str(&format!(", refused: {}", crate::printable(e)));
    }
    if !r.feedback.is_empty() {
        let codes: Vec<String> = r.feedback.iter().map(i64::to_string).collect();
        s.push_str(&format!(", feedback codes {}", codes.join(" ")));
    }
    if let Some(p) = &r.pricing {
        let parts: Vec<String> = [p.category.as_deref(), p.kind.as_deref()]
            .into_iter()
            .flatten()
            .map(|x| crate::printable(x).into_owned())
            .collect();
        s.push_str(&format!(", pricing {}", parts.join(" / ")));
        if p.billable == Some(false) {
            s.push_str(" (not billed)");
        }
    }
    s
}

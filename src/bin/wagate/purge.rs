//! `wagate purge`: retention of inbound-message rows and send attempts.

use std::io::Write;
use std::time::Duration;

use clap::Args as ClapArgs;

use crate::{EXIT_BAD_INPUT, Fail, json};

/// `wagate purge`.
#[derive(ClapArgs)]
pub struct Args {
    /// Keep this much: `90d`, `12w`, `2160h` (at least 7 days).
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    older_than: Duration,
    /// Count what would go; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// One JSON object instead of a sentence.
    #[arg(long)]
    json: bool,
}

/// `90d`, `12w`, `36h`.
fn parse_age(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?}: expected a number and a unit, such as 90d"))?;
    let hours = match unit {
        "h" => n,
        "d" => n.saturating_mul(24),
        "w" => n.saturating_mul(24 * 7),
        _ => return Err(format!("{s:?}: the unit is h, d or w (90d, 12w, 2160h)")),
    };
    Ok(Duration::from_secs(hours.saturating_mul(3600)))
}

/// Purges one business.
pub fn run(db: &crate::Db<'_>, business: &str, args: &Args) -> Result<u8, Fail> {
    let gate = db.existing(None)?;
    let b = crate::existing_business(&gate, business)?;
    let horizon = b.purge_horizon(args.older_than);
    let purged = b
        .purge(args.older_than, args.dry_run)
        .map_err(|e| Fail(EXIT_BAD_INPUT, e.to_string()))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(
            out,
            "{}",
            json(&serde_json::json!({
                "dry_run": args.dry_run,
                "before": horizon.to_rfc3339(),
                "inbound_messages": purged.inbound_messages,
                "send_attempts": purged.send_attempts,
            }))
        )?;
    } else {
        writeln!(
            out,
            "{} {} inbound messages and {} send attempts from before {}",
            if args.dry_run {
                "would purge"
            } else {
                "purged"
            },
            purged.inbound_messages,
            purged.send_attempts,
            horizon.to_rfc3339()
        )?;
    }
    Ok(0)
}

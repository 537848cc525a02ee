//! A process for the crash tests (`tests/it/crash.rs`) to kill: four
//! threads ingest unique events through the gate's group commit and print
//! each event's id once `Business::ingest` returned `Ok` (the event is
//! durable then). The test sends SIGKILL at a random moment and checks
//! that every printed id is in the database.
//!
//! Run: `cargo run --example kill_target -- <db> <tag> [events per thread]`.
//! Prints `inbound <id>` or `consent <id>` per acknowledged event, flushed
//! line by line; the ids start with `<tag>`, so runs on one file differ.

use std::io::Write;

use wagate::{Action, Address, ConsentEvent, Event, Gate, InboundMessage, Scope, Timestamp};

const THREADS: usize = 4;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(db), Some(tag)) = (args.next(), args.next()) else {
        return Err("usage: kill_target <db> <tag> [events per thread]".into());
    };
    let per_thread: usize = match args.next() {
        Some(n) => n.parse()?,
        None => 2_000,
    };
    let gate = Gate::open(&db)?;
    let shop = gate.business("default")?;
    let sender = Address::parse("whatsapp:+14155238886")?;
    let at = Timestamp::parse("2026-03-01T10:00:00Z")?;
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (shop, sender, tag) = (shop.clone(), sender.clone(), tag.clone());
            std::thread::spawn(move || -> Result<(), String> {
                for i in 0..per_thread {
                    // A few hundred users per thread: chains and windows grow.
                    let user = Address::parse(&format!("+1555{:07}", t * 100_000 + i % 300))
                        .map_err(|e| e.to_string())?;
                    let id = format!("{tag}-{t}-{i}");
                    let (kind, event) = if i % 4 == 3 {
                        let consent =
                            ConsentEvent::new(user, Action::OptIn, Scope::All, at, "kill_target")
                                .with_evidence(id.clone());
                        ("consent", Event::Consent(consent))
                    } else {
                        let hi = InboundMessage::text(user, sender.clone(), "hi", at)
                            .with_id(id.clone());
                        ("inbound", Event::Inbound(hi))
                    };
                    shop.ingest(&event).map_err(|e| format!("{id}: {e}"))?;
                    // Acknowledged only now: the commit holding it is durable.
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "{kind} {id}").map_err(|e| e.to_string())?;
                    out.flush().map_err(|e| e.to_string())?;
                }
                Ok(())
            })
        })
        .collect();
    for w in workers {
        w.join().map_err(|_| "a worker panicked")??;
    }
    Ok(())
}

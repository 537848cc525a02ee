//! A plain-threads service around the gate: webhook threads ingest while
//! worker threads check and send, all through clones of one `Business`.
//!
//! Run: `cargo run --example threads` (a temporary database, a recording
//! transport; prints what went out).

use std::sync::Arc;

use wagate::transport::RecordingTransport;
use wagate::{Address, Content, Event, Gate, InboundMessage, SendRequest, Timestamp};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("wagate-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let gate = Gate::open(dir.join("shop.db"))?;
    let shop = gate.business("acme")?; // resolved once, cloned into every thread
    let sender = Address::parse("whatsapp:+14155238886")?;
    let transport = Arc::new(RecordingTransport::new());

    // "Webhook" threads: each user writes in (ingest is group-committed).
    let webhooks: Vec<_> = (0..4)
        .map(|i| {
            let (shop, sender) = (shop.clone(), sender.clone());
            std::thread::spawn(move || -> wagate::Result<()> {
                let user = Address::parse(&format!("+1555000{i:04}"))?;
                let hi = InboundMessage::text(user, sender, "hi", Timestamp::now())
                    .with_id(format!("SM{i}"));
                shop.ingest(&Event::Inbound(hi))?;
                Ok(())
            })
        })
        .collect();
    for w in webhooks {
        w.join().map_err(|_| "a webhook thread panicked")??;
    }

    // Worker threads: reply to each, once (the key makes retries safe).
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let (shop, sender, transport) = (shop.clone(), sender.clone(), transport.clone());
            std::thread::spawn(move || -> wagate::Result<bool> {
                let user = Address::parse(&format!("+1555000{i:04}"))?;
                let reply =
                    SendRequest::between(sender, user, Content::text("Thanks for writing!"));
                let first = shop.send(&reply, &format!("reply-{i}"), &*transport)?;
                let retry = shop.send(&reply, &format!("reply-{i}"), &*transport)?;
                Ok(first.sent() && retry.duplicate())
            })
        })
        .collect();
    for w in workers {
        let ok = w.join().map_err(|_| "a worker thread panicked")??;
        assert!(ok, "sent once, then a duplicate");
    }
    println!("{} messages went out", transport.sent().len());
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

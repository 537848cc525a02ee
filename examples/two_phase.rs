//! A two-phase send for callers with their own HTTP client: reserve, make
//! the call yourself, complete with the provider's answer.
//!
//! Run: `cargo run --example two_phase`.

use wagate::gate::Reservation;
use wagate::transport::{Receipt, TransportError};
use wagate::{Address, Content, Event, Gate, InboundMessage, SendRequest, Timestamp};

/// Stands in for your HTTP client: here the provider refuses the first call
/// for now and accepts the second.
fn provider_call(attempt: u32, body: &str) -> Result<Receipt, TransportError> {
    println!("POST /Messages: {body}");
    if attempt == 0 {
        Err(TransportError {
            transient: true,
            code: None,
            message: "503 Service Unavailable".into(),
        })
    } else {
        Ok(Receipt {
            provider_id: "SM0123456789abcdef".into(),
        })
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let shop = Gate::open_in_memory()?.business("acme")?;
    let user = Address::parse("+15550001111")?;
    let sender = Address::parse("+14155238886")?;
    shop.ingest(&Event::Inbound(InboundMessage::text(
        user.clone(),
        sender.clone(),
        "Where is my order?",
        Timestamp::now(),
    )))?;
    let reply = SendRequest::between(sender, user, Content::text("It ships today."));
    for attempt in 0..2 {
        match shop.reserve(&reply, "reply-1")? {
            Reservation::Done(outcome) => {
                println!(
                    "nothing to send: {} ({})",
                    outcome.decision.verdict, outcome.decision.reason
                );
                break;
            }
            Reservation::Ready(pending) => {
                let text = match &pending.message().content {
                    Content::Freeform { text, .. } => text.clone(),
                    Content::Template { name, .. } => format!("template {name}"),
                };
                let answer = provider_call(attempt, &text);
                let outcome = shop.complete(pending, &answer)?;
                println!("attempt {attempt}: {:?}", outcome.delivery);
                if outcome.sent() {
                    break;
                }
            }
        }
    }
    Ok(())
}

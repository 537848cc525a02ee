//! `wagate templates`: list or register templates.

use std::io::Write;

use clap::Subcommand;
use serde::Serialize;
use wagate::{Category, Event, TemplateBody, TemplateRecord, TemplateStatus, Timestamp};

use crate::{EXIT_BAD_INPUT, Fail, json, parse_time};

/// `wagate templates` subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// List templates with category and status.
    #[command(after_help = "Example:\n  wagate --db shop.db templates list")]
    List {
        /// JSON Lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Register a template or change it.
    #[command(
        after_help = "Example:\n  wagate --db shop.db templates set --name order_update --language en \\\n    \
        --category utility --status approved --body 'Your order {{1}} is {{2}}.'"
    )]
    Set {
        /// Template name.
        #[arg(long)]
        name: String,
        /// Language, such as en or pt_BR.
        #[arg(long)]
        language: String,
        /// marketing, utility or authentication.
        #[arg(long)]
        category: String,
        /// approved, pending, paused, ...
        #[arg(long)]
        status: String,
        /// The body, with {{1}}.. or {{name}} placeholders.
        #[arg(long)]
        body: String,
        /// When the provider changed it (default now).
        #[arg(long)]
        at: Option<String>,
        /// Twilio ContentSid (HX...).
        #[arg(long)]
        twilio_content_sid: Option<String>,
        /// Meta template id.
        #[arg(long)]
        meta_template_id: Option<String>,
    },
}

/// Runs a templates subcommand.
pub fn run(db: &crate::Db<'_>, business: &str, cmd: Command) -> Result<u8, Fail> {
    match cmd {
        Command::List { json } => list(db, business, json),
        Command::Set {
            name,
            language,
            category,
            status,
            body,
            at,
            twilio_content_sid,
            meta_template_id,
        } => {
            let record = TemplateRecord {
                name,
                language,
                category: Category::parse(&category)
                    .map_err(|e| Fail(EXIT_BAD_INPUT, format!("--category: {e}")))?,
                status: TemplateStatus::parse(&status)
                    .map_err(|e| Fail(EXIT_BAD_INPUT, format!("--status: {e}")))?,
                body: TemplateBody::parse(&body)
                    .map_err(|e| Fail(EXIT_BAD_INPUT, format!("--body: {e}")))?,
                at: match at {
                    Some(at) => parse_time("--at", &at)?,
                    None => Timestamp::now(),
                },
                received_at: None,
                twilio_content_sid,
                meta_template_id,
            };
            let gate = db.create()?;
            gate.business(business)?.ingest(&Event::Template(record))?;
            eprintln!("template registered");
            Ok(0)
        }
    }
}

fn list(db: &crate::Db<'_>, business: &str, as_json: bool) -> Result<u8, Fail> {
    let gate = db.existing(None)?;
    let rows = crate::existing_business(&gate, business)?.templates()?;
    let mut out = std::io::stdout().lock();
    if rows.is_empty() && !as_json {
        writeln!(out, "(no templates)")?;
    }
    for r in rows {
        let t = &r.template;
        if as_json {
            #[derive(Serialize)]
            struct Row<'a> {
                name: &'a str,
                language: &'a str,
                category: Category,
                status: &'a TemplateStatus,
                body: &'a str,
                status_at: Timestamp,
                #[serde(skip_serializing_if = "Option::is_none")]
                twilio_content_sid: Option<&'a str>,
                #[serde(skip_serializing_if = "Option::is_none")]
                meta_template_id: Option<&'a str>,
            }
            let row = Row {
                name: &r.name,
                language: &r.language,
                category: t.facts.category,
                status: &t.facts.status,
                body: t.facts.body.as_str(),
                status_at: t.status_at,
                twilio_content_sid: t.twilio_content_sid.as_deref(),
                meta_template_id: t.meta_template_id.as_deref(),
            };
            writeln!(out, "{}", json(&row))?;
        } else {
            writeln!(
                out,
                "{:<24} {:<6} {:<15} {:<10} {}",
                r.name,
                r.language,
                t.facts.category.as_str(),
                t.facts.status.as_str(),
                t.facts.body.as_str()
            )?;
        }
    }
    Ok(0)
}

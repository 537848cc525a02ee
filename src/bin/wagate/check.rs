//! `wagate check`: one decision, now or as of a past time.

use std::io::Write;

use wagate::{Content, Decision, Purpose, SendRequest, Variables};

use crate::{EXIT_BAD_INPUT, EXIT_USAGE, Fail, json, parse_time};

/// `wagate check` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// The business's sender (a phone).
    #[arg(long)]
    from: String,
    /// The user: a phone or bsuid:<id>.
    #[arg(long)]
    to: String,
    /// A freeform text.
    #[arg(long, conflicts_with_all = ["template", "language", "var", "vars"], required_unless_present = "template")]
    text: Option<String>,
    /// A template name (with --language).
    #[arg(long, requires = "language")]
    template: Option<String>,
    /// The template's language.
    #[arg(long, requires = "template")]
    language: Option<String>,
    /// A positional variable, in order ({{1}}, {{2}}, ...).
    #[arg(long, conflicts_with = "vars")]
    var: Vec<String>,
    /// Variables as JSON: a list, or an object of names.
    #[arg(long)]
    vars: Option<String>,
    /// Why it is sent (opt_out_confirmation changes the decision).
    #[arg(long)]
    purpose: Option<String>,
    /// Decide as of this time (RFC 3339): only what was received by then counts.
    #[arg(long)]
    at: Option<String>,
    /// A sentence instead of JSON.
    #[arg(long)]
    human: bool,
}

/// Decides one request and prints it.
pub fn run(db: &crate::Db<'_>, business: &str, args: &Args) -> Result<u8, Fail> {
    let content = match (&args.text, &args.template, &args.language) {
        (Some(text), _, _) => Content::text(text.clone()),
        (None, Some(name), Some(language)) => {
            let variables = match &args.vars {
                Some(json) => {
                    let v = wagate::scenario::parse_json(json)
                        .map_err(|e| Fail(EXIT_BAD_INPUT, format!("--vars: bad JSON: {e}")))?;
                    Variables::from_json(&v)
                }
                None if args.var.is_empty() => Variables::none(),
                None => Variables::positional(args.var.clone()),
            };
            Content::template(name.clone(), language.clone(), variables)
        }
        _ => {
            return Err(Fail(
                EXIT_USAGE,
                "need --text, or --template with --language".into(),
            ));
        }
    };
    let mut req = SendRequest::new(&args.from, &args.to, content);
    if let Some(p) = &args.purpose {
        req = req.with_purpose(Purpose::parse(p));
    }
    let at = args
        .at
        .as_deref()
        .map(|a| parse_time("--at", a))
        .transpose()?;
    let gate = db.existing(at)?;
    let b = crate::existing_business(&gate, business)?;
    let d = match at {
        Some(t) => b.check_as_of(&req, t)?,
        None => b.check(&req)?,
    };
    let mut out = std::io::stdout().lock();
    if args.human {
        writeln!(out, "{}", sentence(&d))?;
    } else {
        writeln!(out, "{}", json(&d))?;
    }
    Ok(0)
}

/// The decision as one sentence.
pub fn sentence(d: &Decision) -> String {
    let mut s = format!("{} ({}): {}", d.verdict, d.reason, d.reason.describe());
    if let Some(end) = d.facts.window_closes_at {
        let verb = if d.facts.window_open {
            "closes"
        } else {
            "closed"
        };
        s.push_str(&format!("; the window {verb} at {end}"));
    }
    if let Some(at) = d.facts.window_closed_by_provider_at {
        s.push_str(&format!(" (a provider error closed it at {at})"));
    }
    if let Some(until) = d
        .facts
        .confirmation_until
        .filter(|_| d.facts.opted_out_at.is_some())
    {
        s.push_str(&format!("; opted out, confirmation possible until {until}"));
    }
    if let Some(p) = &d.facts.problem {
        s.push_str(&format!("; {p}"));
    }
    s.push('.');
    s
}

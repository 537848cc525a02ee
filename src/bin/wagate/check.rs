//! `wagate check`: one decision, now or as of a past time.

use std::io::Write;

use wagate::scenario::{Line, Output, parse_line};
use wagate::{Content, Decision, Purpose, SendRequest, Timestamp, Variables, Verdict};

use crate::lines::shorten;
use crate::{EXIT_BAD_INPUT, EXIT_USAGE, Fail, json, parse_time};

/// `wagate check` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Many requests instead of one: a JSON Lines file (or - for standard
    /// input) of `check` lines, one decision printed per line.
    #[arg(value_name = "FILE", conflicts_with_all = ["from", "to", "text", "template", "at", "human", "batch"])]
    requests: Option<String>,
    /// The same as FILE.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["from", "to", "text", "template", "at", "human"])]
    batch: Option<String>,
    /// The business's sender (a phone).
    #[arg(long, required_unless_present_any = ["requests", "batch"])]
    from: Option<String>,
    /// The user: a phone or bsuid:<id>.
    #[arg(long, required_unless_present_any = ["requests", "batch"])]
    to: Option<String>,
    /// A freeform text.
    #[arg(long, conflicts_with_all = ["template", "language", "var", "vars"], required_unless_present_any = ["template", "requests", "batch"])]
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
    #[command(flatten)]
    limit: crate::lines::Limit,
}

/// Exit code of a `template_required` answer.
pub const EXIT_TEMPLATE_REQUIRED: u8 = 3;
/// Exit code of a `deny`.
pub const EXIT_DENY: u8 = 4;

/// Decides one request and prints it; the exit code says the verdict
/// (allow 0, template_required 3, deny 4). With a file of requests, one
/// decision per line.
pub fn run(db: &crate::Db<'_>, business: &str, args: &Args) -> Result<u8, Fail> {
    if let Some(file) = args.requests.as_deref().or(args.batch.as_deref()) {
        return many(db, business, file, args.limit.max_line_bytes);
    }
    let (Some(from), Some(to)) = (&args.from, &args.to) else {
        return Err(Fail(
            EXIT_USAGE,
            "need --from and --to, or a file of requests".into(),
        ));
    };
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
    let mut req = SendRequest::new(from, to, content);
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
    Ok(match d.verdict {
        Verdict::Allow => 0,
        Verdict::TemplateRequired => EXIT_TEMPLATE_REQUIRED,
        Verdict::Deny => EXIT_DENY,
    })
}

/// Requests decided per read transaction.
const CHUNK: usize = 1000;

/// The campaign pre-flight: `check` lines in, one decision out per line.
/// A line may leave out `op` (it is a check) and `at` (decided now); with
/// `at` it is decided as of that time, as `--at` does.
fn many(db: &crate::Db<'_>, business: &str, file: &str, cap: usize) -> Result<u8, Fail> {
    let gate = db.existing(None)?;
    let b = crate::existing_business(&gate, business)?;
    let rx = crate::lines::reader(file, cap)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut failed = false;
    let mut pending: Vec<(usize, Parsed)> = Vec::new();
    let flush = |pending: &mut Vec<(usize, Parsed)>,
                 out: &mut dyn Write,
                 failed: &mut bool|
     -> Result<(), Fail> {
        let requests: Vec<(SendRequest, Option<Timestamp>)> = pending
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok().cloned())
            .collect();
        let mut decisions = b.check_many(&requests)?.into_iter();
        for (n, parsed) in pending.drain(..) {
            let o = match parsed {
                Err(e) => Output::error(n, &shorten(&e)),
                Ok(_) => match decisions.next() {
                    Some(Ok(d)) => Output::value(n, &d),
                    Some(Err(e)) => Output::error(n, &shorten(&e.to_string())),
                    None => Output::error(n, "internal: missing decision"),
                },
            };
            *failed |= o.is_error;
            writeln!(out, "{}", o.json)?;
        }
        out.flush()?;
        Ok(())
    };
    let mut n = 0;
    let mut bytes = 0;
    for line in rx {
        n += 1;
        match line {
            Ok(text) if text.trim().is_empty() || text.trim_start().starts_with('#') => continue,
            Ok(text) => {
                bytes += text.len();
                pending.push((n, request_line(&text)));
            }
            Err(e) => pending.push((n, Err(e))),
        }
        // Requests hold about what their lines did: a chunk is bounded in
        // bytes as well as in lines.
        if pending.len() >= CHUNK || bytes >= crate::lines::BATCH_BYTES {
            flush(&mut pending, &mut out, &mut failed)?;
            bytes = 0;
        }
    }
    flush(&mut pending, &mut out, &mut failed)?;
    Ok(if failed { EXIT_BAD_INPUT } else { 0 })
}

/// A request line: the request and its `at`, or why it is not one.
type Parsed = Result<(SendRequest, Option<Timestamp>), String>;

/// One `check` line: the scenario shape, `op` and `at` optional.
fn request_line(text: &str) -> Parsed {
    let value = wagate::scenario::parse_json(text).map_err(|e| format!("bad JSON: {e}"))?;
    let serde_json::Value::Object(mut obj) = value else {
        return Err("expected a JSON object (a check line)".into());
    };
    match obj.get("op") {
        None => {
            obj.insert("op".into(), "check".into());
        }
        Some(op) if op == "check" => {}
        Some(op) => return Err(format!("a request file holds check lines, not {op}")),
    }
    let at = match obj.get("at") {
        None => {
            // Any valid time: the line is decided now.
            obj.insert("at".into(), "1970-01-01T00:00:00Z".into());
            None
        }
        Some(_) => Some(()),
    };
    match parse_line(&serde_json::Value::Object(obj).to_string()) {
        Ok(Line::Ask { at: t, request, .. }) => Ok((request, at.map(|()| t))),
        Ok(_) => Err("expected a check line".into()),
        Err(e) => Err(e.0),
    }
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

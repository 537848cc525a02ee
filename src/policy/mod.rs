//! The pure policy core: no IO, no clock (RULES R2-R6).
//!
//! [`decide`] takes the facts the store gathered about one (business,
//! sender, user), a [`SendRequest`] and `now`, and returns a [`Decision`].
//! It cannot fail: every input has an answer, and an invalid address is a
//! `deny`, not an error.

mod consent;
mod keywords;
mod template;

use std::fmt;

use serde::Serialize;

use crate::address::{Address, AddressError};
use crate::time::{HOUR_MS, Timestamp};

pub use consent::{
    Action, ConsentFact, ConsentFold, ConsentState, ParseEnumError, Scope, fold, fold_applied,
};
pub use keywords::{
    DEFAULT_HELP, DEFAULT_OPT_IN, DEFAULT_OPT_OUT, Keyword, Keywords,
    normalize as normalize_keyword,
};
pub use template::{
    Category, MAX_RENDERED_CHARS, TemplateBody, TemplateError, TemplateStatus, VariableProblem,
    Variables,
};

/// What a provider error code says (RULES R7): the window was seen closed,
/// the user opted out, or the template changed status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feedback {
    /// The provider saw the (sender, user) window closed.
    WindowClosed,
    /// The user opted out (of everything or of marketing).
    OptOut(Scope),
    /// The template used became this status.
    Template(&'static str),
}

/// The error codes that say the provider saw the window closed.
pub const WINDOW_CLOSED_CODES: [u32; 3] = [63016, 131047, 470];

/// What a provider error code means for the state, if anything (R7).
///
/// ```
/// use wagate::policy::{feedback_effect, Feedback};
/// use wagate::Scope;
/// assert_eq!(feedback_effect(21610), Some(Feedback::OptOut(Scope::All)));
/// assert_eq!(feedback_effect(30008), None);
/// ```
pub fn feedback_effect(code: u32) -> Option<Feedback> {
    match code {
        c if WINDOW_CLOSED_CODES.contains(&c) => Some(Feedback::WindowClosed),
        21610 => Some(Feedback::OptOut(Scope::All)),
        131050 => Some(Feedback::OptOut(Scope::Marketing)),
        132015 => Some(Feedback::Template("paused")),
        132016 => Some(Feedback::Template("disabled")),
        _ => None,
    }
}

/// The length of the customer service window.
pub const WINDOW_MS: i64 = 24 * HOUR_MS;
/// How long after an opt-out its one confirmation may be sent.
pub const CONFIRMATION_MS: i64 = 5 * 60_000;
/// The free-entry-point period, from the business's first reply.
pub const FREE_ENTRY_POINT_MS: i64 = 72 * HOUR_MS;

/// Settings of the policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyConfig {
    /// Safety margin: the window counts as closed this many milliseconds
    /// before the 24 hours end (RULES R2). Default 0. Values outside
    /// 0..=24h are clamped: a margin never lengthens the window.
    pub margin_ms: i64,
}

/// The answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The message may go out as asked.
    Allow,
    /// Freeform is not possible now; an approved template may be.
    TemplateRequired,
    /// Nothing of this kind may go out.
    Deny,
}

/// The one reason behind a decision (RULES R6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// Sender or user is not a valid address (R1).
    InvalidAddress,
    /// The one confirmation of a fresh opt-out.
    OptOutConfirmation,
    /// The user opted out of all messages.
    OptedOut,
    /// The customer service window is open.
    WindowOpen,
    /// A window existed between this sender and user but has closed.
    WindowClosed,
    /// No window was ever opened between this sender and user.
    NoWindow,
    /// No opt-in on record (or marketing without general opt-in).
    NoOptIn,
    /// No template with this name and language.
    TemplateUnknown,
    /// The template's status is not `approved`.
    TemplateNotApproved,
    /// The variables do not fit the template (R5).
    TemplateVariables,
    /// Marketing template and the user opted out of marketing.
    MarketingOptedOut,
    /// Template allowed by the user's opt-in.
    OptedIn,
}

impl Reason {
    /// The reason code, as in RULES R6.
    pub fn as_str(self) -> &'static str {
        use Reason::*;
        match self {
            InvalidAddress => "invalid_address",
            OptOutConfirmation => "opt_out_confirmation",
            OptedOut => "opted_out",
            WindowOpen => "window_open",
            WindowClosed => "window_closed",
            NoWindow => "no_window",
            NoOptIn => "no_opt_in",
            TemplateUnknown => "template_unknown",
            TemplateNotApproved => "template_not_approved",
            TemplateVariables => "template_variables",
            MarketingOptedOut => "marketing_opted_out",
            OptedIn => "opted_in",
        }
    }

    /// What the reason means, in one sentence for a person.
    pub fn describe(self) -> &'static str {
        use Reason::*;
        match self {
            InvalidAddress => "the sender or the user is not a valid WhatsApp address",
            OptOutConfirmation => "the one confirmation of a fresh opt-out, inside 5 minutes",
            OptedOut => "the user opted out of all messages",
            WindowOpen => "the user wrote within 24 hours: the customer service window is open",
            WindowClosed => {
                "the customer service window has closed: only an approved template may go out"
            }
            NoWindow => "the user never wrote to this sender: only an approved template may go out",
            NoOptIn => "there is no opt-in on record for this message",
            TemplateUnknown => "no template with this name and language is registered",
            TemplateNotApproved => "the template is not approved (paused, pending, disabled, ...)",
            TemplateVariables => "the variables do not fit the template's placeholders",
            MarketingOptedOut => "the user opted out of marketing messages",
            OptedIn => "the user opted in: an approved template may go out",
        }
    }

    /// Parses a reason code.
    pub fn parse(s: &str) -> Option<Self> {
        use Reason::*;
        [
            InvalidAddress,
            OptOutConfirmation,
            OptedOut,
            WindowOpen,
            WindowClosed,
            NoWindow,
            NoOptIn,
            TemplateUnknown,
            TemplateNotApproved,
            TemplateVariables,
            MarketingOptedOut,
            OptedIn,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    /// The verdict this reason comes with.
    pub fn verdict(self) -> Verdict {
        use Reason::*;
        match self {
            OptOutConfirmation | WindowOpen | OptedIn => Verdict::Allow,
            WindowClosed | NoWindow => Verdict::TemplateRequired,
            _ => Verdict::Deny,
        }
    }
}

impl Verdict {
    /// `allow`, `template_required` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::TemplateRequired => "template_required",
            Verdict::Deny => "deny",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a message is being sent. Only the opt-out confirmation changes a
/// decision; other purposes are recorded as given.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// The one message confirming an opt-out (RULES R6 step 2).
    OptOutConfirmation,
    /// Any other purpose, as free text.
    Other(String),
}

impl Purpose {
    /// `opt_out_confirmation` or anything else.
    pub fn parse(s: &str) -> Self {
        if s == "opt_out_confirmation" {
            Purpose::OptOutConfirmation
        } else {
            Purpose::Other(s.to_owned())
        }
    }

    /// The purpose as text.
    pub fn as_str(&self) -> &str {
        match self {
            Purpose::OptOutConfirmation => "opt_out_confirmation",
            Purpose::Other(s) => s,
        }
    }
}

/// What is to be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// A freeform message (text or media): only inside the window.
    Freeform {
        /// The text, or a caption for media.
        text: String,
        /// Public URLs of media to attach (Twilio `MediaUrl`); usually
        /// empty.
        media: Vec<String>,
    },
    /// A pre-approved template.
    Template {
        /// Template name.
        name: String,
        /// Template language, such as `en` or `pt_BR`.
        language: String,
        /// Values for its placeholders.
        variables: Variables,
    },
}

impl Content {
    /// A freeform text.
    pub fn text(text: impl Into<String>) -> Self {
        Content::Freeform {
            text: text.into(),
            media: Vec::new(),
        }
    }

    /// A freeform message with media attached (public URLs the provider
    /// fetches), `caption` as its text. Freeform like any text: only
    /// inside the window.
    ///
    /// ```
    /// use wagate::Content;
    /// let c = Content::media("Your invoice", ["https://example.com/invoice.pdf"]);
    /// assert!(c.template_key().is_none());
    /// ```
    pub fn media<I, S>(caption: impl Into<String>, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Content::Freeform {
            text: caption.into(),
            media: urls.into_iter().map(Into::into).collect(),
        }
    }

    /// The template's name and language, for a template.
    pub fn template_key(&self) -> Option<(&str, &str)> {
        match self {
            Content::Template { name, language, .. } => Some((name, language)),
            Content::Freeform { .. } => None,
        }
    }

    /// A template by name and language.
    pub fn template(
        name: impl Into<String>,
        language: impl Into<String>,
        variables: Variables,
    ) -> Self {
        Content::Template {
            name: name.into(),
            language: language.into(),
            variables,
        }
    }
}

/// A question to the policy: may `sender` send `content` to `user`?
///
/// Addresses are parsed when the request is built; an invalid one is kept
/// so that the decision can say `deny invalid_address` (RULES R6 step 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendRequest {
    sender: Result<Address, AddressError>,
    user: Result<Address, AddressError>,
    content: Content,
    purpose: Option<Purpose>,
}

impl SendRequest {
    /// A request from raw address texts.
    ///
    /// ```
    /// use wagate::policy::{Content, SendRequest};
    /// let r = SendRequest::new("whatsapp:+14155238886", "+1 555 000 1111", Content::text("hi"));
    /// assert_eq!(r.user().unwrap().as_str(), "whatsapp:+15550001111");
    /// ```
    pub fn new(sender: &str, user: &str, content: Content) -> Self {
        SendRequest {
            sender: Address::parse_phone(sender),
            user: Address::parse(user),
            content,
            purpose: None,
        }
    }

    /// A request between addresses already parsed. A sender that is not a
    /// phone is kept as invalid (RULES R1: a BSUID is never a sender).
    pub fn between(sender: Address, user: Address, content: Content) -> Self {
        let sender = if sender.is_phone() {
            Ok(sender)
        } else {
            Err(AddressError::NotPhone(sender.as_str().to_owned()))
        };
        SendRequest {
            sender,
            user: Ok(user),
            content,
            purpose: None,
        }
    }

    /// Sets the purpose.
    #[must_use]
    pub fn with_purpose(mut self, purpose: Purpose) -> Self {
        self.purpose = Some(purpose);
        self
    }

    /// The sender, or why it is invalid.
    pub fn sender(&self) -> Result<&Address, &AddressError> {
        self.sender.as_ref()
    }

    /// The user, or why it is invalid.
    pub fn user(&self) -> Result<&Address, &AddressError> {
        self.user.as_ref()
    }

    /// The content.
    pub fn content(&self) -> &Content {
        &self.content
    }

    /// The purpose, if any.
    pub fn purpose(&self) -> Option<&Purpose> {
        self.purpose.as_ref()
    }
}

/// The window facts of one (business, sender, user).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct WindowFacts {
    /// Effective time of the latest window-opening inbound (R2).
    pub last_inbound: Option<Timestamp>,
    /// The latest send time `s` of a message the provider refused as
    /// outside the window (R7): the window counts as closed while
    /// `last_inbound <= s`.
    pub closed_through: Option<Timestamp>,
    /// Effective time of the latest inbound that came from an ad or a page
    /// call-to-action.
    pub referral_at: Option<Timestamp>,
    /// The first business message to this user from this sender within 24h
    /// after `referral_at`.
    pub first_reply_after_referral: Option<Timestamp>,
}

/// A template as the policy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateFacts {
    /// From the newest record.
    pub category: Category,
    /// From the newest record or provider feedback.
    pub status: TemplateStatus,
    /// From the newest record.
    pub body: TemplateBody,
}

/// Everything the decision reads, gathered by the store.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Facts {
    /// All consent events of the user, in any order.
    pub consent: Vec<ConsentFact>,
    /// The window between the sender and the user.
    pub window: WindowFacts,
    /// The template asked for, if the content is a template and it exists.
    pub template: Option<TemplateFacts>,
    /// The latest send time of a message allowed as an opt-out
    /// confirmation to this user.
    pub last_confirmation_at: Option<Timestamp>,
}

/// The facts behind a decision, for logs, the CLI and retries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DecisionFacts {
    /// Whether the window is open at `now`.
    pub window_open: bool,
    /// When the window closes (in the future) or closed (in the past):
    /// last inbound + 24h - margin. Absent when no window was ever opened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_closes_at: Option<Timestamp>,
    /// Set when a provider error closed the window early: the send time it
    /// was refused at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_closed_by_provider_at: Option<Timestamp>,
    /// The end of the free-entry-point period, if one was opened (R2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub free_entry_point_until: Option<Timestamp>,
    /// The general consent state.
    pub consent: ConsentState,
    /// The marketing consent state.
    pub marketing_consent: ConsentState,
    /// The effective time of the opt-out that decides the general state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opted_out_at: Option<Timestamp>,
    /// Until when the opt-out confirmation may be sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmation_until: Option<Timestamp>,
    /// The template's status, when a template was asked for and exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_status: Option<TemplateStatus>,
    /// What is wrong with the variables or addresses, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The rendered template body, when the variables fit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rendered: Option<String>,
}

/// A decision: a verdict, exactly one reason, and the facts behind it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// allow / template_required / deny.
    #[serde(rename = "decision")]
    pub verdict: Verdict,
    /// The reason code.
    pub reason: Reason,
    /// The facts.
    #[serde(flatten)]
    pub facts: DecisionFacts,
}

impl Decision {
    /// Whether the message may go out.
    pub fn is_allowed(&self) -> bool {
        self.verdict == Verdict::Allow
    }
}

/// Decides one send request (RULES R6). Pure: same inputs, same answer.
///
/// ```
/// use wagate::policy::{decide, Content, Facts, PolicyConfig, Reason, SendRequest, WindowFacts};
/// use wagate::Timestamp;
/// let t = |s| Timestamp::parse(s).unwrap();
/// let req = SendRequest::new("whatsapp:+14155238886", "whatsapp:+15550001111", Content::text("hi"));
/// let facts = Facts {
///     window: WindowFacts { last_inbound: Some(t("2026-03-01T10:00:00Z")), ..Default::default() },
///     ..Default::default()
/// };
/// let d = decide(&req, &facts, t("2026-03-02T09:59:59Z"), &PolicyConfig::default());
/// assert_eq!(d.reason, Reason::WindowOpen);
/// assert_eq!(d.facts.window_closes_at, Some(t("2026-03-02T10:00:00Z")));
/// let d = decide(&req, &facts, t("2026-03-02T10:00:00Z"), &PolicyConfig::default());
/// assert_eq!(d.reason, Reason::NoOptIn); // closed, and no opt-in on record
/// ```
pub fn decide(req: &SendRequest, facts: &Facts, now: Timestamp, config: &PolicyConfig) -> Decision {
    let consent = fold(&facts.consent);
    let w = &facts.window;
    // A margin only ever shortens the window: clamp it to 0..=24h.
    let margin = config.margin_ms.clamp(0, WINDOW_MS);
    let window_closes_at = w.last_inbound.map(|t| t.plus_millis(WINDOW_MS - margin));
    let closed_by_provider = match (w.last_inbound, w.closed_through) {
        (Some(last), Some(s)) if last <= s => Some(s),
        _ => None,
    };
    let window_open = closed_by_provider.is_none() && window_closes_at.is_some_and(|end| now < end);
    let free_entry_point_until = match (w.referral_at, w.first_reply_after_referral) {
        (Some(r), Some(s)) if r <= s && s < r.plus_millis(WINDOW_MS) => {
            Some(s.plus_millis(FREE_ENTRY_POINT_MS))
        }
        _ => None,
    };
    let opted_out_at = match consent.general {
        ConsentState::OptedOut => consent.general_at,
        _ => None,
    };
    let mut facts_out = DecisionFacts {
        window_open,
        window_closes_at,
        window_closed_by_provider_at: closed_by_provider,
        free_entry_point_until,
        consent: consent.general,
        marketing_consent: consent.marketing,
        opted_out_at,
        confirmation_until: opted_out_at.map(|t| t.plus_millis(CONFIRMATION_MS)),
        template_status: facts.template.as_ref().map(|t| t.status.clone()),
        problem: None,
        rendered: None,
    };
    let reason = reason(req, facts, &consent, window_open, now, &mut facts_out);
    Decision {
        verdict: reason.verdict(),
        reason,
        facts: facts_out,
    }
}

fn reason(
    req: &SendRequest,
    facts: &Facts,
    consent: &ConsentFold,
    window_open: bool,
    now: Timestamp,
    out: &mut DecisionFacts,
) -> Reason {
    // 1. addresses
    if let Err(e) = req.sender.as_ref().and(req.user.as_ref()) {
        out.problem = Some(e.to_string());
        return Reason::InvalidAddress;
    }
    let freeform = matches!(req.content, Content::Freeform { .. });
    // 2. general opt-out
    if consent.general == ConsentState::OptedOut {
        let t = consent.general_at.unwrap_or(now);
        let confirmation = req.purpose == Some(Purpose::OptOutConfirmation)
            && freeform
            && window_open
            && now < t.plus_millis(CONFIRMATION_MS)
            && facts.last_confirmation_at.is_none_or(|c| c < t);
        return if confirmation {
            Reason::OptOutConfirmation
        } else {
            Reason::OptedOut
        };
    }
    let opted_in = consent.general == ConsentState::OptedIn;
    match &req.content {
        // 3. freeform
        Content::Freeform { .. } => {
            if window_open {
                Reason::WindowOpen
            } else if opted_in {
                if facts.window.last_inbound.is_some() {
                    Reason::WindowClosed
                } else {
                    Reason::NoWindow
                }
            } else {
                Reason::NoOptIn
            }
        }
        // 4. template
        Content::Template { variables, .. } => {
            let Some(t) = &facts.template else {
                return Reason::TemplateUnknown;
            };
            if !t.status.is_approved() {
                return Reason::TemplateNotApproved;
            }
            match t.body.render(variables) {
                Ok(rendered) => out.rendered = Some(rendered),
                Err(p) => {
                    out.problem = Some(p.to_string());
                    return Reason::TemplateVariables;
                }
            }
            if t.category == Category::Marketing {
                if consent.marketing == ConsentState::OptedOut {
                    return Reason::MarketingOptedOut;
                }
                if !opted_in {
                    return Reason::NoOptIn;
                }
            }
            if window_open {
                Reason::WindowOpen
            } else if opted_in {
                Reason::OptedIn
            } else {
                Reason::NoOptIn
            }
        }
    }
}

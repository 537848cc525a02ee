//! Templates: their history and current view (RULES R5).
//!
//! `template_events` keeps every record and status change, even those for
//! a template not registered yet; `templates` is the current view of the
//! registered ones: definition from the newest record, status from the
//! newest of all events (ties: the one ingested last).

use crate::policy::TemplateFacts;
use crate::time::Timestamp;

/// A template as stored in the current view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTemplate {
    /// The policy's view.
    pub facts: TemplateFacts,
    /// Effective time of the definition.
    pub definition_at: Timestamp,
    /// Effective time of the status.
    pub status_at: Timestamp,
    /// Twilio ContentSid.
    pub twilio_content_sid: Option<String>,
    /// Meta template id.
    pub meta_template_id: Option<String>,
}

/// A template row with its names, for listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateRow {
    /// Name.
    pub name: String,
    /// Language.
    pub language: String,
    /// The current view.
    pub template: StoredTemplate,
}

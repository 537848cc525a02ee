//! Counts over one business, for `wagate stats`.

/// Counts over one business.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Addresses (phones and business-scoped ids) ever seen.
    pub users: u64,
    /// People: addresses joined by links count once (RULES R8).
    pub people: u64,
    /// People whose general state is opted in.
    pub opted_in: u64,
    /// People whose general state is opted out.
    pub opted_out: u64,
    /// (sender, address) windows open at the time asked.
    pub open_windows: u64,
    /// Consent events in the audit trail.
    pub consent_events: u64,
    /// Inbound messages stored.
    pub inbound_messages: u64,
    /// Send attempts recorded.
    pub send_attempts: u64,
    /// Registered templates.
    pub templates: u64,
    /// Links between phones and business-scoped ids.
    pub links: u64,
}

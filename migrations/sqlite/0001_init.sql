-- wagate schema, version 1.
-- Times are INTEGER unix milliseconds (UTC). Every table carries business_id.
-- Effective time = min(at, received_at), stored so queries need not recompute it.

CREATE TABLE businesses (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE CHECK (length(name) > 0)
) STRICT;

-- One row per (business, user). The key is the normalised address text
-- (whatsapp:+...); an opaque Meta business-scoped user id can share the
-- column under its own prefix.
CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    business_id INTEGER NOT NULL REFERENCES businesses (id),
    key         TEXT NOT NULL,
    UNIQUE (business_id, key)
) STRICT;

-- The audit trail: append-only (see the triggers below). Clustered by user
-- (WITHOUT ROWID, primary key first), so one user's history is one or two
-- adjacent pages and needs no second index. `seq` is the ingest order
-- among the user's events.
CREATE TABLE consent_events (
    business_id INTEGER NOT NULL REFERENCES businesses (id),
    user_id     INTEGER NOT NULL REFERENCES users (id),
    seq         INTEGER NOT NULL,
    action      TEXT NOT NULL CHECK (action IN ('opt_in', 'opt_out')),
    scope       TEXT NOT NULL CHECK (scope IN ('all', 'marketing')),
    at          INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    effective   INTEGER NOT NULL,
    -- 1 for an opt-in keyword: it counts only after an opt-out (RULES R4).
    conditional INTEGER NOT NULL CHECK (conditional IN (0, 1)),
    source      TEXT NOT NULL CHECK (length(source) > 0),
    evidence    TEXT,
    PRIMARY KEY (business_id, user_id, seq)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER consent_events_no_update BEFORE UPDATE ON consent_events
BEGIN SELECT RAISE(ABORT, 'consent_events is append-only'); END;
CREATE TRIGGER consent_events_no_delete BEFORE DELETE ON consent_events
BEGIN SELECT RAISE(ABORT, 'consent_events is append-only'); END;

-- Inbound messages, idempotent by provider id: the primary key is the
-- unique constraint, so a duplicate webhook is an ON CONFLICT DO NOTHING.
-- A message without a provider id cannot be deduplicated and is not kept
-- here (its effects, window and keyword consent, are). The body is not
-- kept: only what the rules read from it.
CREATE TABLE inbound_messages (
    business_id INTEGER NOT NULL REFERENCES businesses (id),
    provider_id TEXT NOT NULL,
    user_id     INTEGER NOT NULL REFERENCES users (id),
    sender      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    at          INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    keyword     TEXT CHECK (keyword IN ('opt_out', 'opt_in', 'help')),
    referral    TEXT CHECK (referral IN ('ctwa_ad', 'page_cta')),
    PRIMARY KEY (business_id, provider_id)
) STRICT, WITHOUT ROWID;

-- The customer service window per (business, user, sender). Columns only
-- ever grow (max), so late events never move a window back.
CREATE TABLE windows (
    business_id    INTEGER NOT NULL REFERENCES businesses (id),
    user_id        INTEGER NOT NULL REFERENCES users (id),
    sender         TEXT NOT NULL,
    last_inbound   INTEGER,
    closed_through INTEGER,
    referral_at    INTEGER,
    PRIMARY KEY (business_id, user_id, sender)
) STRICT, WITHOUT ROWID;

-- Template history, append-only: full records and status-only changes
-- (webhooks, provider errors).
CREATE TABLE template_events (
    id                 INTEGER PRIMARY KEY,
    business_id        INTEGER NOT NULL REFERENCES businesses (id),
    name               TEXT NOT NULL,
    language           TEXT NOT NULL,
    category           TEXT CHECK (category IN ('marketing', 'utility', 'authentication')),
    body               TEXT,
    status             TEXT NOT NULL,
    at                 INTEGER NOT NULL,
    received_at        INTEGER NOT NULL,
    effective          INTEGER NOT NULL,
    source             TEXT NOT NULL,
    twilio_content_sid TEXT,
    meta_template_id   TEXT
) STRICT;

-- The current view of each template: definition from the newest record,
-- status from the newest record or status change (ties: ingested last).
CREATE TABLE templates (
    business_id        INTEGER NOT NULL REFERENCES businesses (id),
    name               TEXT NOT NULL,
    language           TEXT NOT NULL,
    category           TEXT NOT NULL CHECK (category IN ('marketing', 'utility', 'authentication')),
    body               TEXT NOT NULL,
    definition_at      INTEGER NOT NULL,
    status             TEXT NOT NULL,
    status_at          INTEGER NOT NULL,
    twilio_content_sid TEXT,
    meta_template_id   TEXT,
    PRIMARY KEY (business_id, name, language)
) STRICT, WITHOUT ROWID;

-- Every send attempt with its decision. A key that reached the transport
-- (reserved, sent, failed) is unique: a retry never sends twice.
CREATE TABLE sends (
    id                INTEGER PRIMARY KEY,
    business_id       INTEGER NOT NULL REFERENCES businesses (id),
    idempotency_key   TEXT NOT NULL,
    sender            TEXT NOT NULL,
    recipient         TEXT NOT NULL,
    user_id           INTEGER REFERENCES users (id),
    at                INTEGER NOT NULL,
    content           TEXT NOT NULL CHECK (content IN ('freeform', 'template')),
    template_name     TEXT,
    template_language TEXT,
    purpose           TEXT,
    verdict           TEXT NOT NULL CHECK (verdict IN ('allow', 'template_required', 'deny')),
    reason            TEXT NOT NULL,
    -- denied: never reached the transport; reserved: handed to it, answer
    -- not recorded yet; sent: accepted; failed: refused for good;
    -- retryable: refused, a retry with the same key may try again;
    -- duplicate: a retry of a key that had reached the transport.
    state             TEXT NOT NULL CHECK (state IN ('denied', 'reserved', 'sent', 'failed', 'retryable', 'duplicate')),
    provider_id       TEXT,
    status            TEXT,
    status_rank       INTEGER,
    error_code        INTEGER,
    error             TEXT
) STRICT;
CREATE UNIQUE INDEX sends_by_key ON sends (business_id, idempotency_key)
    WHERE state IN ('reserved', 'sent', 'failed');
CREATE UNIQUE INDEX sends_by_provider_id ON sends (business_id, provider_id)
    WHERE provider_id IS NOT NULL;
CREATE INDEX sends_by_user ON sends (user_id, at) WHERE state IN ('reserved', 'sent');

-- Provider error codes that took effect: each (send, code) once.
CREATE TABLE feedback (
    business_id INTEGER NOT NULL REFERENCES businesses (id),
    send_id     INTEGER NOT NULL REFERENCES sends (id),
    code        INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (send_id, code)
) STRICT, WITHOUT ROWID;

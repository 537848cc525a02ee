-- wagate schema, version 2: people (RULES R8), a hash-chained consent
-- trail, strict duplicates, feedback for messages sent elsewhere, and
-- what `wagate sends` reads back.

-- People. A user row is one address (a phone or a business-scoped user
-- id); person_id is the smallest user id among the addresses linked to it,
-- so a link merges two persons by moving the larger id to the smaller.
-- `linked` is 1 once the address is linked to another: a decision for an
-- unlinked address reads its own rows by primary key, no person join.
ALTER TABLE users ADD COLUMN person_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN linked INTEGER NOT NULL DEFAULT 0 CHECK (linked IN (0, 1));
UPDATE users SET person_id = id;
CREATE INDEX users_by_person ON users (business_id, person_id);

-- The head of each address's consent chain: how many events it holds and
-- the hash of the last one. A dropped event is caught by these two.
ALTER TABLE users ADD COLUMN consent_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN consent_head BLOB;

-- Links between a phone and a business-scoped user id, learnt from
-- inbound messages that carry both. Never undone.
CREATE TABLE links (
    business_id INTEGER NOT NULL REFERENCES businesses (id),
    phone_id    INTEGER NOT NULL REFERENCES users (id),
    bsuid_id    INTEGER NOT NULL REFERENCES users (id),
    at          INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    source      TEXT NOT NULL,
    PRIMARY KEY (business_id, phone_id, bsuid_id)
) STRICT, WITHOUT ROWID;
-- Covering for the walk from a BSUID to its phones (received_at for as-of).
CREATE INDEX links_by_bsuid ON links (business_id, bsuid_id, received_at);
CREATE TRIGGER links_no_update BEFORE UPDATE ON links
BEGIN SELECT RAISE(ABORT, 'links are never undone'); END;
CREATE TRIGGER links_no_delete BEFORE DELETE ON links
BEGIN SELECT RAISE(ABORT, 'links are never undone'); END;

-- Every consent event carries SHA-256(prev || its fields), chained per
-- address (src/chain.rs). Rows written by version 1 are hashed once by
-- the migration runner right after this file; after that no row may
-- change, and no row may arrive without its hash.
ALTER TABLE consent_events ADD COLUMN hash BLOB;
DROP TRIGGER consent_events_no_update;
CREATE TRIGGER consent_events_no_update BEFORE UPDATE ON consent_events
WHEN OLD.hash IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'consent_events is append-only'); END;
CREATE TRIGGER consent_events_hashed BEFORE INSERT ON consent_events
WHEN NEW.hash IS NULL OR length(NEW.hash) != 32
BEGIN SELECT RAISE(ABORT, 'a consent event needs its 32-byte chain hash'); END;

-- An inbound id says one thing (RULES R2): the second address it carried
-- and a digest of what it said (addresses, sender, kind, body, referral),
-- so a redelivery is told from another message under the same id without
-- keeping the body.
ALTER TABLE inbound_messages ADD COLUMN also_user_id INTEGER REFERENCES users (id);
ALTER TABLE inbound_messages ADD COLUMN fingerprint BLOB;

-- Provider error codes from callbacks for messages the gate never sent
-- (RULES R7): each (message id, code) takes effect once.
CREATE TABLE external_feedback (
    business_id INTEGER NOT NULL REFERENCES businesses (id),
    provider_id TEXT NOT NULL,
    code        INTEGER NOT NULL,
    sender      TEXT NOT NULL,
    user_id     INTEGER NOT NULL REFERENCES users (id),
    at          INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (business_id, provider_id, code)
) STRICT, WITHOUT ROWID;

-- A digest of the request a key was used for (RULES R7: a key reused for
-- another request is an error), the decision's facts as JSON, and when
-- the transport's answer was recorded: what `wagate sends` shows.
ALTER TABLE sends ADD COLUMN request_hash BLOB;
ALTER TABLE sends ADD COLUMN facts TEXT;
CREATE INDEX sends_by_key_all ON sends (business_id, idempotency_key);
-- `wagate sends --user`: by the address as sent to, even one never seen
-- before (its user_id is NULL).
CREATE INDEX sends_by_recipient ON sends (business_id, recipient, at);

-- Template history by template: the current status is the newest of its
-- records and status changes, even those that arrived before it was
-- registered (RULES R5).
CREATE INDEX template_events_by_key ON template_events (business_id, name, language, effective);

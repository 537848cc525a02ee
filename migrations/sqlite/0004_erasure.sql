-- Version 4: erasure that keeps suppression (Business::forget), and the
-- consent chain's version 2 encoding (src/chain.rs), under which an event's
-- hash covers its address's subject (a keyed hash, which a tombstone keeps
-- as its key) and a salted digest of its evidence (which erasure keeps).

-- A per-database secret: tombstones are HMAC-SHA256 under it. Written once
-- by the migration runner right after this file (SQL has no OS random).
CREATE TABLE secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL CHECK (length(value) = 32)
) STRICT, WITHOUT ROWID;
CREATE TRIGGER secrets_no_update BEFORE UPDATE ON secrets
BEGIN SELECT RAISE(ABORT, 'a secret never changes'); END;
CREATE TRIGGER secrets_no_delete BEFORE DELETE ON secrets
BEGIN SELECT RAISE(ABORT, 'a secret never changes'); END;

-- An erased address: its key becomes `erased:<hex HMAC>` (a tombstone the
-- address finds again if it comes back) and `erased_at` says when (the
-- last time). Its events sealed by erasure (`evidence_digest` set) keep
-- counting when they are opt-outs; sealed opt-ins no longer count (their
-- proof is gone).
ALTER TABLE users ADD COLUMN erased_at INTEGER;
-- Lets the lookup of a new address skip the tombstone search entirely in a
-- business that never forgot anyone.
CREATE INDEX users_erased ON users (business_id) WHERE erased_at IS NOT NULL;

-- Each event's random salt, and, once erased, its evidence digest (the
-- salt and the evidence are then gone).
ALTER TABLE consent_events ADD COLUMN salt BLOB;
ALTER TABLE consent_events ADD COLUMN evidence_digest BLOB;

-- The runner re-hashes every chain as version 2 right after this file
-- (after checking it as version 1); version 5 re-arms the guards.
DROP TRIGGER consent_events_no_update;
DROP TRIGGER consent_events_hashed;
DROP TRIGGER links_no_update;

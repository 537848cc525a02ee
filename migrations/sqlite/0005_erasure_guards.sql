-- Version 5: the append-only guards again, now with the one change that
-- erasure may make (Business::forget). A separate version because version
-- 4's runner step re-hashes rows these guards forbid changing.

-- A consent event never changes, except that erasure seals it: once its
-- address is a tombstone, its salt and evidence may go, replaced by the
-- 32-byte digest that its hash already covers. Every other column stays.
CREATE TRIGGER consent_events_no_update BEFORE UPDATE ON consent_events
WHEN NOT (
    OLD.evidence_digest IS NULL AND NEW.evidence_digest IS NOT NULL AND length(NEW.evidence_digest) = 32
    AND NEW.salt IS NULL AND NEW.evidence IS NULL
    AND NEW.business_id = OLD.business_id AND NEW.user_id = OLD.user_id
    AND NEW.seq = OLD.seq AND NEW.action = OLD.action AND NEW.scope = OLD.scope
    AND NEW.at = OLD.at AND NEW.received_at = OLD.received_at
    AND NEW.effective = OLD.effective AND NEW.conditional = OLD.conditional
    AND NEW.source = OLD.source AND NEW.hash = OLD.hash
    AND (SELECT key FROM users WHERE id = OLD.user_id) LIKE 'erased:%')
BEGIN SELECT RAISE(ABORT, 'consent_events is append-only (erasure may only seal an erased address''s events)'); END;

-- Every event arrives with its hash and its salt, in clear.
CREATE TRIGGER consent_events_hashed BEFORE INSERT ON consent_events
WHEN NEW.hash IS NULL OR length(NEW.hash) != 32
  OR NEW.salt IS NULL OR length(NEW.salt) != 16 OR NEW.evidence_digest IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'a consent event needs its 32-byte chain hash and 16-byte salt'); END;

-- Links are never undone; erasure may only blank the source (a message
-- id) of a link between two erased addresses.
CREATE TRIGGER links_no_update BEFORE UPDATE ON links
WHEN NOT (
    NEW.source = 'erased'
    AND NEW.business_id = OLD.business_id AND NEW.phone_id = OLD.phone_id
    AND NEW.bsuid_id = OLD.bsuid_id AND NEW.at = OLD.at AND NEW.received_at = OLD.received_at
    AND (SELECT key FROM users WHERE id = OLD.phone_id) LIKE 'erased:%'
    AND (SELECT key FROM users WHERE id = OLD.bsuid_id) LIKE 'erased:%')
BEGIN SELECT RAISE(ABORT, 'links are never undone'); END;

-- An address is never renamed: erasure only turns a clear key into a
-- tombstone, and a tombstone never changes. (The consent chain binds each
-- row's key through its subject as well: a key changed behind these
-- guards breaks it.)
CREATE TRIGGER users_key_guard BEFORE UPDATE OF key ON users
WHEN NEW.key IS NOT OLD.key AND (OLD.key LIKE 'erased:%' OR NEW.key NOT LIKE 'erased:%')
BEGIN SELECT RAISE(ABORT, 'an address is never renamed (erasure only turns it into its tombstone)'); END;

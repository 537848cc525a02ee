-- Version 4: inbound messages by address and sender, for as-of windows
-- (`check --at`) and for retention, which keeps the newest old message of
-- each address and sender (without it both scan the business).
CREATE INDEX inbound_by_address ON inbound_messages (business_id, user_id, sender, received_at);

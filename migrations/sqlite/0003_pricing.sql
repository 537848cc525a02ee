-- Version 3: what a provider says a message costs (Meta's status
-- `pricing`: category, type, billable), kept with the send as JSON.
ALTER TABLE sends ADD COLUMN pricing TEXT;

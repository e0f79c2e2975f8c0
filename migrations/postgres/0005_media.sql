-- Outbox items that are not replies (MMS media downloads) carry their
-- parameters as JSON.
ALTER TABLE outbox ADD COLUMN payload TEXT;

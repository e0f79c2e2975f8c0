-- Issue 11 item 7: repeats of one rejection from one source (the same
-- reason from the same client address within an hour) are one row with a
-- count, so a flood of forged webhooks adds a number, not rows.
ALTER TABLE rejected ADD COLUMN source TEXT;
ALTER TABLE rejected ADD COLUMN repeats BIGINT NOT NULL DEFAULT 1;
ALTER TABLE rejected ADD COLUMN last_received_at TIMESTAMPTZ;
CREATE INDEX rejected_grouping ON rejected (kind, reason, source, id DESC);

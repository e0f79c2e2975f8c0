-- Scheduled jobs (SPEC §6): one lease row per job, so that with several
-- instances each scheduled run happens on exactly one of them.

CREATE TABLE job_leases (
    name         TEXT PRIMARY KEY,
    last_tick    TIMESTAMPTZ,
    locked_until TIMESTAMPTZ,
    locked_by    TEXT,
    last_started TIMESTAMPTZ,
    last_finished TIMESTAMPTZ,
    last_error   TEXT,
    runs         BIGINT NOT NULL DEFAULT 0,
    failures     BIGINT NOT NULL DEFAULT 0
);

-- Escalation happens once per issue.
ALTER TABLE issues ADD COLUMN escalated_at TIMESTAMPTZ;

-- Scheduled jobs (SPEC §6): one lease row per job, so that with several
-- instances each scheduled run happens on exactly one of them.

CREATE TABLE job_leases (
    name         TEXT PRIMARY KEY,
    last_tick    TEXT,
    locked_until TEXT,
    locked_by    TEXT,
    last_started TEXT,
    last_finished TEXT,
    last_error   TEXT,
    runs         INTEGER NOT NULL DEFAULT 0,
    failures     INTEGER NOT NULL DEFAULT 0
);

-- Escalation happens once per issue.
ALTER TABLE issues ADD COLUMN escalated_at TEXT;

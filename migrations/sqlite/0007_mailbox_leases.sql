-- SPEC §7: each IMAP mailbox is polled by one instance at a time. The
-- instance holding a mailbox renews `locked_until`; another may take it
-- over only once the lease has run out (its holder stopped or died).
CREATE TABLE mailbox_leases (
    mailbox      TEXT PRIMARY KEY,
    holder       TEXT NOT NULL,
    locked_until TEXT NOT NULL
);

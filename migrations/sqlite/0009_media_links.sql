-- Public links to a reply's files, for MMS: Twilio fetches each `MediaUrl`
-- itself, without our credentials, so a reply's attachment is offered at
-- `{public_url}/media/<token>` for a limited time. Only the token's SHA-256
-- is stored.
CREATE TABLE media_links (
    token_hash    TEXT PRIMARY KEY,
    attachment_id INTEGER NOT NULL REFERENCES attachments (id) ON DELETE CASCADE,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL
);
CREATE INDEX media_links_expiry ON media_links (expires_at);

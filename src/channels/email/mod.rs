//! The email channel: IMAP in (`imap`: fetching, IDLE, leases), MIME
//! parsing (`parse`), ingest into the store (`ingest`), and SMTP out for
//! replies and notifications (`smtp`).

pub mod imap;
pub mod ingest;
pub mod parse;
pub mod smtp;

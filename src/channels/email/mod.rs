//! The email channel: SMTP out (replies, notifications). IMAP ingest and
//! MIME parsing land here next.

pub mod smtp;

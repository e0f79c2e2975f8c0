//! The email channel: SMTP out (replies, notifications). IMAP ingest and
//! MIME parsing land here next.

pub mod imap;
pub mod ingest;
pub mod parse;
pub mod smtp;

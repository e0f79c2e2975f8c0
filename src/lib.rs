//! Switchboard: customer SMS and email in, support issues out.
//!
//! The layers and the one direction data flows through them (STYLE.md):
//! channel → domain decision → store transaction → workers → channel out.

pub mod app;
pub mod attachments;
pub mod channels;
pub mod cli;
pub mod config;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod outbox;
pub mod password;
pub mod redact;
pub mod reload;
pub mod retry;
pub mod schedule;
pub mod serve;
pub mod store;
pub mod systemd;
pub mod tls;
pub mod token;
pub mod web;

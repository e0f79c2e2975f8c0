//! The one integration test binary (zero2prod's layout): each module is
//! one area of the contract, sharing the harness in `helpers`.

mod cli;
/// Runs each listed `async fn name(Backend)` as two tests,
/// `sqlite::name` and `postgres::name`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(crate::helpers::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(crate::helpers::Backend::Postgres).await })*
        }
    };
}

mod dovecot;
mod email_in;
mod email_out;
mod hardening;
mod helpers;
mod imap;
mod imap_e2e;
mod issues_api;
mod jobs;
mod merge;
mod metrics;
mod notifications;
mod openapi;
mod query_plans;
mod sms;
mod smtp_sink;
mod smtp_tls;
mod spawn;
mod store_story;
mod systemd;
mod tracker_scale;
mod web_admin;
mod web_issue;
mod web_signin;
mod web_support;
mod web_tracker;

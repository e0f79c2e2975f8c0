//! The one integration test binary (zero2prod's layout): each module is
//! one area of the contract, sharing the harness in `helpers`.

mod cli;
mod helpers;
mod issues_api;
mod sms;
mod spawn;
mod store_story;

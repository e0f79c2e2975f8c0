//! The domain: plain types and the rules of SPEC §2 and §3, with no I/O.
//!
//! I keep everything here free of tokio, sqlx and axum on purpose: the state
//! machine and the threading decision are the two places where a bug loses a
//! customer's message or lets two people work one issue, so they are plain
//! functions over plain values that unit and property tests can hammer
//! without a database. The store loads the facts a rule needs, asks the
//! function here, and persists the answer in the same transaction.

pub mod contact;
pub mod ingest;
pub mod notify;
pub mod refusal;
pub mod signin;
pub mod state;
pub mod text;
pub mod threading;
pub mod types;

#[cfg(test)]
mod proptests;

pub use contact::{Contact, ContactError, EmailAddress, Phone};
pub use refusal::{Refusal, RefusalKind};
pub use state::{Action, Actor, IssueState, Transition, TransitionError};
pub use threading::{Placement, ThreadingFacts};
pub use types::*;

//! The SMS channel. Twilio is the first (and so far only) provider.

pub mod twilio;

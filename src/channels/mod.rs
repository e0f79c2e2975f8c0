//! Channels translate the outside world into domain inputs and back:
//! `sms` (Twilio webhooks in, Messages API out). Email (IMAP in, SMTP out)
//! is the next capability to land here.

pub mod email;
pub mod health;
pub mod sms;

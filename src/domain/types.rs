//! Small enums shared by every layer, each with its exact wire spelling.
//!
//! The spellings are part of the external contract (SPEC §1, §4.1), so each
//! enum owns its `as_str`/`parse` pair and serde uses the same names. The
//! database stores the same strings, which keeps rows readable with `psql`.
//! The `ToSchema` derive gives the OpenAPI document the same spellings; it
//! is a compile-time description only, no I/O.

use serde::{Deserialize, Serialize};

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            /// The exact spelling used on the wire and in the database.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $s),+ }
            }
            /// Parses the wire spelling; `None` for anything else.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some(Self::$variant),)+ _ => None }
            }
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$(Self::$variant),+];
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl TryFrom<&str> for $name {
            type Error = UnknownValue;
            fn try_from(s: &str) -> Result<Self, UnknownValue> {
                Self::parse(s).ok_or_else(|| UnknownValue { kind: stringify!($name), value: s.into() })
            }
        }
    };
}

/// A spelling that none of an enum's values has (e.g. a database row
/// written by a newer version).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownValue {
    pub kind: &'static str,
    pub value: String,
}

wire_enum!(
    /// A staff member's role.
    Role { Admin => "admin", Agent => "agent" }
);
wire_enum!(
    /// Where an issue is in its life (SPEC §2).
    IssueStatus { Unassigned => "unassigned", Assigned => "assigned", Closed => "closed" }
);
wire_enum!(
    /// How a closed issue ended.
    Resolution { Closed => "closed", Resolved => "resolved" }
);
wire_enum!(
    /// The channel a message travels over.
    Channel { Sms => "sms", Email => "email" }
);
wire_enum!(
    /// What an entry in an issue's timeline is.
    MessageKind { Customer => "customer", Reply => "reply", Comment => "comment", Event => "event" }
);
wire_enum!(
    /// Which threading rule placed an inbound message (SPEC §3.1).
    ThreadingRule {
        Reference => "reference",
        Token => "token",
        Customer => "customer",
        Reopened => "reopened",
        New => "new",
    }
);
wire_enum!(
    /// The type of an `event` message (SPEC §4.1).
    EventType {
        Taken => "taken",
        Assigned => "assigned",
        Unassigned => "unassigned",
        Closed => "closed",
        Resolved => "resolved",
        Reopened => "reopened",
        Escalated => "escalated",
        AutoClosed => "auto_closed",
        OptedOut => "opted_out",
        OptedIn => "opted_in",
        AutoReply => "auto_reply",
        Bounce => "bounce",
        Merged => "merged",
    }
);
wire_enum!(
    /// Delivery state of an outbound reply.
    DeliveryStatus {
        Queued => "queued",
        Sending => "sending",
        Sent => "sent",
        Delivered => "delivered",
        Failed => "failed",
    }
);
wire_enum!(
    /// The kind of a customer contact.
    ContactKind { Phone => "phone", Email => "email" }
);

impl DeliveryStatus {
    /// Delivery reports arrive out of order (PROTOCOL-NOTES): a status may
    /// only move forward. `delivered` and `failed` are both terminal.
    pub fn may_become(self, next: DeliveryStatus) -> bool {
        fn rank(s: DeliveryStatus) -> u8 {
            match s {
                DeliveryStatus::Queued => 0,
                DeliveryStatus::Sending => 1,
                DeliveryStatus::Sent => 2,
                DeliveryStatus::Delivered | DeliveryStatus::Failed => 3,
            }
        }
        rank(next) > rank(self)
    }
}

impl IssueStatus {
    /// Unassigned and assigned issues are "open".
    pub fn is_open(self) -> bool {
        !matches!(self, IssueStatus::Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for s in EventType::ALL {
            assert_eq!(EventType::parse(s.as_str()), Some(*s));
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        assert_eq!(EventType::AutoClosed.as_str(), "auto_closed");
        assert_eq!(IssueStatus::parse("open"), None);
    }

    #[test]
    fn delivery_only_moves_forward() {
        use DeliveryStatus::*;
        assert!(Queued.may_become(Sent));
        assert!(Sent.may_become(Delivered));
        assert!(Sent.may_become(Failed));
        assert!(!Delivered.may_become(Sent));
        assert!(!Delivered.may_become(Failed));
        assert!(!Failed.may_become(Delivered));
        assert!(!Sent.may_become(Sending));
    }
}

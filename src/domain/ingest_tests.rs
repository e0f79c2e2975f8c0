//! SPEC §3.1–§3.8 and §5 for a placed message: one test per rule, then
//! properties over every combination of the facts.

use proptest::prelude::*;

use super::*;
use crate::domain::IssueState;

fn opts() -> IngestOptions {
    IngestOptions {
        ack_words: vec!["ok".into(), "thanks".into()],
        auto_resolve_acks: true,
        auto_ack: Some(("We got it: #{issue}".into(), 3)),
        own_addresses: vec!["support@example.com".into(), "+15550100".into()],
        ..IngestOptions::default()
    }
}

fn sms(body: &str) -> Arrival<'_> {
    Arrival {
        channel: Channel::Sms,
        body,
        subject: None,
        is_automated: false,
        is_bounce: false,
    }
}

const JANE: Sender<'static> = Sender {
    value: "+15550123",
    opted_out: false,
};

#[test]
fn an_email_subject_is_cleaned_and_an_sms_subject_comes_from_the_body() {
    let mail = Arrival {
        channel: Channel::Email,
        subject: Some("Re: [#4] Broken tap"),
        ..sms("hi")
    };
    assert_eq!(new_issue(&mail, &opts()).subject, "Broken tap");
    assert_eq!(
        new_issue(&sms("My tap drips"), &opts()).subject,
        "My tap drips"
    );
}

#[test]
fn an_acknowledgement_opens_an_issue_resolved_at_once_when_the_policy_says_so() {
    let new = new_issue(&sms("thanks"), &opts());
    assert!(new.ack_only);
    let (to, event) = new.resolved.expect("resolved at once");
    assert_eq!(
        (to.status, to.resolution, to.closed_by),
        (IssueStatus::Closed, Some(Resolution::Resolved), None)
    );
    assert_eq!(event.kind, EventType::Resolved);

    let keep = IngestOptions {
        auto_resolve_acks: false,
        ..opts()
    };
    let new = new_issue(&sms("thanks"), &keep);
    assert!(new.ack_only && new.resolved.is_none());
    assert!(
        new_issue(&sms("thanks, but it still drips"), &opts())
            .resolved
            .is_none()
    );
}

#[test]
fn automated_mail_is_an_auto_reply_or_a_bounce_event() {
    let auto = Arrival {
        is_automated: true,
        subject: Some("Out of office"),
        ..sms("away")
    };
    let e = automated_event(&auto);
    assert_eq!(
        e,
        Event {
            kind: EventType::AutoReply,
            text: "Automatic reply received: Out of office".into()
        }
    );
    let bounce = Arrival {
        is_bounce: true,
        subject: None,
        ..auto
    };
    assert_eq!(automated_event(&bounce).kind, EventType::Bounce);
    assert_eq!(
        automated_event(&bounce).text,
        "Delivery failure report received"
    );
}

#[test]
fn a_reopen_goes_back_to_an_active_assignee_or_to_unassigned() {
    let closed = IssueState {
        status: IssueStatus::Closed,
        assignee_id: Some(3),
        resolution: Some(Resolution::Closed),
        closed_by: Some(3),
    };
    let (to, event) = customer_reopen(closed, true);
    assert_eq!(
        (to.status, to.assignee_id),
        (IssueStatus::Assigned, Some(3))
    );
    assert_eq!(event.kind, EventType::Reopened);
    assert_eq!(
        customer_reopen(closed, false).0,
        IssueState::new_unassigned()
    );
}

#[test]
fn who_hears_about_a_customer_message() {
    assert_eq!(
        customer_notice(true, IssueStatus::Unassigned),
        Some(NotifyEvent::IssueOpened)
    );
    assert_eq!(
        customer_notice(false, IssueStatus::Assigned),
        Some(NotifyEvent::CustomerReplied)
    );
    assert_eq!(
        customer_notice(false, IssueStatus::Unassigned),
        Some(NotifyEvent::UnassignedActivity)
    );
    assert_eq!(customer_notice(true, IssueStatus::Closed), None);
    assert_eq!(
        customer_notice_text(
            NotifyEvent::IssueOpened,
            7,
            Channel::Sms,
            "Jane",
            "Tap  drips"
        ),
        "[#7] New SMS from Jane: Tap drips"
    );
    assert_eq!(
        customer_notice_text(
            NotifyEvent::CustomerReplied,
            7,
            Channel::Email,
            "Jane",
            "Still"
        ),
        "[#7] Jane wrote: Still"
    );
}

#[test]
fn the_acknowledgement_fills_in_the_issue_and_keeps_to_its_hourly_limit() {
    let o = opts();
    let ack = auto_ack(&sms("help"), &JANE, true, IssueStatus::Unassigned, &o).expect("an ack");
    assert_eq!(ack.text(42), "We got it: #42");
    assert!(ack.allowed(2));
    assert!(!ack.allowed(3));
}

#[test]
fn no_acknowledgement_to_ourselves_to_a_stopped_number_or_for_a_keyword() {
    let o = opts();
    let us = Sender {
        value: "SUPPORT@example.com",
        opted_out: false,
    };
    let mail = Arrival {
        channel: Channel::Email,
        ..sms("help")
    };
    assert!(auto_ack(&mail, &us, true, IssueStatus::Unassigned, &o).is_none());
    let stopped = Sender {
        opted_out: true,
        ..JANE
    };
    assert!(auto_ack(&sms("help"), &stopped, true, IssueStatus::Unassigned, &o).is_none());
    assert!(
        auto_ack(&mail, &stopped, true, IssueStatus::Unassigned, &o).is_some(),
        "email ignores SMS opt-out"
    );
    assert!(auto_ack(&sms("STOP"), &JANE, true, IssueStatus::Unassigned, &o).is_none());
    let off = IngestOptions {
        auto_ack: None,
        ..opts()
    };
    assert!(auto_ack(&sms("help"), &JANE, true, IssueStatus::Unassigned, &off).is_none());
}

#[test]
fn stop_and_start_change_the_opt_out_once() {
    let (out, e) = opt_change(&sms("Stop"), &JANE).expect("opts out");
    assert!(out);
    assert_eq!(e.kind, EventType::OptedOut);
    let stopped = Sender {
        opted_out: true,
        ..JANE
    };
    assert!(opt_change(&sms("STOP"), &stopped).is_none(), "already out");
    assert_eq!(
        opt_change(&sms("start"), &stopped).map(|(v, e)| (v, e.kind)),
        Some((false, EventType::OptedIn))
    );
    assert!(
        opt_change(&sms("yes"), &JANE).is_none(),
        "yes is only a keyword while opted out"
    );
    let mail = Arrival {
        channel: Channel::Email,
        ..sms("STOP")
    };
    assert!(opt_change(&mail, &JANE).is_none(), "email has no keywords");
}

fn arrival_parts() -> impl Strategy<Value = (bool, String, bool, bool)> {
    let body = prop_oneof![
        Just("ok".to_string()),
        Just("thanks".to_string()),
        Just("STOP".to_string()),
        Just("start".to_string()),
        Just("yes".to_string()),
        "[a-z ]{0,30}",
    ];
    (any::<bool>(), body, any::<bool>(), any::<bool>())
}

fn status() -> impl Strategy<Value = IssueStatus> {
    prop_oneof![
        Just(IssueStatus::Unassigned),
        Just(IssueStatus::Assigned),
        Just(IssueStatus::Closed)
    ]
}

proptest! {
    /// Whatever the message, an acknowledgement only ever answers a
    /// person's first message on an issue still open, on a channel that
    /// may be written to.
    #[test]
    fn an_acknowledgement_never_answers_a_machine_a_stop_or_ourselves(
        (is_sms, body, automated, opted_out) in arrival_parts(),
        own in any::<bool>(),
        opened in any::<bool>(),
        status in status(),
    ) {
        let o = opts();
        let channel = if is_sms { Channel::Sms } else { Channel::Email };
        let a = Arrival { channel, body: &body, subject: None, is_automated: automated, is_bounce: false };
        let s = Sender { value: if own { "+15550100" } else { "+15550123" }, opted_out };
        if auto_ack(&a, &s, opened, status, &o).is_some() {
            prop_assert!(opened && !automated && !own);
            prop_assert!(status != IssueStatus::Closed);
            prop_assert!(!(is_sms && opted_out));
            prop_assert!(crate::domain::text::opt_keyword(&body).is_none());
        }
    }

    /// A keyword only ever flips the opt-out, and applying the change
    /// leaves nothing more to change.
    #[test]
    fn an_opt_change_is_a_flip_and_is_idempotent((is_sms, body, _, opted_out) in arrival_parts()) {
        let channel = if is_sms { Channel::Sms } else { Channel::Email };
        let a = Arrival { channel, body: &body, subject: None, is_automated: false, is_bounce: false };
        let s = Sender { value: "+15550123", opted_out };
        if let Some((now, _)) = opt_change(&a, &s) {
            prop_assert!(is_sms);
            prop_assert_ne!(now, opted_out);
            let after = Sender { opted_out: now, ..s };
            prop_assert!(opt_change(&a, &after).is_none());
        }
    }

    /// Staff hear of every message on an open issue and of none on a
    /// closed one; a new issue is always announced as new.
    #[test]
    fn every_message_on_an_open_issue_is_announced(opened in any::<bool>(), status in status()) {
        let n = customer_notice(opened, status);
        prop_assert_eq!(n.is_none(), status == IssueStatus::Closed);
        if opened && status != IssueStatus::Closed {
            prop_assert_eq!(n, Some(NotifyEvent::IssueOpened));
        }
    }

    /// A new issue is resolved at once only when it is an acknowledgement
    /// and the policy asks for it, and then by the system.
    #[test]
    fn only_acknowledgements_are_resolved_at_once((_, body, _, _) in arrival_parts(), auto in any::<bool>()) {
        let o = IngestOptions { auto_resolve_acks: auto, ..opts() };
        let new = new_issue(&sms(&body), &o);
        prop_assert_eq!(new.resolved.is_some(), auto && new.ack_only);
        if let Some((to, _)) = new.resolved {
            prop_assert_eq!(to.status, IssueStatus::Closed);
            prop_assert_eq!(to.closed_by, None);
        }
    }
}

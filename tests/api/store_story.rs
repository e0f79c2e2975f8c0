//! Store conformance: one story, told to both backends (atuin's pattern).
//!
//! SPEC §7 promises that SQLite and PostgreSQL pass the same suite, so every
//! step here runs against both, through the public `Store` API only. The
//! story is one helpdesk growing chapter by chapter (staff, threading,
//! opt-out, the state machine, comments, reading, listing, New Ticket, the
//! outbox, the rejected log) in one database, because that is how the
//! store is used: later chapters run on top of what earlier ones left, and a
//! query that only works on an empty table gets caught. Chapters keep their
//! own customers (distinct phone numbers) so their assertions stay exact.
//!
//! The races of SPEC §2 and §3.1 get their own tests on a multi-threaded
//! runtime with a pool of ten connections, so the database, not the test's
//! scheduling, has to decide who wins.
//!
//! I read raw rows (through `TestStore`) only for facts the API rightly
//! hides: how a token is stored and how many rows a race left behind. The
//! clock is moved back the same way where a rule depends on elapsed time
//! (the 5-hour comment window, the reopen window), which keeps the tests
//! fast and deterministic.

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use switchboard::domain::{
    Channel, Contact, ContactKind, DeliveryStatus, EmailAddress, EventType, IssueStatus,
    MessageKind, Phone, Resolution, Role, ThreadingRule,
};
use switchboard::store::{
    AssigneeFilter, ContactView, Delivery, DeliveryError, Inbound, IngestOptions, IngestOutcome,
    IssueAction, IssueFilter, IssueView, MessageView, NewIssue, PersonRef, Staff, StatusFilter,
    Store, StoreError, now,
};
use tokio::sync::Barrier;

use crate::helpers::{Backend, TestStore, test_store, test_store_with};

// ------------------------------------------------------------ the tests

#[tokio::test]
async fn story_sqlite() {
    story(Backend::Sqlite).await;
}

#[tokio::test]
async fn story_postgres() {
    story(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn races_sqlite() {
    races(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn races_postgres() {
    races(Backend::Postgres).await;
}

async fn story(backend: Backend) {
    let ts = test_store(backend).await;
    let expected_name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(ts.backend, backend);
    assert_eq!(ts.backend_name(), expected_name);
    assert!(ts.url.starts_with(expected_name), "{}", ts.url);
    assert!(ts.is_migrated().await.unwrap(), "fresh store is migrated");
    ts.ping().await.unwrap();

    let cast = staff_and_tokens(&ts).await;
    threading(&ts, &cast).await;
    opt_out(&ts, &cast).await;
    state_machine(&ts, &cast).await;
    comments(&ts, &cast).await;
    reading(&ts, &cast).await;
    listing(&ts, &cast).await;
    new_ticket(&ts, &cast).await;
    outbox_and_delivery(&ts, &cast).await;
    rejected_log(&ts).await;

    ts.cleanup().await;
}

// ------------------------------------------------------------ fixtures

/// The staff every chapter after the first works with.
struct Cast {
    admin: Staff,
    ann: Staff,
    bob: Staff,
    /// Deactivated in the first chapter.
    dan: Staff,
}

/// A distinct, valid North American number per `n`.
fn phone(n: u32) -> String {
    format!("+1555{n:07}")
}

fn ingest_options() -> IngestOptions {
    IngestOptions {
        reopen_window: Duration::ZERO,
        ack_words: ["ok", "okay", "thanks", "thank you", "thx", "yes", "👍"]
            .map(String::from)
            .to_vec(),
        auto_resolve_acks: false,
        auto_ack: None,
        own_addresses: Vec::new(),
    }
}

/// A fresh message id for inbound messages nobody will send twice.
fn sid() -> String {
    format!("SM{:032x}", rand::random::<u128>())
}

/// An inbound SMS as the Twilio channel would hand it over.
fn sms(from: &str, message_sid: &str, body: &str) -> Inbound {
    Inbound {
        channel: Channel::Sms,
        external_id: message_sid.to_string(),
        sender: Contact::Phone(Phone::parse(from, "US").expect("test phone number parses")),
        sender_name: None,
        subject: None,
        body: body.to_string(),
        html: None,
        raw: None,
        references: Vec::new(),
        is_automated: false,
        received_at: now(),
        media: Vec::new(),
        mailbox: None,
        references_header: None,
        referenced_issue: None,
        is_bounce: false,
        attachments: Vec::new(),
    }
}

/// An inbound email as the IMAP channel would hand it over.
fn email(
    from: &str,
    display_name: Option<&str>,
    message_id: &str,
    subject: &str,
    body: &str,
    references: &[&str],
) -> Inbound {
    Inbound {
        channel: Channel::Email,
        external_id: message_id.to_string(),
        sender: Contact::Email(EmailAddress::parse(from).expect("test address parses")),
        sender_name: display_name.map(String::from),
        subject: Some(subject.to_string()),
        body: body.to_string(),
        html: None,
        raw: None,
        references: references.iter().map(|r| r.to_string()).collect(),
        is_automated: false,
        received_at: now(),
        media: Vec::new(),
        mailbox: None,
        references_header: None,
        referenced_issue: None,
        is_bounce: false,
        attachments: Vec::new(),
    }
}

/// `(message_id, issue_id, rule, opened)` of a stored message.
#[track_caller]
fn stored(outcome: IngestOutcome) -> (i64, i64, ThreadingRule, bool) {
    match outcome {
        IngestOutcome::Stored {
            message_id,
            issue_id,
            rule,
            opened,
        } => (message_id, issue_id, rule, opened),
        other => panic!("expected the message to be stored, got {other:?}"),
    }
}

/// The refusal a call must have answered, checked against status and code.
#[track_caller]
fn refused<T: Debug>(
    result: Result<T, StoreError>,
    status: u16,
    code: &str,
) -> switchboard::domain::Refusal {
    match result {
        Err(StoreError::Rule(e)) => {
            // The status the API and the page give this kind of refusal.
            let shown = switchboard::http::error::refusal_status(e.kind).as_u16();
            assert_eq!(
                (shown, e.code),
                (status, code),
                "wrong refusal: {}",
                e.message
            );
            e
        }
        other => panic!("expected {status} {code}, got {other:?}"),
    }
}

#[track_caller]
fn not_found<T: Debug>(result: Result<T, StoreError>) {
    assert!(
        matches!(result, Err(StoreError::NotFound(_))),
        "expected not found, got {result:?}"
    );
}

/// A list filter that sees everything open, 100 at a time.
fn filter() -> IssueFilter {
    IssueFilter {
        limit: 100,
        ..IssueFilter::default()
    }
}

fn ids(issues: &[IssueView]) -> Vec<i64> {
    issues.iter().map(|i| i.id).collect()
}

fn person(s: &Staff) -> PersonRef {
    PersonRef {
        id: s.id,
        name: s.name.clone(),
    }
}

/// A new customer writes in; returns `(issue_id, customer_id)`.
async fn new_issue(s: &Store, from: &str, body: &str) -> (i64, i64) {
    let (_, issue_id, rule, opened) = stored(
        s.ingest(&sms(from, &sid(), body), &ingest_options())
            .await
            .unwrap(),
    );
    assert_eq!(
        (rule, opened),
        (ThreadingRule::New, true),
        "{body:?} opens an issue"
    );
    let issue = s.issue(issue_id, 0).await.unwrap();
    (issue_id, issue.customer_id)
}

/// The whole timeline of an issue, oldest first.
async fn timeline(s: &Store, issue_id: i64) -> Vec<MessageView> {
    let (page, cursor) = s.messages(issue_id, None, 1000).await.unwrap();
    assert_eq!(cursor, None);
    page
}

/// The events of an issue's timeline: type and acting staff member.
async fn events(s: &Store, issue_id: i64) -> Vec<(EventType, Option<i64>)> {
    timeline(s, issue_id)
        .await
        .into_iter()
        .filter(|m| m.kind == MessageKind::Event)
        .map(|m| {
            let event = m.event.expect("an event message carries its event");
            (event.kind, event.actor.map(|a| a.id))
        })
        .collect()
}

async fn count_events(s: &Store, issue_id: i64, kind: EventType) -> usize {
    events(s, issue_id)
        .await
        .iter()
        .filter(|(k, _)| *k == kind)
        .count()
}

// ------------------------------------------------------------ chapters

/// Staff: create, list, update, unique email, last admin; API tokens.
async fn staff_and_tokens(ts: &TestStore) -> Cast {
    let s: &Store = ts;
    let admin = s
        .create_staff(" Ada@Example.COM ", " Ada Admin ", Role::Admin)
        .await
        .unwrap();
    assert_eq!(
        admin.email, "ada@example.com",
        "email is stored lower-cased"
    );
    assert_eq!(admin.name, "Ada Admin");
    assert_eq!(admin.role, Role::Admin);
    assert!(admin.active);
    let ann = s
        .create_staff("ann@example.com", "Ann Agent", Role::Agent)
        .await
        .unwrap();
    let bob = s
        .create_staff("bob@example.com", "Bob Agent", Role::Agent)
        .await
        .unwrap();
    assert_eq!(ann.role, Role::Agent);
    assert_eq!(
        s.list_staff().await.unwrap(),
        vec![admin.clone(), ann.clone(), bob.clone()]
    );
    assert_eq!(s.count_staff().await.unwrap(), 3);
    assert_eq!(s.get_staff(bob.id).await.unwrap(), bob);
    assert_eq!(
        s.staff_by_email("ANN@example.com ").await.unwrap(),
        Some(ann.clone())
    );
    assert_eq!(s.staff_by_email("nobody@example.com").await.unwrap(), None);
    not_found(s.get_staff(999_999).await);

    // The same address in another case is the same address.
    refused(
        s.create_staff("ANN@EXAMPLE.COM", "Another Ann", Role::Agent)
            .await,
        409,
        "email_taken",
    );
    assert_eq!(s.count_staff().await.unwrap(), 3);

    let ann = s
        .update_staff(ann.id, None, None, Some("Ann Archer"))
        .await
        .unwrap();
    assert_eq!(ann.name, "Ann Archer");
    assert_eq!((ann.role, ann.active), (Role::Agent, true));
    assert_eq!(s.get_staff(ann.id).await.unwrap(), ann);
    not_found(s.update_staff(999_999, Some(false), None, None).await);

    // The last active admin can be neither deactivated nor demoted, and a
    // refused update changes nothing.
    refused(
        s.update_staff(admin.id, Some(false), None, None).await,
        409,
        "last_admin",
    );
    refused(
        s.update_staff(admin.id, None, Some(Role::Agent), Some("Renamed"))
            .await,
        409,
        "last_admin",
    );
    assert_eq!(s.get_staff(admin.id).await.unwrap(), admin);
    // With a second admin, one of them may step down; then the other is last.
    let bea = s
        .create_staff("bea@example.com", "Bea Boss", Role::Agent)
        .await
        .unwrap();
    let bea = s
        .update_staff(bea.id, None, Some(Role::Admin), None)
        .await
        .unwrap();
    assert_eq!(bea.role, Role::Admin);
    let bea = s
        .update_staff(bea.id, Some(false), None, None)
        .await
        .unwrap();
    assert!(!bea.active);
    refused(
        s.update_staff(admin.id, Some(false), None, None).await,
        409,
        "last_admin",
    );

    // Tokens: shown once, stored as a hash, only for active staff.
    let token = s.create_token(ann.id).await.unwrap();
    let second = s.create_token(ann.id).await.unwrap();
    assert!(token.starts_with("sb_") && token.len() >= 40, "{token}");
    assert_ne!(token, second);
    assert_eq!(s.authenticate(&token).await.unwrap(), Some(ann.clone()));
    assert_eq!(s.authenticate(&second).await.unwrap(), Some(ann.clone()));
    assert_eq!(s.authenticate("sb_wrong").await.unwrap(), None);
    assert_eq!(
        s.authenticate(&token[..token.len() - 1]).await.unwrap(),
        None
    );
    assert_eq!(s.authenticate(&format!("{token}x")).await.unwrap(), None);
    assert_eq!(s.authenticate("").await.unwrap(), None);
    let stored_forms = ts
        .strings("SELECT token_hash FROM api_tokens ORDER BY id")
        .await;
    assert_eq!(stored_forms.len(), 2);
    for (form, issued) in stored_forms.iter().zip([&token, &second]) {
        assert!(
            !form.contains(&issued[3..]),
            "the token itself is not stored"
        );
        assert_eq!(form, &switchboard::token::hash(issued));
    }
    not_found(s.create_token(999_999).await);

    let dan = s
        .create_staff("dan@example.com", "Dan Departed", Role::Agent)
        .await
        .unwrap();
    let dans = s.create_token(dan.id).await.unwrap();
    assert_eq!(s.authenticate(&dans).await.unwrap(), Some(dan.clone()));
    let dan = s
        .update_staff(dan.id, Some(false), None, None)
        .await
        .unwrap();
    assert_eq!(
        s.authenticate(&dans).await.unwrap(),
        None,
        "deactivated staff cannot authenticate"
    );
    assert_eq!(s.authenticate(&token).await.unwrap(), Some(ann.clone()));

    Cast {
        admin,
        ann,
        bob,
        dan,
    }
}

/// SPEC §3.1 and §3.7: dedupe, identify, thread, reopen, acknowledgements.
async fn threading(ts: &TestStore, cast: &Cast) {
    let s: &Store = ts;
    let opts = ingest_options();
    let ann = &cast.ann;

    // A new number opens a new unassigned issue.
    let jane = phone(1);
    let (m1, i1, rule, opened) = stored(
        s.ingest(
            &sms(&jane, "SMthread1", "  My order\n never   arrived "),
            &opts,
        )
        .await
        .unwrap(),
    );
    assert_eq!((rule, opened), (ThreadingRule::New, true));
    let issue = s.issue(i1, ann.id).await.unwrap();
    assert_eq!(issue.status, IssueStatus::Unassigned);
    assert_eq!(issue.channel, Channel::Sms);
    assert_eq!(issue.subject, "My order never arrived");
    assert_eq!(issue.customer.phone.as_deref(), Some(jane.as_str()));
    assert_eq!(issue.customer.email, None);
    assert_eq!(
        issue.customer.name, jane,
        "an SMS sender is named by number"
    );
    assert_eq!(issue.customer.id, issue.customer_id);
    assert_eq!((issue.assignee_id, &issue.assignee), (None, &None));
    assert_eq!(issue.previous_issue_id, None);
    assert_eq!((issue.resolution, issue.closed_at), (None, None));
    assert!(!issue.ack_only);
    assert_eq!(issue.message_count, 1);
    assert_eq!(
        issue.last_message_preview.as_deref(),
        Some("My order never arrived")
    );
    assert!(issue.unread);
    let jane_id = issue.customer_id;

    // The same number written another way is the same customer and issue.
    let (m2, i, rule, opened) = stored(
        s.ingest(&sms("(555) 000-0001", "SMthread2", "Any news?"), &opts)
            .await
            .unwrap(),
    );
    assert_eq!((i, rule, opened), (i1, ThreadingRule::Customer, false));
    assert_ne!(m1, m2);

    // A provider retry is acknowledged, not stored again.
    let again = s
        .ingest(&sms(&jane, "SMthread2", "Any news?"), &opts)
        .await
        .unwrap();
    assert_eq!(
        again,
        IngestOutcome::Duplicate {
            message_id: m2,
            issue_id: i1
        }
    );
    assert_eq!(
        ts.count("SELECT COUNT(*) FROM messages WHERE external_id = 'SMthread2'")
            .await,
        1
    );
    assert_eq!(s.issue(i1, ann.id).await.unwrap().message_count, 2);
    assert_eq!(
        ts.count("SELECT COUNT(*) FROM contacts WHERE value = '+15550000001'")
            .await,
        1
    );

    // Each inbound message says which rule placed it.
    let t = timeline(s, i1).await;
    assert_eq!(t.len(), 2);
    assert_eq!(
        t.iter().map(|m| m.threading_rule).collect::<Vec<_>>(),
        vec![Some(ThreadingRule::New), Some(ThreadingRule::Customer)]
    );
    assert_eq!(t[0].kind, MessageKind::Customer);
    assert_eq!(t[0].channel, Some(Channel::Sms));
    assert_eq!(
        (t[0].author.kind, t[0].author.id, t[0].author.name.as_str()),
        ("customer", Some(jane_id), jane.as_str())
    );
    assert_eq!(
        t[0].body, "  My order\n never   arrived ",
        "body kept as sent"
    );
    assert_eq!(t[1].external_id.as_deref(), Some("SMthread2"));
    assert_eq!((&t[1].delivery, &t[1].event), (&None, &None));

    // On an assigned issue, a new message changes neither status nor assignee.
    s.transition(i1, ann, IssueAction::Take).await.unwrap();
    let (_, i, rule, _) = stored(
        s.ingest(&sms(&jane, &sid(), "Hello?"), &opts)
            .await
            .unwrap(),
    );
    assert_eq!((i, rule), (i1, ThreadingRule::Customer));
    let issue = s.issue(i1, ann.id).await.unwrap();
    assert_eq!(
        (issue.status, issue.assignee_id),
        (IssueStatus::Assigned, Some(ann.id))
    );

    // After closing (reopen window 0: never reopen), a new issue follows it up.
    s.transition(i1, ann, IssueAction::Close).await.unwrap();
    let (_, i2, rule, opened) = stored(
        s.ingest(&sms(&jane, &sid(), "Another problem"), &opts)
            .await
            .unwrap(),
    );
    assert_eq!((rule, opened), (ThreadingRule::New, true));
    assert_ne!(i2, i1);
    let issue = s.issue(i2, ann.id).await.unwrap();
    assert_eq!(issue.previous_issue_id, Some(i1));
    assert_eq!(
        (issue.status, issue.assignee_id),
        (IssueStatus::Unassigned, None)
    );
    assert_eq!(issue.customer_id, jane_id);
    assert_eq!(
        s.issue(i1, ann.id).await.unwrap().status,
        IssueStatus::Closed
    );

    // Within the reopen window the closed issue comes back to its assignee.
    let window = IngestOptions {
        reopen_window: Duration::from_secs(3600),
        ..ingest_options()
    };
    let kim = phone(2);
    let (ik, _) = new_issue(s, &kim, "Printer jammed").await;
    s.transition(ik, ann, IssueAction::Take).await.unwrap();
    s.transition(ik, ann, IssueAction::Resolve).await.unwrap();
    let (_, i, rule, opened) = stored(
        s.ingest(&sms(&kim, &sid(), "Jammed again"), &window)
            .await
            .unwrap(),
    );
    assert_eq!((i, rule, opened), (ik, ThreadingRule::Reopened, false));
    let issue = s.issue(ik, ann.id).await.unwrap();
    assert_eq!(
        (issue.status, issue.assignee_id),
        (IssueStatus::Assigned, Some(ann.id))
    );
    assert_eq!(
        (issue.resolution, &issue.closed_by, issue.closed_at),
        (None, &None, None)
    );
    assert_eq!(
        events(s, ik).await,
        vec![
            (EventType::Taken, Some(ann.id)),
            (EventType::Resolved, Some(ann.id)),
            (EventType::Reopened, None),
        ]
    );
    // Closed longer ago than the window: a new issue instead.
    s.transition(ik, ann, IssueAction::Close).await.unwrap();
    ts.exec_at(
        "UPDATE issues SET closed_at = $1 WHERE id = $2",
        now() - chrono::Duration::hours(2),
        ik,
    )
    .await;
    let (_, ik2, rule, opened) = stored(
        s.ingest(&sms(&kim, &sid(), "Still jammed"), &window)
            .await
            .unwrap(),
    );
    assert_eq!((rule, opened), (ThreadingRule::New, true));
    assert_ne!(ik2, ik);
    assert_eq!(
        s.issue(ik2, ann.id).await.unwrap().previous_issue_id,
        Some(ik)
    );
    assert_eq!(
        s.issue(ik, ann.id).await.unwrap().status,
        IssueStatus::Closed
    );

    // An SMS subject is the first 80 characters of the body.
    let long = "x".repeat(79) + "yz and more";
    let (il, _) = new_issue(s, &phone(3), &long).await;
    let subject = s.issue(il, ann.id).await.unwrap().subject;
    assert_eq!(subject, "x".repeat(79) + "y");

    // Acknowledgement-only new issues are flagged, and resolved by the
    // system when configured.
    let (ia, _) = new_issue(s, &phone(4), "Ok, thanks! 👍").await;
    let issue = s.issue(ia, ann.id).await.unwrap();
    assert!(issue.ack_only);
    assert_eq!(
        issue.status,
        IssueStatus::Unassigned,
        "flagged, not resolved"
    );
    let (inot, _) = new_issue(s, &phone(5), "ok but where is my parcel").await;
    assert!(!s.issue(inot, ann.id).await.unwrap().ack_only);
    let auto = IngestOptions {
        auto_resolve_acks: true,
        ..ingest_options()
    };
    let (_, iauto, rule, opened) = stored(
        s.ingest(&sms(&phone(6), &sid(), "Thank you!"), &auto)
            .await
            .unwrap(),
    );
    assert_eq!((rule, opened), (ThreadingRule::New, true));
    let issue = s.issue(iauto, ann.id).await.unwrap();
    assert!(issue.ack_only);
    assert_eq!(issue.status, IssueStatus::Closed);
    assert_eq!(issue.resolution, Some(Resolution::Resolved));
    assert_eq!(issue.closed_by, None, "the system resolved it");
    assert!(issue.closed_at.is_some());
    assert_eq!(events(s, iauto).await, vec![(EventType::Resolved, None)]);
    let (_, ibusy, _, _) = stored(
        s.ingest(&sms(&phone(7), &sid(), "My screen is cracked"), &auto)
            .await
            .unwrap(),
    );
    let issue = s.issue(ibusy, ann.id).await.unwrap();
    assert_eq!(
        (issue.status, issue.ack_only),
        (IssueStatus::Unassigned, false)
    );

    // Email: display name, cleaned subject, threading by reference and by
    // the `[#N]` token, which counts only for the issue's own customer.
    let (_, ie, rule, _) = stored(
        s.ingest(
            &email(
                "Mia.Moss@Example.com",
                Some("Mia Moss"),
                "<m1@mail.example>",
                "Re: FWD: Broken widget",
                "It broke",
                &[],
            ),
            &opts,
        )
        .await
        .unwrap(),
    );
    assert_eq!(rule, ThreadingRule::New);
    let issue = s.issue(ie, ann.id).await.unwrap();
    assert_eq!(issue.subject, "Broken widget");
    assert_eq!(issue.channel, Channel::Email);
    assert_eq!(issue.customer.name, "Mia Moss");
    assert_eq!(
        issue.customer.email.as_deref(),
        Some("mia.moss@example.com")
    );
    let (_, i, rule, opened) = stored(
        s.ingest(
            &email(
                "colleague@example.com",
                None,
                "<m2@mail.example>",
                "Re: Broken widget",
                "Adding a colleague",
                &["<m1@mail.example>"],
            ),
            &opts,
        )
        .await
        .unwrap(),
    );
    assert_eq!((i, rule, opened), (ie, ThreadingRule::Reference, false));
    let (_, i, rule, _) = stored(
        s.ingest(
            &email(
                "mia.moss@example.com",
                Some("Mia Moss"),
                "<m3@mail.example>",
                &format!("Re: Broken widget [#{ie}]"),
                "Any update?",
                &[],
            ),
            &opts,
        )
        .await
        .unwrap(),
    );
    assert_eq!((i, rule), (ie, ThreadingRule::Token));
    let (_, i, rule, opened) = stored(
        s.ingest(
            &email(
                "stranger@example.net",
                None,
                "<m4@mail.example>",
                &format!("Re: [#{ie}] Broken widget"),
                "Is this yours?",
                &[],
            ),
            &opts,
        )
        .await
        .unwrap(),
    );
    assert_ne!(i, ie, "a stranger quoting [#N] does not land on the issue");
    assert_eq!((rule, opened), (ThreadingRule::New, true));
    assert_eq!(s.issue(i, ann.id).await.unwrap().subject, "Broken widget");
}

/// SPEC §3.6: STOP opts out, replies are refused, START opts back in.
async fn opt_out(ts: &TestStore, cast: &Cast) {
    let s: &Store = ts;
    let opts = ingest_options();
    let ann = &cast.ann;
    let leo = phone(10);
    let (il, leo_id) = new_issue(s, &leo, "Where is my refund?").await;
    s.transition(il, ann, IssueAction::Take).await.unwrap();
    let reply = s.reply(il, ann, "Checking now", None).await.unwrap();
    assert_eq!(reply.kind, MessageKind::Reply);
    assert_eq!(reply.channel, Some(Channel::Sms));
    assert_eq!(
        reply.delivery,
        Some(Delivery {
            status: DeliveryStatus::Queued,
            error: None
        })
    );
    assert_eq!(
        (reply.author.kind, reply.author.id),
        ("staff", Some(ann.id))
    );

    let contacts = |opted_out| {
        vec![ContactView {
            kind: ContactKind::Phone,
            value: leo.clone(),
            opted_out,
        }]
    };
    let (_, i, rule, _) = stored(s.ingest(&sms(&leo, &sid(), "Stop"), &opts).await.unwrap());
    assert_eq!((i, rule), (il, ThreadingRule::Customer));
    assert_eq!(
        s.customer(leo_id, ann.id).await.unwrap().contacts,
        contacts(true)
    );
    let last = timeline(s, il).await.pop().unwrap();
    assert_eq!(last.kind, MessageKind::Event);
    let event = last.event.unwrap();
    assert_eq!((event.kind, event.actor), (EventType::OptedOut, None));

    let count_before = s.issue(il, ann.id).await.unwrap().message_count;
    refused(
        s.reply(il, ann, "Are you there?", None).await,
        409,
        "contact_opted_out",
    );
    assert_eq!(
        s.issue(il, ann.id).await.unwrap().message_count,
        count_before,
        "a refused reply leaves nothing behind"
    );
    assert_eq!(
        ts.count(&format!(
            "SELECT COUNT(*) FROM outbox o JOIN messages m ON m.id = o.message_id WHERE m.issue_id = {il}"
        ))
        .await,
        1
    );

    stored(s.ingest(&sms(&leo, &sid(), "START"), &opts).await.unwrap());
    assert_eq!(
        s.customer(leo_id, ann.id).await.unwrap().contacts,
        contacts(false)
    );
    assert_eq!(count_events(s, il, EventType::OptedIn).await, 1);
    s.reply(il, ann, "Welcome back", None).await.unwrap();

    // "Yes" is an acknowledgement while opted in, an opt-in while opted out.
    stored(s.ingest(&sms(&leo, &sid(), "Yes"), &opts).await.unwrap());
    assert_eq!(count_events(s, il, EventType::OptedIn).await, 1);
    stored(
        s.ingest(&sms(&leo, &sid(), "unsubscribe"), &opts)
            .await
            .unwrap(),
    );
    assert_eq!(
        s.customer(leo_id, ann.id).await.unwrap().contacts,
        contacts(true)
    );
    assert_eq!(count_events(s, il, EventType::OptedOut).await, 2);
    stored(s.ingest(&sms(&leo, &sid(), "yes"), &opts).await.unwrap());
    assert_eq!(
        s.customer(leo_id, ann.id).await.unwrap().contacts,
        contacts(false)
    );
    assert_eq!(count_events(s, il, EventType::OptedIn).await, 2);
}

/// SPEC §2, rule by rule, with the event each transition records.
async fn state_machine(ts: &TestStore, cast: &Cast) {
    let s: &Store = ts;
    let Cast {
        admin,
        ann,
        bob,
        dan,
    } = cast;
    let (i, _) = new_issue(s, &phone(20), "Need a hand").await;

    // Take It: any staff; the first one wins.
    let v = s.transition(i, ann, IssueAction::Take).await.unwrap();
    assert_eq!(v.status, IssueStatus::Assigned);
    assert_eq!(
        (v.assignee_id, v.assignee),
        (Some(ann.id), Some(person(ann)))
    );
    let v = s.transition(i, ann, IssueAction::Take).await.unwrap();
    assert_eq!(
        v.assignee_id,
        Some(ann.id),
        "taking your own issue is a no-op"
    );
    let e = refused(
        s.transition(i, bob, IssueAction::Take).await,
        409,
        "already_assigned",
    );
    assert_eq!(e.issue_id, None);
    refused(
        s.transition(i, admin, IssueAction::Take).await,
        409,
        "already_assigned",
    );

    // Assign It: to active staff only.
    let v = s
        .transition(i, ann, IssueAction::Assign(bob.id))
        .await
        .unwrap();
    assert_eq!(
        (v.status, v.assignee_id),
        (IssueStatus::Assigned, Some(bob.id))
    );
    refused(
        s.transition(i, ann, IssueAction::Assign(dan.id)).await,
        422,
        "unknown_assignee",
    );
    refused(
        s.transition(i, ann, IssueAction::Assign(999_999)).await,
        422,
        "unknown_assignee",
    );
    assert_eq!(s.issue(i, ann.id).await.unwrap().assignee_id, Some(bob.id));

    // Unassign: the assignee or an admin.
    refused(
        s.transition(i, ann, IssueAction::Unassign).await,
        403,
        "forbidden",
    );
    let v = s.transition(i, bob, IssueAction::Unassign).await.unwrap();
    assert_eq!(
        (v.status, v.assignee_id, v.assignee),
        (IssueStatus::Unassigned, None, None)
    );
    s.transition(i, admin, IssueAction::Assign(bob.id))
        .await
        .unwrap();
    let v = s.transition(i, admin, IssueAction::Unassign).await.unwrap();
    assert_eq!(v.status, IssueStatus::Unassigned);

    // Close and Resolve: only the assignee of an assigned issue, admins too.
    s.transition(i, bob, IssueAction::Take).await.unwrap();
    for who in [ann, admin] {
        for action in [IssueAction::Close, IssueAction::Resolve] {
            refused(s.transition(i, who, action).await, 403, "not_assignee");
        }
    }
    let v = s.transition(i, bob, IssueAction::Close).await.unwrap();
    assert_eq!(v.status, IssueStatus::Closed);
    assert_eq!(v.resolution, Some(Resolution::Closed));
    assert_eq!(v.closed_by, Some(person(bob)));
    assert!(v.closed_at.is_some());

    // Closed: every action but reopen, and replies, answer issue_closed.
    for action in [
        IssueAction::Take,
        IssueAction::Assign(ann.id),
        IssueAction::Unassign,
        IssueAction::Close,
        IssueAction::Resolve,
    ] {
        refused(s.transition(i, admin, action).await, 409, "issue_closed");
    }
    refused(
        s.reply(i, bob, "One more thing", None).await,
        409,
        "issue_closed",
    );

    // Reopen: the closer, the previous assignee or an admin.
    refused(
        s.transition(i, ann, IssueAction::Reopen).await,
        403,
        "forbidden",
    );
    let v = s.transition(i, bob, IssueAction::Reopen).await.unwrap();
    assert_eq!(
        (v.status, v.assignee_id),
        (IssueStatus::Assigned, Some(bob.id)),
        "back to its active assignee"
    );
    assert_eq!((v.resolution, v.closed_by, v.closed_at), (None, None, None));
    refused(
        s.transition(i, admin, IssueAction::Reopen).await,
        409,
        "not_closed",
    );

    // An unassigned issue may be closed by anyone; reopened, it stays unassigned.
    s.transition(i, bob, IssueAction::Unassign).await.unwrap();
    let v = s.transition(i, ann, IssueAction::Resolve).await.unwrap();
    assert_eq!(
        (v.status, v.resolution, v.closed_by),
        (
            IssueStatus::Closed,
            Some(Resolution::Resolved),
            Some(person(ann))
        )
    );
    let v = s.transition(i, admin, IssueAction::Reopen).await.unwrap();
    assert_eq!((v.status, v.assignee_id), (IssueStatus::Unassigned, None));

    // A previous assignee who has left: reopened unassigned.
    let cy = s
        .create_staff("cy@example.com", "Cy Short", Role::Agent)
        .await
        .unwrap();
    s.transition(i, &cy, IssueAction::Take).await.unwrap();
    s.transition(i, &cy, IssueAction::Close).await.unwrap();
    s.update_staff(cy.id, Some(false), None, None)
        .await
        .unwrap();
    let v = s.transition(i, admin, IssueAction::Reopen).await.unwrap();
    assert_eq!((v.status, v.assignee_id), (IssueStatus::Unassigned, None));

    // Reopening while the customer has another open issue: 409 naming it.
    s.transition(i, ann, IssueAction::Close).await.unwrap();
    let (_, j, rule, opened) = stored(
        s.ingest(&sms(&phone(20), &sid(), "Hello again"), &ingest_options())
            .await
            .unwrap(),
    );
    assert_eq!((rule, opened), (ThreadingRule::New, true));
    let e = refused(
        s.transition(i, admin, IssueAction::Reopen).await,
        409,
        "customer_has_open_issue",
    );
    assert_eq!(e.issue_id, Some(j));
    assert_eq!(
        s.issue(i, admin.id).await.unwrap().status,
        IssueStatus::Closed
    );

    not_found(s.transition(999_999, ann, IssueAction::Take).await);

    // Every accepted change is in the timeline with its actor; no-ops and
    // refusals are not.
    assert_eq!(
        events(s, i).await,
        vec![
            (EventType::Taken, Some(ann.id)),
            (EventType::Assigned, Some(ann.id)),
            (EventType::Unassigned, Some(bob.id)),
            (EventType::Assigned, Some(admin.id)),
            (EventType::Unassigned, Some(admin.id)),
            (EventType::Taken, Some(bob.id)),
            (EventType::Closed, Some(bob.id)),
            (EventType::Reopened, Some(bob.id)),
            (EventType::Unassigned, Some(bob.id)),
            (EventType::Resolved, Some(ann.id)),
            (EventType::Reopened, Some(admin.id)),
            (EventType::Taken, Some(cy.id)),
            (EventType::Closed, Some(cy.id)),
            (EventType::Reopened, Some(admin.id)),
            (EventType::Closed, Some(ann.id)),
        ]
    );
    let assigned = timeline(s, i)
        .await
        .into_iter()
        .find(|m| m.event.as_ref().map(|e| e.kind) == Some(EventType::Assigned))
        .unwrap();
    assert_eq!(assigned.author.kind, "staff");
    assert_eq!(assigned.event.unwrap().actor, Some(person(ann)));
}

/// Private comments: the author within 5 hours, an admin at any time.
async fn comments(ts: &TestStore, cast: &Cast) {
    let s: &Store = ts;
    let Cast {
        admin, ann, bob, ..
    } = cast;
    let (i, _) = new_issue(s, &phone(30), "Comment on me").await;
    let first = timeline(s, i).await[0].id;

    let c1 = s.add_comment(i, ann, "Called the courier").await.unwrap();
    assert_eq!(c1.kind, MessageKind::Comment);
    assert_eq!(c1.issue_id, i);
    assert_eq!(
        (c1.author.kind, c1.author.id, c1.author.name.as_str()),
        ("staff", Some(ann.id), ann.name.as_str())
    );
    assert_eq!(
        (c1.channel, &c1.delivery, c1.edited_at),
        (None, &None, None)
    );

    let edited = s
        .edit_comment(c1.id, ann, "Called the courier twice")
        .await
        .unwrap();
    assert_eq!(edited.body, "Called the courier twice");
    assert!(edited.edited_at.is_some(), "shown as edited");
    assert_eq!(s.message(c1.id).await.unwrap(), edited);

    refused(
        s.edit_comment(c1.id, bob, "Mine now").await,
        403,
        "forbidden",
    );
    refused(s.delete_comment(c1.id, bob).await, 403, "forbidden");
    assert_eq!(
        s.message(c1.id).await.unwrap().body,
        "Called the courier twice"
    );
    let by_admin = s
        .edit_comment(c1.id, admin, "Courier called")
        .await
        .unwrap();
    assert_eq!(by_admin.body, "Courier called");

    // Five hours on, the author may no longer change it; an admin still may.
    ts.exec_at(
        "UPDATE messages SET created_at = $1 WHERE id = $2",
        now() - chrono::Duration::hours(5) - chrono::Duration::minutes(1),
        c1.id,
    )
    .await;
    refused(
        s.edit_comment(c1.id, ann, "Too late").await,
        403,
        "edit_window_expired",
    );
    refused(
        s.delete_comment(c1.id, ann).await,
        403,
        "edit_window_expired",
    );
    let c2 = s.add_comment(i, ann, "Second thought").await.unwrap();
    ts.exec_at(
        "UPDATE messages SET created_at = $1 WHERE id = $2",
        now() - chrono::Duration::hours(5) + chrono::Duration::minutes(1),
        c2.id,
    )
    .await;
    s.edit_comment(c2.id, ann, "Just in time").await.unwrap();
    s.edit_comment(c1.id, admin, "Old, still editable by admins")
        .await
        .unwrap();

    // Deleted comments are gone.
    s.delete_comment(c1.id, admin).await.unwrap();
    not_found(s.message(c1.id).await);
    s.delete_comment(c2.id, ann).await.unwrap();
    not_found(s.message(c2.id).await);
    assert!(
        timeline(s, i)
            .await
            .iter()
            .all(|m| m.kind != MessageKind::Comment)
    );
    not_found(s.delete_comment(c2.id, admin).await);

    // Replies cannot be unsent; customer messages are not ours to edit.
    s.transition(i, ann, IssueAction::Take).await.unwrap();
    let reply = s.reply(i, ann, "On its way", None).await.unwrap();
    refused(
        s.edit_comment(reply.id, ann, "Oops").await,
        409,
        "not_editable",
    );
    refused(s.delete_comment(reply.id, admin).await, 409, "not_editable");
    refused(
        s.edit_comment(first, admin, "Rewritten").await,
        409,
        "not_editable",
    );
    assert_eq!(s.message(reply.id).await.unwrap().body, "On its way");

    not_found(s.edit_comment(999_999, admin, "x").await);
    not_found(s.add_comment(999_999, ann, "x").await);
}

/// Read markers: `unread` is per caller and ignores the caller's own writing.
async fn reading(ts: &TestStore, cast: &Cast) {
    let s: &Store = ts;
    let Cast { ann, bob, .. } = cast;
    let reader = phone(40);
    let (i, customer) = new_issue(s, &reader, "Read me").await;
    assert!(s.issue(i, ann.id).await.unwrap().unread);
    assert!(s.issue(i, bob.id).await.unwrap().unread);

    s.mark_read(i, ann.id).await.unwrap();
    assert!(!s.issue(i, ann.id).await.unwrap().unread);
    assert!(
        s.issue(i, bob.id).await.unwrap().unread,
        "read is per staff member"
    );
    let listed = |who: i64| {
        let f = IssueFilter {
            customer: Some(customer),
            ..filter()
        };
        async move { s.list_issues(&f, who).await.unwrap().0 }
    };
    assert!(!listed(ann.id).await[0].unread);
    assert!(listed(bob.id).await[0].unread);

    stored(
        s.ingest(&sms(&reader, &sid(), "Hello?"), &ingest_options())
            .await
            .unwrap(),
    );
    assert!(
        s.issue(i, ann.id).await.unwrap().unread,
        "new customer message"
    );
    s.mark_read(i, ann.id).await.unwrap();
    assert!(!s.issue(i, ann.id).await.unwrap().unread);

    s.add_comment(i, ann, "Mine").await.unwrap();
    assert!(!s.issue(i, ann.id).await.unwrap().unread, "own comment");
    s.mark_read(i, bob.id).await.unwrap();
    s.add_comment(i, bob, "Bob's").await.unwrap();
    assert!(
        s.issue(i, ann.id).await.unwrap().unread,
        "someone else's comment"
    );
    assert!(!s.issue(i, bob.id).await.unwrap().unread);

    not_found(s.mark_read(999_999, ann.id).await);
}

/// `GET /api/issues` and friends: filters, counts, pagination, timelines,
/// View Customer.
async fn listing(ts: &TestStore, cast: &Cast) {
    let s: &Store = ts;
    let opts = ingest_options();
    let Cast { ann, bob, .. } = cast;

    let (_, iz, _, _) = stored(
        s.ingest(
            &email(
                "Zed.Zimmer@Zoo.example",
                Some("Zed Zimmer"),
                "<zed1@zoo.example>",
                "Zebra crossing broken",
                "Please fix",
                &[],
            ),
            &opts,
        )
        .await
        .unwrap(),
    );
    let (iy, _) = new_issue(s, &phone(50), "Yak wool order").await;
    s.transition(iy, ann, IssueAction::Take).await.unwrap();
    let xeno = phone(51);
    let (ix, xeno_id) = new_issue(s, &xeno, "Xylophone refund").await;
    s.transition(ix, bob, IssueAction::Take).await.unwrap();
    s.transition(ix, bob, IssueAction::Close).await.unwrap();
    let (_, ix2, _, _) = stored(
        s.ingest(&sms(&xeno, &sid(), "Xylophone refund still missing"), &opts)
            .await
            .unwrap(),
    );
    let (ipct, _) = new_issue(s, &phone(52), "Charged 100% twice").await;

    let list = |f: IssueFilter| async move { s.list_issues(&f, ann.id).await.unwrap() };

    // Without a status: open only. Counts honour every filter but status.
    let (issues, counts) = list(filter()).await;
    assert!(issues.iter().all(|i| i.status != IssueStatus::Closed));
    assert!(ids(&issues).contains(&ix2) && !ids(&issues).contains(&ix));
    assert_eq!(
        counts.unassigned,
        ts.count("SELECT COUNT(*) FROM issues WHERE status = 'unassigned'")
            .await
    );
    assert_eq!(
        counts.assigned,
        ts.count("SELECT COUNT(*) FROM issues WHERE status = 'assigned'")
            .await
    );
    assert_eq!(
        counts.closed,
        ts.count("SELECT COUNT(*) FROM issues WHERE status = 'closed'")
            .await
    );
    assert_eq!(
        issues.len() as i64,
        counts.unassigned + counts.assigned,
        "every open issue listed"
    );

    let of_xeno = |status| IssueFilter {
        customer: Some(xeno_id),
        status,
        ..filter()
    };
    for (status, expect) in [
        (None, vec![ix2]),
        (Some(StatusFilter::Open), vec![ix2]),
        (Some(StatusFilter::Is(IssueStatus::Unassigned)), vec![ix2]),
        (Some(StatusFilter::Is(IssueStatus::Assigned)), vec![]),
        (Some(StatusFilter::Is(IssueStatus::Closed)), vec![ix]),
    ] {
        let (issues, counts) = list(of_xeno(status)).await;
        assert_eq!(ids(&issues), expect, "status {status:?}");
        assert_eq!(
            (counts.unassigned, counts.assigned, counts.closed),
            (1, 0, 1),
            "counts ignore status {status:?}"
        );
    }

    // Assignee: a staff id ("me" is the caller's), or nobody.
    let (mine, counts) = list(IssueFilter {
        assignee: Some(AssigneeFilter::Staff(ann.id)),
        ..filter()
    })
    .await;
    assert!(ids(&mine).contains(&iy) && !ids(&mine).contains(&iz));
    assert!(mine.iter().all(|i| i.assignee_id == Some(ann.id)));
    assert_eq!(counts.unassigned, 0);
    assert_eq!(
        counts.assigned,
        ts.count(&format!(
            "SELECT COUNT(*) FROM issues WHERE status = 'assigned' AND assignee_id = {}",
            ann.id
        ))
        .await
    );
    let (bobs, counts) = list(IssueFilter {
        assignee: Some(AssigneeFilter::Staff(bob.id)),
        status: Some(StatusFilter::Is(IssueStatus::Closed)),
        ..filter()
    })
    .await;
    assert!(
        ids(&bobs).contains(&ix),
        "closed issues keep their assignee"
    );
    assert!(counts.closed >= 1);
    let (nobody, _) = list(IssueFilter {
        assignee: Some(AssigneeFilter::None),
        ..filter()
    })
    .await;
    assert!(ids(&nobody).contains(&iz) && !ids(&nobody).contains(&iy));
    assert!(nobody.iter().all(|i| i.assignee_id.is_none()));

    // q: subject, customer name, phone, email, `#id`; case-insensitive,
    // and LIKE's wildcards are literal.
    for (q, expect) in [
        ("ZEBRA", vec![iz]),
        ("zimmer", vec![iz]),
        ("zoo.example", vec![iz]),
        ("0000050", vec![iy]),
        (phone(50).as_str(), vec![iy]),
        (&format!("#{iy}"), vec![iy]),
        ("100%", vec![ipct]),
        ("no such thing", vec![]),
    ] {
        let (issues, _) = list(IssueFilter {
            q: Some(q.to_string()),
            ..filter()
        })
        .await;
        assert_eq!(ids(&issues), expect, "q = {q:?}");
    }
    let (issues, counts) = list(IssueFilter {
        q: Some("xylophone".into()),
        ..filter()
    })
    .await;
    assert_eq!(ids(&issues), vec![ix2]);
    assert_eq!(
        (counts.unassigned, counts.assigned, counts.closed),
        (1, 0, 1)
    );

    // List items carry the fields of SPEC §4.1.
    let (issues, _) = list(IssueFilter {
        q: Some(format!("#{iy}")),
        ..filter()
    })
    .await;
    let yak = &issues[0];
    assert_eq!(yak.assignee, Some(person(ann)));
    assert_eq!(yak.customer.phone.as_deref(), Some(phone(50).as_str()));
    assert_eq!(yak.message_count, 1);
    assert_eq!(yak.last_message_preview.as_deref(), Some("Yak wool order"));
    assert_eq!(
        yak,
        &s.issue(iy, ann.id).await.unwrap(),
        "list item = detail"
    );

    // Cursor pagination through 45 issues, newest activity first. Eleven of
    // them share one activity time across the first page boundary, so a
    // cursor on time alone would lose some.
    let mut created = Vec::new();
    for n in 0..45 {
        let (i, _) = new_issue(s, &phone(100 + n), &format!("Pagination probe {n:02}")).await;
        created.push(i);
    }
    let tied: Vec<String> = created[15..25].iter().map(|i| i.to_string()).collect();
    ts.exec(&format!(
        "UPDATE issues SET last_message_at = (SELECT last_message_at FROM issues WHERE id = {})
         WHERE id IN ({})",
        created[25],
        tied.join(", ")
    ))
    .await;
    let probe = |cursor| IssueFilter {
        q: Some("pagination probe".into()),
        limit: 20,
        cursor,
        ..IssueFilter::default()
    };
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut sizes = Vec::new();
    loop {
        let (page, counts) = list(probe(cursor)).await;
        assert_eq!(
            (counts.unassigned, counts.assigned, counts.closed),
            (45, 0, 0)
        );
        sizes.push(page.len());
        seen.extend(ids(&page));
        if page.len() < 20 {
            break;
        }
        let last = page.last().unwrap();
        cursor = Some((last.last_message_at, last.id));
        assert!(sizes.len() < 5, "pagination does not end");
    }
    assert_eq!(sizes, vec![20, 20, 5]);
    let newest_first: Vec<i64> = created.iter().rev().copied().collect();
    assert_eq!(seen, newest_first, "no duplicates, no gaps, newest first");

    // Activity, not age, orders the list.
    let (_, i, _, _) = stored(
        s.ingest(
            &sms(&phone(100), &sid(), "Pagination probe 00, follow-up"),
            &opts,
        )
        .await
        .unwrap(),
    );
    assert_eq!(i, created[0]);
    let (page, _) = list(probe(None)).await;
    assert_eq!(page[0].id, created[0]);
    assert_eq!(page[0].message_count, 2);
    assert_eq!(
        page[0].last_message_preview.as_deref(),
        Some("Pagination probe 00, follow-up")
    );
    assert_eq!(page[1].id, created[44]);

    // Timeline pages: newest page first, each oldest first, `before` older.
    let long = created[1];
    for n in 1..25 {
        stored(
            s.ingest(&sms(&phone(101), &sid(), &format!("more {n:02}")), &opts)
                .await
                .unwrap(),
        );
    }
    let all: Vec<String> = std::iter::once("Pagination probe 01".to_string())
        .chain((1..25).map(|n| format!("more {n:02}")))
        .collect();
    let (p1, c1) = s.messages(long, None, 10).await.unwrap();
    assert_eq!(p1.len(), 10);
    assert_eq!(c1, Some(p1[0].id));
    let (p2, c2) = s.messages(long, c1, 10).await.unwrap();
    assert_eq!(c2, Some(p2[0].id));
    let (p3, c3) = s.messages(long, c2, 10).await.unwrap();
    assert_eq!((p3.len(), c3), (5, None));
    let bodies: Vec<String> = p3
        .iter()
        .chain(&p2)
        .chain(&p1)
        .map(|m| m.body.clone())
        .collect();
    assert_eq!(bodies, all);
    assert!(p3.iter().chain(&p2).chain(&p1).all(|m| m.issue_id == long));
    let (whole, cursor) = s.messages(long, None, 25).await.unwrap();
    assert_eq!(
        (whole.len(), cursor),
        (25, None),
        "no cursor when nothing is older"
    );
    let (_, cursor) = s.messages(long, None, 24).await.unwrap();
    assert!(cursor.is_some());
    not_found(s.messages(999_999, None, 10).await);

    // View Customer: contacts and every issue, newest activity first.
    let cv = s.customer(xeno_id, ann.id).await.unwrap();
    assert_eq!((cv.id, cv.name.as_str()), (xeno_id, xeno.as_str()));
    assert_eq!(
        cv.contacts,
        vec![ContactView {
            kind: ContactKind::Phone,
            value: xeno.clone(),
            opted_out: false
        }]
    );
    assert_eq!(ids(&cv.issues), vec![ix2, ix]);
    assert_eq!(
        cv.issues.iter().map(|i| i.status).collect::<Vec<_>>(),
        vec![IssueStatus::Unassigned, IssueStatus::Closed]
    );
    let zed = s.issue(iz, ann.id).await.unwrap().customer_id;
    let cv = s.customer(zed, ann.id).await.unwrap();
    assert_eq!(cv.name, "Zed Zimmer");
    assert_eq!(
        cv.contacts,
        vec![ContactView {
            kind: ContactKind::Email,
            value: "zed.zimmer@zoo.example".into(),
            opted_out: false
        }]
    );
    not_found(s.customer(999_999, ann.id).await);
}

/// "New Ticket": a staff-initiated issue, assigned to the caller, with its
/// first message queued.
async fn new_ticket(ts: &TestStore, cast: &Cast) {
    let s: &Store = ts;
    let Cast { ann, bob, .. } = cast;
    let depth = s.outbox_depth().await.unwrap();
    let to = Contact::Phone(Phone::parse("+1 555 000 0200", "US").unwrap());
    let ask = |contact: Option<Contact>,
               customer_id: Option<i64>,
               subject: Option<&str>,
               body: &str| NewIssue {
        customer_id,
        contact,
        subject: subject.map(String::from),
        body: body.to_string(),
    };

    let v = s
        .create_issue(
            ann,
            &ask(
                Some(to.clone()),
                None,
                Some("  Your refund "),
                "Hi! About your refund",
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        (v.status, v.assignee_id, v.channel),
        (IssueStatus::Assigned, Some(ann.id), Channel::Sms)
    );
    assert_eq!(v.subject, "Your refund");
    assert_eq!(v.customer.phone.as_deref(), Some(phone(200).as_str()));
    assert_eq!(v.message_count, 1);
    let t = timeline(s, v.id).await;
    assert_eq!(t.len(), 1);
    assert_eq!(
        (t[0].kind, t[0].author.id),
        (MessageKind::Reply, Some(ann.id))
    );
    assert_eq!(t[0].body, "Hi! About your refund");
    assert_eq!(
        t[0].delivery.as_ref().map(|d| d.status),
        Some(DeliveryStatus::Queued)
    );
    assert_eq!(
        s.outbox_depth().await.unwrap(),
        depth + 1,
        "first message queued"
    );

    // One open issue per customer: reply there instead.
    let e = refused(
        s.create_issue(bob, &ask(Some(to.clone()), None, None, "Me too"))
            .await,
        409,
        "customer_has_open_issue",
    );
    assert_eq!(e.issue_id, Some(v.id));
    let e = refused(
        s.create_issue(bob, &ask(None, Some(v.customer_id), None, "Me too"))
            .await,
        409,
        "customer_has_open_issue",
    );
    assert_eq!(e.issue_id, Some(v.id));
    assert_eq!(s.outbox_depth().await.unwrap(), depth + 1);

    // By customer id, over their contact's channel; no subject: from the body.
    s.transition(v.id, ann, IssueAction::Close).await.unwrap();
    let v2 = s
        .create_issue(
            bob,
            &ask(
                None,
                Some(v.customer_id),
                None,
                "Following up on your refund",
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        (v2.status, v2.assignee_id, v2.channel, v2.customer_id),
        (
            IssueStatus::Assigned,
            Some(bob.id),
            Channel::Sms,
            v.customer_id
        )
    );
    assert_eq!(v2.subject, "Following up on your refund");

    let mail = Contact::Email(EmailAddress::parse("New.Customer@Example.org").unwrap());
    let v3 = s
        .create_issue(ann, &ask(Some(mail), None, Some("Welcome"), "Hello there"))
        .await
        .unwrap();
    assert_eq!(v3.channel, Channel::Email);
    assert_eq!(
        v3.customer.email.as_deref(),
        Some("new.customer@example.org")
    );

    refused(
        s.create_issue(ann, &ask(None, Some(999_999), None, "Hi"))
            .await,
        422,
        "unknown_customer",
    );
    refused(
        s.create_issue(ann, &ask(None, None, None, "Hi")).await,
        422,
        "missing_customer",
    );

    // An opted-out number is refused, and nothing is left behind.
    let quiet = phone(210);
    let (iq, quiet_id) = new_issue(s, &quiet, "STOP").await;
    s.transition(iq, ann, IssueAction::Close).await.unwrap();
    let contact = Contact::Phone(Phone::parse(&quiet, "US").unwrap());
    refused(
        s.create_issue(ann, &ask(Some(contact), None, None, "Hello?"))
            .await,
        409,
        "contact_opted_out",
    );
    assert_eq!(
        ids(&s.customer(quiet_id, ann.id).await.unwrap().issues),
        vec![iq]
    );
}

/// The outbox: claim once under a lease, retry, finish; delivery reports
/// only move forward.
async fn outbox_and_delivery(ts: &TestStore, cast: &Cast) {
    let s: &Store = ts;
    let ann = &cast.ann;
    let lease = Duration::from_secs(60);

    // Whatever earlier chapters queued goes out first.
    for _ in 0..100 {
        let Some(job) = s.claim_outbox(lease).await.unwrap() else {
            break;
        };
        s.outbox_sent(&job, None, DeliveryStatus::Sent)
            .await
            .unwrap();
    }
    assert_eq!(s.outbox_depth().await.unwrap(), 0);
    assert!(s.claim_outbox(lease).await.unwrap().is_none());

    let to = phone(300);
    let (i, _) = new_issue(s, &to, "Send me something").await;
    s.transition(i, ann, IssueAction::Take).await.unwrap();
    let delivery = |m: MessageView| m.delivery.expect("a reply has a delivery");

    // Claimed once; a second claim finds nothing while the lease holds.
    let r1 = s.reply(i, ann, "First reply", None).await.unwrap();
    assert_eq!(s.outbox_depth().await.unwrap(), 1);
    let job = s
        .claim_outbox(lease)
        .await
        .unwrap()
        .expect("the reply is due");
    assert_eq!(
        (job.message_id, job.issue_id, job.channel, job.kind()),
        (r1.id, i, Channel::Sms, "sms")
    );
    assert_eq!(
        (job.to.as_str(), job.body.as_str(), job.attempts),
        (to.as_str(), "First reply", 1)
    );
    assert_eq!(
        delivery(s.message(r1.id).await.unwrap()).status,
        DeliveryStatus::Sending
    );
    assert!(s.claim_outbox(lease).await.unwrap().is_none(), "leased");

    // A temporary failure: due again at the time given, not before.
    s.outbox_retry(&job, now() - chrono::Duration::seconds(1), "timeout")
        .await
        .unwrap();
    let again = s.claim_outbox(lease).await.unwrap().expect("due again");
    assert_eq!((again.id, again.attempts), (job.id, 2));
    s.outbox_retry(&again, now() + chrono::Duration::hours(1), "timeout")
        .await
        .unwrap();
    assert!(
        s.claim_outbox(lease).await.unwrap().is_none(),
        "not due yet"
    );
    assert_eq!(s.outbox_depth().await.unwrap(), 1);

    // A worker that died holding a lease: the item is claimed again after it.
    let r2 = s.reply(i, ann, "Second reply", None).await.unwrap();
    let crashed = s.claim_outbox(Duration::ZERO).await.unwrap().unwrap();
    assert_eq!(crashed.message_id, r2.id);
    let job2 = s.claim_outbox(lease).await.unwrap().expect("lease expired");
    assert_eq!((job2.id, job2.attempts), (crashed.id, 2));

    // Sent, then reported delivered; late reports never move it back.
    s.outbox_sent(&job2, Some("SMout2"), DeliveryStatus::Sent)
        .await
        .unwrap();
    let m = s.message(r2.id).await.unwrap();
    assert_eq!(m.external_id.as_deref(), Some("SMout2"));
    assert_eq!(
        delivery(m),
        Delivery {
            status: DeliveryStatus::Sent,
            error: None
        }
    );
    assert_eq!(s.outbox_depth().await.unwrap(), 1);
    assert!(
        s.claim_outbox(lease).await.unwrap().is_none(),
        "done is done"
    );
    assert!(
        s.delivery_report(Channel::Sms, "SMout2", DeliveryStatus::Delivered, None)
            .await
            .unwrap()
    );
    for late in [
        DeliveryStatus::Sent,
        DeliveryStatus::Sending,
        DeliveryStatus::Failed,
    ] {
        s.delivery_report(Channel::Sms, "SMout2", late, Some(("30003", "late")))
            .await
            .unwrap();
        assert_eq!(
            delivery(s.message(r2.id).await.unwrap()),
            Delivery {
                status: DeliveryStatus::Delivered,
                error: None
            },
            "{late:?} after delivered"
        );
    }
    assert!(
        !s.delivery_report(Channel::Sms, "SMnobody", DeliveryStatus::Delivered, None)
            .await
            .unwrap()
    );
    assert!(
        !s.delivery_report(Channel::Email, "SMout2", DeliveryStatus::Delivered, None)
            .await
            .unwrap(),
        "provider ids are per channel"
    );

    // Failed later, with the provider's code and text.
    let r3 = s.reply(i, ann, "Third reply", None).await.unwrap();
    let job3 = s.claim_outbox(lease).await.unwrap().unwrap();
    assert_eq!(job3.message_id, r3.id);
    s.outbox_sent(&job3, Some("SMout3"), DeliveryStatus::Sent)
        .await
        .unwrap();
    s.delivery_report(
        Channel::Sms,
        "SMout3",
        DeliveryStatus::Failed,
        Some(("30003", "Unreachable destination handset")),
    )
    .await
    .unwrap();
    s.delivery_report(Channel::Sms, "SMout3", DeliveryStatus::Delivered, None)
        .await
        .unwrap();
    let failed = Delivery {
        status: DeliveryStatus::Failed,
        error: Some(DeliveryError {
            code: "30003".into(),
            message: "Unreachable destination handset".into(),
        }),
    };
    assert_eq!(delivery(s.message(r3.id).await.unwrap()), failed);

    // Failed at send time: shown as failed, never claimed again.
    let r4 = s.reply(i, ann, "Fourth reply", None).await.unwrap();
    let job4 = s.claim_outbox(lease).await.unwrap().unwrap();
    assert_eq!(job4.message_id, r4.id);
    s.outbox_failed(&job4, "21211", "Invalid 'To' Phone Number")
        .await
        .unwrap();
    assert_eq!(
        delivery(s.message(r4.id).await.unwrap()),
        Delivery {
            status: DeliveryStatus::Failed,
            error: Some(DeliveryError {
                code: "21211".into(),
                message: "Invalid 'To' Phone Number".into()
            })
        }
    );
    assert!(s.claim_outbox(lease).await.unwrap().is_none());
    assert_eq!(s.outbox_depth().await.unwrap(), 1, "only the retry waits");
    assert_eq!(
        delivery(s.message(r1.id).await.unwrap()).status,
        DeliveryStatus::Sending,
        "the retried reply is still on its way"
    );
}

/// The rejected-inbound log, newest first.
async fn rejected_log(ts: &TestStore) {
    let s: &Store = ts;
    assert!(s.list_rejected(None, 10).await.unwrap().is_empty());
    let hook_detail = serde_json::json!({"path": "/webhooks/twilio/sms", "from": "+15550000001"});
    let hook = s
        .record_rejected("webhook", "bad_signature", &hook_detail)
        .await
        .unwrap();
    let mail_detail = serde_json::json!({"mailbox": "support", "uid": 42, "size": 30_000_000});
    let mail = s
        .record_rejected("mail", "too_large", &mail_detail)
        .await
        .unwrap();
    assert!(mail > hook);

    let all = s.list_rejected(None, 10).await.unwrap();
    assert_eq!(
        all.iter()
            .map(|r| (r.id, r.kind.as_str(), r.reason.as_str(), &r.detail))
            .collect::<Vec<_>>(),
        vec![
            (mail, "mail", "too_large", &mail_detail),
            (hook, "webhook", "bad_signature", &hook_detail),
        ]
    );
    assert!(all[0].received_at >= all[1].received_at);
    assert!((now() - all[0].received_at).num_seconds().abs() < 60);
    assert_eq!(
        s.list_rejected(Some(mail), 10).await.unwrap()[0].id,
        hook,
        "before pages back"
    );
    assert_eq!(s.list_rejected(Some(mail), 10).await.unwrap().len(), 1);
    assert_eq!(s.list_rejected(None, 1).await.unwrap().len(), 1);
    assert!(
        s.record_rejected("other", "x", &serde_json::Value::Null)
            .await
            .is_err(),
        "only mail and webhook"
    );
}

// ------------------------------------------------------------ races

/// Runs `n` copies of a store call at once and collects the results. A
/// barrier releases them together, so they really overlap instead of
/// finishing one by one as the tasks happen to be scheduled.
async fn at_once<T, F, Fut>(n: usize, f: F) -> Vec<Result<T, StoreError>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
{
    let start = Arc::new(Barrier::new(n));
    join_all((0..n).map(|k| {
        let start = start.clone();
        let call = f(k);
        tokio::spawn(async move {
            start.wait().await;
            call.await
        })
    }))
    .await
    .into_iter()
    .map(|joined| joined.expect("task panicked"))
    .collect()
}

/// SPEC §2 and §3.1 under contention: the database decides, exactly once.
async fn races(backend: Backend) {
    let ts = test_store_with(backend, 10).await;
    let s = ts.store.clone();
    // Open the pool's connections first: otherwise the first calls finish
    // while the later ones are still connecting, and nothing overlaps.
    for r in at_once(20, |_| {
        let s = s.clone();
        async move { s.ping().await }
    })
    .await
    {
        r.unwrap();
    }

    // 50 first messages from one new number: one customer, one contact,
    // one issue, fifty messages.
    let burst = phone(900);
    let outcomes = at_once(50, |k| {
        let s = s.clone();
        let m = sms(&burst, &format!("SMburst{k:02}"), &format!("burst {k}"));
        async move { s.ingest(&m, &ingest_options()).await }
    })
    .await;
    let outcomes: Vec<_> = outcomes.into_iter().map(|o| stored(o.unwrap())).collect();
    let issues: HashSet<i64> = outcomes.iter().map(|o| o.1).collect();
    assert_eq!(issues.len(), 1, "one issue");
    let issue = *issues.iter().next().unwrap();
    assert_eq!(outcomes.iter().filter(|o| o.3).count(), 1, "opened once");
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| o.2 == ThreadingRule::Customer)
            .count(),
        49
    );
    assert_eq!(ts.count("SELECT COUNT(*) FROM customers").await, 1);
    assert_eq!(ts.count("SELECT COUNT(*) FROM contacts").await, 1);
    assert_eq!(ts.count("SELECT COUNT(*) FROM issues").await, 1);
    assert_eq!(ts.count("SELECT COUNT(*) FROM messages").await, 50);
    assert_eq!(s.issue(issue, 0).await.unwrap().message_count, 50);

    // Ten staff press Take It at once: one wins, nine hear already_assigned.
    let mut staff = Vec::new();
    for k in 0..10 {
        let st = s
            .create_staff(
                &format!("agent{k}@example.com"),
                &format!("Agent {k}"),
                Role::Agent,
            )
            .await
            .unwrap();
        staff.push(st);
    }
    let results = at_once(10, |k| {
        let s = s.clone();
        let who = staff[k].clone();
        async move { s.transition(issue, &who, IssueAction::Take).await }
    })
    .await;
    let winners: Vec<usize> = (0..10).filter(|&k| results[k].is_ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one Take wins: {results:?}");
    let winner = &staff[winners[0]];
    for (k, r) in results.into_iter().enumerate() {
        if k != winners[0] {
            refused(r, 409, "already_assigned");
        }
    }
    assert_eq!(
        s.issue(issue, 0).await.unwrap().assignee_id,
        Some(winner.id)
    );
    assert_eq!(
        events(&s, issue).await,
        vec![(EventType::Taken, Some(winner.id))]
    );

    // Twenty deliveries of one MessageSid from a new number: stored once.
    let retried = phone(901);
    let outcomes = at_once(20, |_| {
        let s = s.clone();
        let m = sms(&retried, "SMretry", "Did you get this?");
        async move { s.ingest(&m, &ingest_options()).await }
    })
    .await;
    let mut stored_ids = Vec::new();
    let mut duplicates = Vec::new();
    for o in outcomes {
        match o.unwrap() {
            IngestOutcome::Stored { message_id, .. } => stored_ids.push(message_id),
            IngestOutcome::Duplicate { message_id, .. } => duplicates.push(message_id),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(stored_ids.len(), 1, "stored once");
    assert_eq!(duplicates, vec![stored_ids[0]; 19]);
    assert_eq!(
        ts.count("SELECT COUNT(*) FROM messages WHERE external_id = 'SMretry'")
            .await,
        1
    );
    assert_eq!(ts.count("SELECT COUNT(*) FROM customers").await, 2);
    assert_eq!(ts.count("SELECT COUNT(*) FROM contacts").await, 2);
    assert_eq!(ts.count("SELECT COUNT(*) FROM issues").await, 2);

    // The same from a known customer, whose race is on the message index.
    let outcomes = at_once(20, |_| {
        let s = s.clone();
        let m = sms(&burst, "SMretry-known", "Again?");
        async move { s.ingest(&m, &ingest_options()).await }
    })
    .await;
    let stored_count = outcomes
        .into_iter()
        .filter(|o| matches!(o.as_ref().unwrap(), IngestOutcome::Stored { .. }))
        .count();
    assert_eq!(stored_count, 1);
    assert_eq!(s.issue(issue, 0).await.unwrap().message_count, 51);

    // A closed issue and a burst of new messages: exactly one follow-up.
    s.transition(issue, winner, IssueAction::Close)
        .await
        .unwrap();
    let outcomes = at_once(20, |k| {
        let s = s.clone();
        let m = sms(&burst, &format!("SMafter{k:02}"), "Me again");
        async move { s.ingest(&m, &ingest_options()).await }
    })
    .await;
    let outcomes: Vec<_> = outcomes.into_iter().map(|o| stored(o.unwrap())).collect();
    let follow_ups: HashSet<i64> = outcomes.iter().map(|o| o.1).collect();
    assert_eq!(follow_ups.len(), 1);
    let follow_up = *follow_ups.iter().next().unwrap();
    assert_ne!(follow_up, issue);
    assert_eq!(outcomes.iter().filter(|o| o.3).count(), 1);
    assert_eq!(
        s.issue(follow_up, 0).await.unwrap().previous_issue_id,
        Some(issue)
    );
    assert_eq!(
        ts.count("SELECT COUNT(*) FROM issues WHERE status <> 'closed'")
            .await,
        2
    );

    // Five queued replies, ten workers claiming at once: each claimed once.
    let mut replies = HashSet::new();
    for k in 0..5 {
        let r = s
            .reply(follow_up, winner, &format!("reply {k}"), None)
            .await
            .unwrap();
        replies.insert(r.id);
    }
    let claims = at_once(10, |_| {
        let s = s.clone();
        async move { s.claim_outbox(Duration::from_secs(60)).await }
    })
    .await;
    let claimed: Vec<i64> = claims
        .into_iter()
        .filter_map(|c| c.unwrap())
        .map(|job| job.message_id)
        .collect();
    assert_eq!(
        claimed.len(),
        5,
        "each reply claimed, none twice: {claimed:?}"
    );
    assert_eq!(claimed.iter().copied().collect::<HashSet<_>>(), replies);

    // Five admins stepping down at once: one must stay.
    let mut admins = Vec::new();
    for k in 0..5 {
        let a = s
            .create_staff(
                &format!("admin{k}@example.com"),
                &format!("Admin {k}"),
                Role::Admin,
            )
            .await
            .unwrap();
        admins.push(a.id);
    }
    let results = at_once(5, |k| {
        let s = s.clone();
        let id = admins[k];
        async move { s.update_staff(id, Some(false), None, None).await }
    })
    .await;
    let refusals: Vec<_> = results.into_iter().filter(|r| r.is_err()).collect();
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    refused(refusals.into_iter().next().unwrap(), 409, "last_admin");
    assert_eq!(
        ts.count("SELECT COUNT(*) FROM staff WHERE role = 'admin' AND active")
            .await,
        1
    );

    ts.cleanup().await;
}

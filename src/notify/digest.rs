//! The digest email (SPEC §6): once per `digest.schedule` tick, each active
//! staff member gets one plain-text email listing the open issues assigned
//! to them and the unassigned ones everybody may take.
//!
//! Composing is a pure function of the open issues, so it is tested here
//! without SMTP; the job (`schedule`) queues one outbox item per person in
//! one transaction and the outbox worker sends them with retry, so a digest
//! survives an SMTP outage like any other mail. People with nothing open
//! and nothing unassigned get no email: an empty digest is noise.

use chrono::{DateTime, Utc};

use crate::store::{DigestIssue, Staff};

/// Issues listed per section; the rest are counted with a link.
pub const MAX_LISTED: usize = 50;

/// One person's digest, ready for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub staff_id: i64,
    pub to: String,
    pub subject: String,
    pub body: String,
    pub unsubscribe: String,
}

/// The digest for `staff`, or `None` when there is nothing to tell them.
pub fn compose(
    staff: &Staff,
    open: &[DigestIssue],
    public_url: &str,
    now: DateTime<Utc>,
) -> Option<Digest> {
    let base = public_url.trim_end_matches('/');
    let mine: Vec<&DigestIssue> = open
        .iter()
        .filter(|i| i.assignee_id == Some(staff.id))
        .collect();
    let unassigned: Vec<&DigestIssue> = open.iter().filter(|i| i.assignee_id.is_none()).collect();
    if mine.is_empty() && unassigned.is_empty() {
        return None;
    }
    let subject = format!(
        "Switchboard digest: {} assigned to you, {} unassigned",
        mine.len(),
        unassigned.len()
    );
    let mut body = format!("Hello {},\n\n", staff.name);
    section(
        &mut body,
        "Assigned to you",
        &mine,
        &format!("{base}/issues?assignee=me"),
        base,
        now,
    );
    section(
        &mut body,
        "Unassigned",
        &unassigned,
        &format!("{base}/issues?status=unassigned"),
        base,
        now,
    );
    body.push_str(&format!(
        "Change what you are sent: {base}/api/me/preferences\n"
    ));
    Some(Digest {
        staff_id: staff.id,
        to: staff.email.clone(),
        subject,
        body,
        unsubscribe: format!("{base}/api/me/preferences"),
    })
}

fn section(
    out: &mut String,
    title: &str,
    issues: &[&DigestIssue],
    all_url: &str,
    base: &str,
    now: DateTime<Utc>,
) {
    out.push_str(&format!("{title} ({}):\n", issues.len()));
    if issues.is_empty() {
        out.push_str("  none\n");
    }
    for i in issues.iter().take(MAX_LISTED) {
        out.push_str(&format!(
            "  #{} {} ({}, last message {})\n    {base}/issues/{}\n",
            i.id,
            one_line(&i.subject),
            one_line(&i.customer),
            ago(now, i.last_message_at),
            i.id
        ));
    }
    if issues.len() > MAX_LISTED {
        out.push_str(&format!(
            "  … and {} more: {all_url}\n",
            issues.len() - MAX_LISTED
        ));
    }
    out.push('\n');
}

/// Subjects and names come from customers: keep each on one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// "5m ago", "3h ago", "2d ago".
fn ago(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    let secs = (now - then).num_seconds().max(0);
    match secs {
        s if s < 3_600 => format!("{}m ago", s / 60),
        s if s < 86_400 => format!("{}h ago", s / 3_600),
        s => format!("{}d ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;
    use chrono::TimeZone;

    fn staff(id: i64) -> Staff {
        Staff {
            id,
            email: format!("s{id}@example.com"),
            name: format!("Staff {id}"),
            role: Role::Agent,
            active: true,
            created_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        }
    }

    fn issue(id: i64, assignee: Option<i64>, hours_ago: i64) -> DigestIssue {
        DigestIssue {
            id,
            subject: format!("Subject\r\nof {id}"),
            customer: "Jane Doe".into(),
            assignee_id: assignee,
            last_message_at: now() - chrono::Duration::hours(hours_ago),
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap()
    }

    #[test]
    fn lists_mine_and_unassigned_not_others() {
        let open = [
            issue(1, Some(7), 2),
            issue(2, None, 30),
            issue(3, Some(8), 1),
        ];
        let d = compose(&staff(7), &open, "https://sb.example.com/", now()).unwrap();
        assert_eq!(d.to, "s7@example.com");
        assert_eq!(
            d.subject,
            "Switchboard digest: 1 assigned to you, 1 unassigned"
        );
        assert!(d.body.contains("Assigned to you (1):\n  #1 Subject of 1 (Jane Doe, last message 2h ago)\n    https://sb.example.com/issues/1\n"), "{}", d.body);
        assert!(
            d.body
                .contains("Unassigned (1):\n  #2 Subject of 2 (Jane Doe, last message 1d ago)\n"),
            "{}",
            d.body
        );
        assert!(!d.body.contains("#3"), "{}", d.body);
        assert_eq!(d.unsubscribe, "https://sb.example.com/api/me/preferences");
    }

    #[test]
    fn nothing_to_tell_sends_nothing() {
        let open = [issue(3, Some(8), 1)];
        assert_eq!(compose(&staff(7), &open, "http://x", now()), None);
        assert_eq!(compose(&staff(7), &[], "http://x", now()), None);
    }

    #[test]
    fn long_lists_are_cut_with_a_count_and_link() {
        let open: Vec<DigestIssue> = (1..=(MAX_LISTED as i64 + 5))
            .map(|i| issue(i, None, 1))
            .collect();
        let d = compose(&staff(7), &open, "http://x", now()).unwrap();
        assert!(
            d.body.contains("Assigned to you (0):\n  none\n"),
            "{}",
            d.body
        );
        assert!(
            d.body
                .contains("  … and 5 more: http://x/issues?status=unassigned\n")
        );
        assert_eq!(d.body.matches("    http://x/issues/").count(), MAX_LISTED);
    }
}

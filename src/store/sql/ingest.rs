// Shared SQL (ingest), `include!`d by each backend through `sql/mod.rs`.

#[derive(sqlx::FromRow)]
struct RefRow {
    id: i64,
    customer_id: i64,
    status: String,
    closed_at: Option<DateTime<Utc>>,
}

impl RefRow {
    fn into_ref(self) -> Result<domain::threading::IssueRef, StoreError> {
        Ok(domain::threading::IssueRef {
            id: self.id,
            customer_id: self.customer_id,
            status: crate::store::stored("issues", self.id, &self.status)?,
            closed_at: self.closed_at,
        })
    }
}

async fn issue_ref(c: &mut Conn, id: i64) -> Result<Option<domain::threading::IssueRef>, StoreError> {
    let row: Option<RefRow> =
        sqlx::query_as("SELECT id, customer_id, status, closed_at FROM issues WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *c)
            .await?;
    row.map(RefRow::into_ref).transpose()
}

/// The issue holding the first of `references` that we stored.
async fn issue_by_reference(
    c: &mut Conn,
    channel: Channel,
    references: &[String],
) -> Result<Option<domain::threading::IssueRef>, StoreError> {
    for r in references.iter().take(50) {
        let row: Option<RefRow> = sqlx::query_as(
            "SELECT i.id, i.customer_id, i.status, i.closed_at FROM messages m
             JOIN issues i ON i.id = m.issue_id WHERE m.channel = $1 AND m.external_id = $2",
        )
        .bind(channel.as_str())
        .bind(r)
        .fetch_optional(&mut *c)
        .await?;
        if let Some(row) = row {
            return row.into_ref().map(Some);
        }
    }
    Ok(None)
}

/// SPEC §3.1 in one transaction: dedupe, identify, decide, store.
pub async fn ingest(
    c: &mut Conn,
    msg: &Inbound,
    opts: &IngestOptions,
    now: DateTime<Utc>,
) -> Result<IngestOutcome, StoreError> {
    // Rule 1: dedupe.
    let dup = sqlx::query("SELECT id, issue_id FROM messages WHERE channel = $1 AND external_id = $2")
        .bind(msg.channel.as_str())
        .bind(&msg.external_id)
        .fetch_optional(&mut *c)
        .await?;
    if let Some(r) = dup {
        return Ok(IngestOutcome::Duplicate {
            message_id: r.try_get("id")?,
            issue_id: r.try_get("issue_id")?,
        });
    }
    // Rule 2: identify.
    let contact = identify(c, &msg.sender, msg.sender_name.as_deref(), now).await?;
    let customer_id = contact.customer_id;
    let customer_name: String = sqlx::query_scalar("SELECT name FROM customers WHERE id = $1")
        .bind(customer_id)
        .fetch_one(&mut *c)
        .await?;
    // Rules 3–5: gather the facts, let the domain decide.
    let by_reference = match issue_by_reference(c, msg.channel, &msg.references).await? {
        Some(r) => Some(r),
        None => match msg.referenced_issue {
            Some(id) => issue_ref(c, id).await?,
            None => None,
        },
    };
    let by_token = match msg.subject.as_deref().map(domain::text::subject_tokens) {
        Some(tokens) if !tokens.is_empty() => issue_ref(c, tokens[0]).await?,
        _ => None,
    };
    let open_issue: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM issues WHERE customer_id = $1 AND status <> 'closed'",
    )
    .bind(customer_id)
    .fetch_optional(&mut *c)
    .await?;
    let latest_closed: Option<RefRow> = sqlx::query_as(
        "SELECT id, customer_id, status, closed_at FROM issues
         WHERE customer_id = $1 AND status = 'closed' ORDER BY closed_at DESC, id DESC LIMIT 1",
    )
    .bind(customer_id)
    .fetch_optional(&mut *c)
    .await?;
    let facts = domain::ThreadingFacts {
        customer_id,
        by_reference,
        by_token,
        open_issue,
        latest_closed: latest_closed.map(RefRow::into_ref).transpose()?,
        is_automated: msg.is_automated,
        now,
        reopen_window: opts.reopen_window,
    };
    let placement = domain::threading::decide(&facts);

    let mut m = NewMessage::base(0, MessageKind::Customer, &msg.body, msg.received_at);
    m.channel = Some(msg.channel);
    m.author_type = "customer";
    m.author_id = Some(customer_id);
    m.author_name = &customer_name;
    m.html = msg.html.as_deref();
    m.raw = msg.raw.as_deref();
    m.external_id = Some(&msg.external_id);
    m.contact_value = Some(&contact.value);
    m.references_header = msg.references_header.as_deref();
    m.mailbox = msg.mailbox.as_deref();

    let arrival = domain::ingest::Arrival {
        channel: msg.channel,
        body: &msg.body,
        subject: msg.subject.as_deref(),
        is_automated: msg.is_automated,
        is_bounce: msg.is_bounce,
    };
    let sender = domain::ingest::Sender { value: &contact.value, opted_out: contact.opted_out };

    let mut opened = false;
    let mut resolved = None;
    let (issue_id, rule, status) = match placement {
        domain::Placement::DropAutomated => return Ok(IngestOutcome::DroppedAutomated),
        domain::Placement::RecordAutomated { issue_id } => {
            let event = domain::ingest::automated_event(&arrival);
            m.issue_id = issue_id;
            m.kind = MessageKind::Event;
            m.event_type = Some(event.kind);
            m.body = &event.text;
            let message_id = insert_message(c, &m).await?;
            touch_issue(c, issue_id, false, now).await?;
            return Ok(IngestOutcome::RecordedAutomated { message_id, issue_id });
        }
        domain::Placement::Append { issue_id, rule } => {
            let row = lock_issue(c, issue_id).await?.ok_or(StoreError::NotFound("issue"))?;
            (issue_id, rule, row.state()?.status)
        }
        domain::Placement::Reopen { issue_id } => {
            let row = lock_issue(c, issue_id).await?.ok_or(StoreError::NotFound("issue"))?;
            let state = row.state()?;
            let active = match state.assignee_id {
                Some(a) => staff_is_active(c, a).await?,
                None => false,
            };
            let (to, event) = domain::ingest::customer_reopen(state, active);
            write_state(c, issue_id, &to, None, now).await.map_err(StoreError::retry_if_unique)?;
            insert_event(c, issue_id, event.kind, None, &event.text, now).await?;
            (issue_id, ThreadingRule::Reopened, to.status)
        }
        domain::Placement::Open { previous_issue_id } => {
            let new = domain::ingest::new_issue(&arrival, opts);
            let issue_id: i64 = sqlx::query_scalar(
                "INSERT INTO issues (customer_id, channel, subject, status, previous_issue_id,
                                     ack_only, created_at, updated_at, last_message_at, mailbox)
                 VALUES ($1, $2, $3, 'unassigned', $4, $5, $6, $6, $6, $7) RETURNING id",
            )
            .bind(customer_id)
            .bind(msg.channel.as_str())
            .bind(&new.subject)
            .bind(previous_issue_id)
            .bind(new.ack_only)
            .bind(now)
            .bind(msg.mailbox.as_deref())
            .fetch_one(&mut *c)
            .await
            .map_err(StoreError::retry_on_unique)?;
            opened = true;
            resolved = new.resolved;
            let status = resolved.as_ref().map_or(IssueStatus::Unassigned, |(to, _)| to.status);
            (issue_id, ThreadingRule::New, status)
        }
    };
    m.issue_id = issue_id;
    m.threading_rule = Some(rule);
    let message_id = insert_message(c, &m).await.map_err(StoreError::retry_if_unique)?;
    // Media downloads are queued with the message: the text is never held
    // up by them, and a failed download is retried from the outbox.
    for (index, (url, content_type)) in msg.media.iter().enumerate() {
        let fetch = MediaFetch { url: url.clone(), content_type: content_type.clone(), index };
        enqueue_task(c, &OutboxTask::Media(fetch), Some(message_id), now).await?;
    }
    for a in &msg.attachments {
        insert_attachment(c, message_id, issue_id, a, now).await?;
    }
    touch_issue(c, issue_id, true, now).await?;

    // SPEC §3.7: an acknowledgement-only new issue resolved at once.
    if let Some((to, event)) = &resolved {
        write_state(c, issue_id, to, Some(now), now).await?;
        insert_event(c, issue_id, event.kind, None, &event.text, now).await?;
    }

    // SPEC §5: who hears about it.
    if let Some(event) = domain::ingest::customer_notice(opened, status) {
        let line = domain::ingest::customer_notice_text(event, issue_id, msg.channel, &customer_name, &msg.body);
        notify(c, event, issue_id, None, Some(message_id), &line, now).await?;
    }

    // SPEC §3.8: the templated acknowledgement, within its hourly limit.
    if let Some(ack) = domain::ingest::auto_ack(&arrival, &sender, opened, status, opts) {
        let recent: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages WHERE kind = 'reply' AND author_type = 'system'
             AND contact_value = $1 AND created_at > $2",
        )
        .bind(&contact.value)
        .bind(now - chrono::Duration::hours(1))
        .fetch_one(&mut *c)
        .await?;
        if ack.allowed(recent) {
            let text = ack.text(issue_id);
            let mut reply = NewMessage::base(issue_id, MessageKind::Reply, &text, now);
            reply.channel = Some(msg.channel);
            reply.contact_value = Some(&contact.value);
            reply.delivery_status = Some(DeliveryStatus::Queued);
            let ack_id = insert_message(c, &reply).await?;
            enqueue(c, msg.channel.as_str(), ack_id, now).await?;
        }
    }

    // SPEC §3.6: STOP / START.
    if let Some((opted_out, event)) = domain::ingest::opt_change(&arrival, &sender) {
        sqlx::query("UPDATE contacts SET opted_out = $3 WHERE kind = $1 AND value = $2")
            .bind(msg.sender.kind().as_str())
            .bind(msg.sender.value())
            .bind(opted_out)
            .execute(&mut *c)
            .await?;
        insert_event(c, issue_id, event.kind, None, &event.text, now).await?;
    }
    Ok(IngestOutcome::Stored { message_id, issue_id, rule, opened })
}

// Shared SQL (replies), `include!`d by each backend through `sql/mod.rs`.

struct ContactRow {
    customer_id: i64,
    value: String,
    opted_out: bool,
}

/// The contact a reply on `channel` goes to: the address the customer last
/// wrote from on this issue, else their first contact of that kind.
async fn reply_contact(
    c: &mut Conn,
    issue_id: i64,
    customer_id: i64,
    channel: Channel,
) -> Result<Option<ContactRow>, StoreError> {
    let kind = match channel {
        Channel::Sms => ContactKind::Phone,
        Channel::Email => ContactKind::Email,
    };
    let last: Option<String> = sqlx::query_scalar(
        "SELECT contact_value FROM messages
         WHERE issue_id = $1 AND kind = 'customer' AND channel = $2 AND contact_value IS NOT NULL
         ORDER BY id DESC LIMIT 1",
    )
    .bind(issue_id)
    .bind(channel.as_str())
    .fetch_optional(&mut *c)
    .await?;
    let row = sqlx::query(
        "SELECT customer_id, value, opted_out FROM contacts
         WHERE customer_id = $1 AND kind = $2 AND ($3 IS NULL OR value = $3)
         ORDER BY id LIMIT 1",
    )
    .bind(customer_id)
    .bind(kind.as_str())
    .bind(last.clone())
    .fetch_optional(&mut *c)
    .await?;
    let row = match (row, last) {
        (Some(r), _) => Some(r),
        // The customer wrote from an address that was since merged away.
        (None, Some(_)) => {
            sqlx::query(
                "SELECT customer_id, value, opted_out FROM contacts
                 WHERE customer_id = $1 AND kind = $2 ORDER BY id LIMIT 1",
            )
            .bind(customer_id)
            .bind(kind.as_str())
            .fetch_optional(&mut *c)
            .await?
        }
        (None, None) => None,
    };
    match row {
        None => Ok(None),
        Some(r) => Ok(Some(ContactRow {
            customer_id: r.try_get("customer_id")?,
            value: r.try_get("value")?,
            opted_out: r.try_get("opted_out")?,
        })),
    }
}

async fn enqueue(
    c: &mut Conn,
    kind: &str,
    message_id: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO outbox (kind, message_id, state, attempts, next_attempt_at, created_at, updated_at)
         VALUES ($1, $2, 'pending', 0, $3, $3, $3)",
    )
    .bind(kind)
    .bind(message_id)
    .bind(now)
    .execute(&mut *c)
    .await?;
    Ok(())
}

fn no_contact(channel: Channel) -> StoreError {
    match channel {
        Channel::Sms => StoreError::invalid("no_contact", "the customer has no phone number"),
        Channel::Email => StoreError::invalid("no_contact", "the customer has no email address"),
    }
}

fn opted_out() -> StoreError {
    StoreError::conflict(
        "contact_opted_out",
        "the customer opted out of SMS (STOP); they must text START before you can reply",
    )
}

/// Queues a reply: the message (delivery `queued`) and its outbox row in one
/// transaction, so a reply is never shown as sent without being queued.
pub async fn create_reply(
    c: &mut Conn,
    issue_id: i64,
    author: &Staff,
    body: &str,
    channel: Option<Channel>,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let row = lock_issue(c, issue_id).await?.ok_or(StoreError::NotFound("issue"))?;
    if row.state()?.status == IssueStatus::Closed {
        return Err(domain::TransitionError::IssueClosed.into());
    }
    let issue_channel: String = sqlx::query_scalar("SELECT channel FROM issues WHERE id = $1")
        .bind(issue_id)
        .fetch_one(&mut *c)
        .await?;
    let channel = channel.or(Channel::parse(&issue_channel)).unwrap_or(Channel::Sms);
    let contact = reply_contact(c, issue_id, row.customer_id, channel)
        .await?
        .ok_or_else(|| no_contact(channel))?;
    if contact.opted_out && channel == Channel::Sms {
        return Err(opted_out());
    }
    let mut m = NewMessage::base(issue_id, MessageKind::Reply, body, now);
    m.channel = Some(channel);
    m.author_type = "staff";
    m.author_id = Some(author.id);
    m.author_name = &author.name;
    m.contact_value = Some(&contact.value);
    m.delivery_status = Some(DeliveryStatus::Queued);
    let id = insert_message(c, &m).await?;
    enqueue(c, channel.as_str(), id, now).await?;
    touch_issue(c, issue_id, true, now).await?;
    Ok(id)
}

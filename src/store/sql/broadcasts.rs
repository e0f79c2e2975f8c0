// Shared SQL (broadcasts), `include!`d by each backend through `sql/mod.rs`.

/// Creates a broadcast and queues one delivery per reachable recipient,
/// `spacing` apart (the rate limit). Opted-out and unreachable customers
/// are recorded as skipped with the reason.
pub async fn create_broadcast(
    c: &mut Conn,
    actor: &Staff,
    body: &str,
    subject: Option<&str>,
    customers: Option<&[i64]>,
    spacing: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let ids: Vec<i64> = match customers {
        None => sqlx::query_scalar("SELECT id FROM customers WHERE merged_into IS NULL ORDER BY id")
            .fetch_all(&mut *c)
            .await?,
        Some(list) => {
            let mut out = Vec::new();
            for id in list {
                match resolve_customer(c, *id).await? {
                    Some(r) if !out.contains(&r) => out.push(r),
                    Some(_) => {}
                    None => return Err(StoreError::invalid("unknown_customer", &format!("no customer #{id}"))),
                }
            }
            out
        }
    };
    let broadcast_id: i64 = sqlx::query_scalar(
        "INSERT INTO broadcasts (body, subject, created_by, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(body)
    .bind(subject)
    .bind(actor.id)
    .bind(now)
    .fetch_one(&mut *c)
    .await?;
    let mut slot = 0i32;
    for customer_id in ids {
        // Their own channel: that of their latest issue, else their first contact.
        let latest: Option<String> =
            sqlx::query_scalar("SELECT channel FROM issues WHERE customer_id = $1 ORDER BY id DESC LIMIT 1")
                .bind(customer_id)
                .fetch_optional(&mut *c)
                .await?;
        let contacts = sqlx::query("SELECT kind, value, opted_out FROM contacts WHERE customer_id = $1 ORDER BY id")
            .bind(customer_id)
            .fetch_all(&mut *c)
            .await?;
        let want_kind = match latest.as_deref() {
            Some("email") => Some("email"),
            Some(_) => Some("phone"),
            None => None,
        };
        let pick = contacts
            .iter()
            .find(|r| want_kind.is_none_or(|k| r.try_get::<String, _>("kind").is_ok_and(|v| v == k)))
            .or(contacts.first());
        let (channel, contact, status, error) = match pick {
            None => (None, None, "skipped", Some("the customer has no contact")),
            Some(r) => {
                let kind: String = r.try_get("kind")?;
                let value: String = r.try_get("value")?;
                let opted: bool = r.try_get("opted_out")?;
                let channel = if kind == "email" { "email" } else { "sms" };
                if opted && channel == "sms" {
                    (Some(channel), Some(value), "skipped", Some("opted out (STOP)"))
                } else {
                    (Some(channel), Some(value), "queued", None)
                }
            }
        };
        let recipient_id: i64 = sqlx::query_scalar(
            "INSERT INTO broadcast_recipients (broadcast_id, customer_id, channel, contact, status, error, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(broadcast_id)
        .bind(customer_id)
        .bind(channel)
        .bind(&contact)
        .bind(status)
        .bind(error)
        .bind(now)
        .fetch_one(&mut *c)
        .await?;
        // The rule replies follow (SPEC: Twilio refuses longer bodies),
        // checked against who actually gets an SMS; refusing rolls back
        // the whole broadcast.
        if status == "queued"
            && channel == Some("sms")
            && body.chars().count() > crate::domain::text::SMS_MAX_CHARS
        {
            return Err(StoreError::invalid(
                "body_too_long",
                &format!(
                    "a broadcast that reaches SMS customers may be at most {} characters",
                    crate::domain::text::SMS_MAX_CHARS
                ),
            ));
        }
        if status == "queued" {
            let at = now + spacing * slot;
            slot += 1;
            sqlx::query(
                "INSERT INTO outbox (kind, message_id, state, attempts, next_attempt_at, created_at, updated_at, payload)
                 VALUES ('broadcast', NULL, 'pending', 0, $1, $2, $2, $3)",
            )
            .bind(at)
            .bind(now)
            .bind(OutboxTask::Broadcast { recipient_id }.payload())
            .execute(&mut *c)
            .await?;
        }
    }
    Ok(broadcast_id)
}

pub async fn broadcast_view(c: &mut Conn, id: i64) -> Result<Option<BroadcastView>, StoreError> {
    let Some(b) = sqlx::query("SELECT id, body, subject, created_by, created_at FROM broadcasts WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *c)
        .await?
    else {
        return Ok(None);
    };
    let recipients: Vec<BroadcastRecipient> = sqlx::query_as(
        "SELECT id, customer_id, channel, contact, status, error FROM broadcast_recipients
         WHERE broadcast_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&mut *c)
    .await?;
    let mut counts = std::collections::BTreeMap::new();
    for s in ["queued", "sent", "failed", "skipped"] {
        counts.insert(s.to_string(), recipients.iter().filter(|r| r.status == s).count() as i64);
    }
    Ok(Some(BroadcastView {
        id,
        body: b.try_get("body")?,
        subject: b.try_get("subject")?,
        created_by: b.try_get("created_by")?,
        created_at: b.try_get("created_at")?,
        status: if counts["queued"] > 0 { "sending" } else { "done" },
        total: recipients.len() as i64,
        counts,
        recipients,
    }))
}

pub async fn broadcast_delivery(c: &mut Conn, recipient_id: i64) -> Result<Option<BroadcastDelivery>, StoreError> {
    let row = sqlx::query(
        "SELECT r.id, r.channel, r.contact, r.status, b.body, b.subject FROM broadcast_recipients r
         JOIN broadcasts b ON b.id = r.broadcast_id WHERE r.id = $1",
    )
    .bind(recipient_id)
    .fetch_optional(&mut *c)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let channel: Option<String> = r.try_get("channel")?;
    Ok(Some(BroadcastDelivery {
        recipient_id,
        channel: channel.as_deref().and_then(Channel::parse).unwrap_or(Channel::Sms),
        contact: r.try_get::<Option<String>, _>("contact")?.unwrap_or_default(),
        body: r.try_get("body")?,
        subject: r.try_get("subject")?,
        status: r.try_get("status")?,
    }))
}

pub async fn finish_broadcast_recipient(
    c: &mut Conn,
    recipient_id: i64,
    status: &str,
    error: Option<&str>,
    external_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE broadcast_recipients SET status = $2, error = $3, external_id = $4, updated_at = $5 WHERE id = $1")
        .bind(recipient_id)
        .bind(status)
        .bind(error)
        .bind(external_id)
        .bind(now)
        .execute(&mut *c)
        .await?;
    Ok(())
}

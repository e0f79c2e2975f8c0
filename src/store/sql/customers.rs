// Shared SQL (customers), `include!`d by each backend through `sql/mod.rs`.

async fn find_contact(
    c: &mut Conn,
    contact: &domain::Contact,
) -> Result<Option<ContactRow>, StoreError> {
    let row = sqlx::query("SELECT customer_id, value, opted_out FROM contacts WHERE kind = $1 AND value = $2")
        .bind(contact.kind().as_str())
        .bind(contact.value())
        .fetch_optional(&mut *c)
        .await?;
    match row {
        None => Ok(None),
        Some(r) => Ok(Some(ContactRow {
            customer_id: r.try_get("customer_id")?,
            value: r.try_get("value")?,
            opted_out: r.try_get("opted_out")?,
        })),
    }
}

/// Finds the customer owning a contact, creating both when unknown. When a
/// concurrent transaction creates the same contact first, this answers
/// `StoreError::Retry` so the whole transaction runs again and finds it.
async fn identify(
    c: &mut Conn,
    contact: &domain::Contact,
    name: Option<&str>,
    now: DateTime<Utc>,
) -> Result<ContactRow, StoreError> {
    if let Some(found) = find_contact(c, contact).await? {
        return Ok(found);
    }
    let name = name.map(str::trim).filter(|n| !n.is_empty()).unwrap_or(contact.value());
    let customer_id: i64 =
        sqlx::query_scalar("INSERT INTO customers (name, created_at) VALUES ($1, $2) RETURNING id")
            .bind(name)
            .bind(now)
            .fetch_one(&mut *c)
            .await?;
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO contacts (customer_id, kind, value, opted_out, created_at)
         VALUES ($1, $2, $3, FALSE, $4) ON CONFLICT (kind, value) DO NOTHING RETURNING id",
    )
    .bind(customer_id)
    .bind(contact.kind().as_str())
    .bind(contact.value())
    .bind(now)
    .fetch_optional(&mut *c)
    .await?;
    if inserted.is_none() {
        return Err(StoreError::Retry);
    }
    Ok(ContactRow { customer_id, value: contact.value().to_string(), opted_out: false })
}

pub async fn customer_view(
    c: &mut Conn,
    id: i64,
    caller: i64,
) -> Result<Option<CustomerView>, StoreError> {
    let name: Option<String> = sqlx::query_scalar("SELECT name FROM customers WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
    let Some(name) = name else { return Ok(None) };
    let contacts = sqlx::query("SELECT kind, value, opted_out FROM contacts WHERE customer_id = $1 ORDER BY id")
        .bind(id)
        .fetch_all(&mut *c)
        .await?
        .into_iter()
        .map(|r| {
            let kind: String = r.try_get("kind")?;
            Ok(ContactView {
                kind: ContactKind::parse(&kind).unwrap_or(ContactKind::Phone),
                value: r.try_get("value")?,
                opted_out: r.try_get("opted_out")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let rows: Vec<IssueRow> = sqlx::query_as(concat!(
        issue_select!("$1"),
        " WHERE i.customer_id = $2 ORDER BY i.last_message_at DESC, i.id DESC LIMIT 100"
    ))
    .bind(caller)
    .bind(id)
    .fetch_all(&mut *c)
    .await?;
    Ok(Some(CustomerView {
        id,
        name,
        contacts,
        issues: rows.into_iter().map(IssueRow::into_view).collect::<Result<_, _>>()?,
    }))
}

pub async fn customer_exists(c: &mut Conn, id: i64) -> Result<bool, StoreError> {
    let found: Option<i64> = sqlx::query_scalar("SELECT id FROM customers WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
    Ok(found.is_some())
}

/// "New Ticket": opens an issue assigned to the caller and queues the first
/// message to the customer.
pub async fn create_issue(
    c: &mut Conn,
    actor: &Staff,
    new: &NewIssue,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let (customer_id, channel) = match (&new.contact, new.customer_id) {
        (Some(contact), _) => (identify(c, contact, None, now).await?.customer_id, contact.channel()),
        (None, Some(id)) => {
            if !customer_exists(c, id).await? {
                return Err(StoreError::invalid("unknown_customer", "no customer with that id"));
            }
            let first: Option<String> =
                sqlx::query_scalar("SELECT kind FROM contacts WHERE customer_id = $1 ORDER BY id LIMIT 1")
                    .bind(id)
                    .fetch_optional(&mut *c)
                    .await?;
            let channel = match first.as_deref() {
                Some("email") => Channel::Email,
                Some(_) => Channel::Sms,
                None => return Err(StoreError::invalid("no_contact", "the customer has no contact")),
            };
            (id, channel)
        }
        (None, None) => {
            return Err(StoreError::invalid("missing_customer", "give customer_id or contact"));
        }
    };
    if let Some(open) = open_issue_of(c, customer_id, 0).await? {
        return Err(StoreError::Rule(domain::Refusal::customer_has_open_issue(open)));
    }
    let subject = match &new.subject {
        Some(s) if !s.trim().is_empty() => s.trim().to_string(),
        _ => domain::text::sms_subject(&new.body),
    };
    let issue_id: i64 = sqlx::query_scalar(
        "INSERT INTO issues (customer_id, channel, subject, status, assignee_id, ack_only,
                             created_at, updated_at, last_message_at)
         VALUES ($1, $2, $3, 'assigned', $4, FALSE, $5, $5, $5) RETURNING id",
    )
    .bind(customer_id)
    .bind(channel.as_str())
    .bind(&subject)
    .bind(actor.id)
    .bind(now)
    .fetch_one(&mut *c)
    .await
    .map_err(StoreError::retry_on_unique)?;
    let contact = match &new.contact {
        Some(ct) => find_contact(c, ct).await?,
        None => reply_contact(c, issue_id, customer_id, channel).await?,
    }
    .ok_or_else(|| no_contact(channel))?;
    if contact.opted_out && channel == Channel::Sms {
        return Err(opted_out());
    }
    let mut m = NewMessage::base(issue_id, MessageKind::Reply, &new.body, now);
    m.channel = Some(channel);
    m.author_type = "staff";
    m.author_id = Some(actor.id);
    m.author_name = &actor.name;
    m.contact_value = Some(&contact.value);
    m.delivery_status = Some(DeliveryStatus::Queued);
    let message_id = insert_message(c, &m).await?;
    enqueue(c, channel.as_str(), message_id, now).await?;
    stream_event(c, "issue", None, Some(issue_id), Some(issue_id), now).await?;
    Ok(issue_id)
}

// Shared SQL (staff), `include!`d by each backend through `sql/mod.rs`.

#[derive(sqlx::FromRow)]
struct StaffRow {
    id: i64,
    email: String,
    name: String,
    role: String,
    active: bool,
    created_at: DateTime<Utc>,
}

impl StaffRow {
    fn into_staff(self) -> Result<Staff, StoreError> {
        Ok(Staff {
            role: crate::store::stored("staff", self.id, &self.role)?,
            id: self.id,
            email: self.email,
            name: self.name,
            active: self.active,
            created_at: self.created_at,
        })
    }
}

pub async fn insert_staff(
    c: &mut Conn,
    email: &str,
    name: &str,
    role: Role,
    now: DateTime<Utc>,
) -> Result<Staff, StoreError> {
    let row: StaffRow = sqlx::query_as(
        "INSERT INTO staff (email, name, role, active, created_at) VALUES ($1, $2, $3, TRUE, $4)
         RETURNING id, email, name, role, active, created_at",
    )
    .bind(email)
    .bind(name)
    .bind(role.as_str())
    .bind(now)
    .fetch_one(&mut *c)
    .await
    .map_err(|e| StoreError::on_unique(e, "email_taken", "a staff member with that email exists"))?;
    row.into_staff()
}

pub async fn list_staff(c: &mut Conn) -> Result<Vec<Staff>, StoreError> {
    let rows: Vec<StaffRow> =
        sqlx::query_as("SELECT id, email, name, role, active, created_at FROM staff ORDER BY id")
            .fetch_all(&mut *c)
            .await?;
    rows.into_iter().map(StaffRow::into_staff).collect()
}

pub async fn get_staff(c: &mut Conn, id: i64) -> Result<Option<Staff>, StoreError> {
    let row: Option<StaffRow> =
        sqlx::query_as("SELECT id, email, name, role, active, created_at FROM staff WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *c)
            .await?;
    row.map(StaffRow::into_staff).transpose()
}

pub async fn staff_by_email(c: &mut Conn, email: &str) -> Result<Option<Staff>, StoreError> {
    let row: Option<StaffRow> = sqlx::query_as(
        "SELECT id, email, name, role, active, created_at FROM staff WHERE email = $1",
    )
    .bind(email)
    .fetch_optional(&mut *c)
    .await?;
    row.map(StaffRow::into_staff).transpose()
}

pub async fn update_staff(
    c: &mut Conn,
    id: i64,
    active: Option<bool>,
    role: Option<Role>,
    name: Option<&str>,
) -> Result<Option<Staff>, StoreError> {
    let row: Option<StaffRow> = sqlx::query_as(
        "UPDATE staff SET active = COALESCE($2, active), role = COALESCE($3, role),
                name = COALESCE($4, name)
         WHERE id = $1 RETURNING id, email, name, role, active, created_at",
    )
    .bind(id)
    .bind(active)
    .bind(role.map(|r| r.as_str()))
    .bind(name)
    .fetch_optional(&mut *c)
    .await?;
    row.map(StaffRow::into_staff).transpose()
}

pub async fn count_staff(c: &mut Conn) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM staff").fetch_one(&mut *c).await?)
}

pub async fn count_active_admins(c: &mut Conn) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM staff WHERE role = 'admin' AND active")
            .fetch_one(&mut *c)
            .await?,
    )
}

/// Locks the active admins' rows (PostgreSQL; SQLite's write transaction
/// already holds the database). Two admins stepping down at once would
/// otherwise each count the other as still active and both commit,
/// leaving no admin: with the rows locked, the second waits for the first
/// and its count sees the first one's change.
pub async fn lock_active_admins(c: &mut Conn) -> Result<(), StoreError> {
    sqlx::query(concat!(
        "SELECT id FROM staff WHERE role = 'admin' AND active ORDER BY id",
        for_update!()
    ))
    .fetch_all(&mut *c)
    .await?;
    Ok(())
}

pub async fn insert_token(
    c: &mut Conn,
    staff_id: i64,
    token_hash: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO api_tokens (staff_id, token_hash, created_at) VALUES ($1, $2, $3)")
        .bind(staff_id)
        .bind(token_hash)
        .bind(now)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// The active staff member holding a token. The hash is looked up by the
/// unique index; the caller compares it again in constant time.
pub async fn staff_by_token(
    c: &mut Conn,
    token_hash: &str,
) -> Result<Option<(Staff, String)>, StoreError> {
    let row = sqlx::query(
        "SELECT s.id, s.email, s.name, s.role, s.active, s.created_at, t.token_hash
         FROM api_tokens t JOIN staff s ON s.id = t.staff_id
         WHERE t.token_hash = $1 AND s.active",
    )
    .bind(token_hash)
    .fetch_optional(&mut *c)
    .await?;
    match row {
        None => Ok(None),
        Some(r) => {
            let staff = StaffRow {
                id: r.try_get("id")?,
                email: r.try_get("email")?,
                name: r.try_get("name")?,
                role: r.try_get("role")?,
                active: r.try_get("active")?,
                created_at: r.try_get("created_at")?,
            };
            Ok(Some((staff.into_staff()?, r.try_get("token_hash")?)))
        }
    }
}

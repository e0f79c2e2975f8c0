//! Staff members and their API tokens.

use super::*;

impl Store {
    pub async fn create_staff(
        &self,
        email: &str,
        name: &str,
        role: Role,
    ) -> Result<Staff, StoreError> {
        let email = email.trim().to_lowercase();
        let now = now();
        write_tx!(self, |c, q| q::insert_staff(
            c,
            &email,
            name.trim(),
            role,
            now
        )
        .await)
    }

    pub async fn list_staff(&self) -> Result<Vec<Staff>, StoreError> {
        read!(self, |c, q| q::list_staff(c).await)
    }

    pub async fn get_staff(&self, id: i64) -> Result<Staff, StoreError> {
        read!(self, |c, q| q::get_staff(c, id).await)?.ok_or(StoreError::NotFound("staff member"))
    }

    pub async fn staff_by_email(&self, email: &str) -> Result<Option<Staff>, StoreError> {
        let email = email.trim().to_lowercase();
        read!(self, |c, q| q::staff_by_email(c, &email).await)
    }

    /// Changes a staff member; refuses to leave the team without an active admin.
    pub async fn update_staff(
        &self,
        id: i64,
        active: Option<bool>,
        role: Option<Role>,
        name: Option<&str>,
    ) -> Result<Staff, StoreError> {
        let may_remove_admin = active == Some(false) || role == Some(Role::Agent);
        write_tx!(self, |c, q| {
            if may_remove_admin {
                q::lock_active_admins(c).await?;
            }
            let updated = q::update_staff(c, id, active, role, name)
                .await?
                .ok_or(StoreError::NotFound("staff member"))?;
            if q::count_active_admins(c).await? == 0 {
                Err(StoreError::conflict(
                    "last_admin",
                    "the last active admin cannot be demoted or deactivated",
                ))
            } else {
                Ok(updated)
            }
        })
    }

    pub async fn count_staff(&self) -> Result<i64, StoreError> {
        read!(self, |c, q| q::count_staff(c).await)
    }

    /// Creates an API token for a staff member and returns it; only its
    /// hash is stored.
    pub async fn create_token(&self, staff_id: i64) -> Result<String, StoreError> {
        let token = crate::token::generate();
        let hash = crate::token::hash(&token);
        let now = now();
        write_tx!(self, |c, q| {
            if q::get_staff(c, staff_id).await?.is_none() {
                return Err(StoreError::NotFound("staff member"));
            }
            q::insert_token(c, staff_id, &hash, now).await
        })?;
        Ok(token)
    }

    /// The active staff member a bearer token belongs to.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Staff>, StoreError> {
        let hash = crate::token::hash(token);
        let found = read!(self, |c, q| q::staff_by_token(c, &hash).await)?;
        Ok(found.and_then(|(staff, stored)| {
            crate::token::hashes_equal(&stored, &hash).then_some(staff)
        }))
    }
}

//! Merging customers.

use super::*;

impl Store {
    /// Merges customer `from` into `into`; returns the merged customer.
    pub async fn merge_customers(
        &self,
        into: i64,
        from: i64,
        actor: &Staff,
    ) -> Result<CustomerView, StoreError> {
        let now = now();
        write_tx!(self, |c, q| {
            q::merge_customers(c, into, from, actor, now).await?;
            q::customer_view(c, into, actor.id)
                .await?
                .ok_or(StoreError::NotFound("customer"))
        })
    }
}

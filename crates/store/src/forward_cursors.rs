//! How far each audit forwarder (syslog destination) got: the last entry sent, kept so a
//! restarted reconciler forwards what was appended while it was down.

use crate::backend::on_backend;
use crate::error::{QueryContext as _, Result};
use crate::{Store, now};

impl Store {
    /// The last audit entry forwarded to `name`, if it was ever forwarded to.
    pub async fn forward_cursor(&self, name: &str) -> Result<Option<i64>> {
        on_backend!(self, pool => {
            sqlx::query_scalar("SELECT seq FROM forward_cursors WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await
                .ctx("read a forwarding cursor")
        })
    }

    /// Records that the audit log was forwarded to `name` up to entry `seq`.
    pub async fn set_forward_cursor(&self, name: &str, seq: i64) -> Result<()> {
        on_backend!(self, pool => {
            sqlx::query(
                "INSERT INTO forward_cursors (name, seq, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at",
            )
            .bind(name)
            .bind(seq)
            .bind(now())
            .execute(pool)
            .await
            .ctx("save a forwarding cursor")?;
            Ok(())
        })
    }
}

//! Exactly one plan comment per pull request: found by its hidden marker and edited in place;
//! created only when there is none; extra marked comments (left by a race or a restore) are
//! deleted so there is never more than one.

use crate::forge::{Forge, ForgeError};
use report::markdown::MARKER_PREFIX;

/// What [`upsert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created(u64),
    Updated(u64),
    /// The comment already said exactly this; nothing was sent.
    Unchanged(u64),
}

impl Upserted {
    pub fn id(self) -> u64 {
        match self {
            Upserted::Created(id) | Upserted::Updated(id) | Upserted::Unchanged(id) => id,
        }
    }
}

/// True when `body` is a centossrv plan comment.
pub fn is_plan_comment(body: &str) -> bool {
    body.trim_start().starts_with(MARKER_PREFIX)
}

/// Makes `body` the one plan comment of change request `number`.
pub async fn upsert(forge: &dyn Forge, number: u64, body: &str) -> Result<Upserted, ForgeError> {
    let comments = forge.comments(number).await?;
    let mut ours = comments.iter().filter(|c| is_plan_comment(&c.body));
    let Some(first) = ours.next() else {
        let created = forge.create_comment(number, body).await?;
        return Ok(Upserted::Created(created.id));
    };
    for extra in ours {
        match forge.delete_comment(number, extra.id).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    if first.body == body {
        return Ok(Upserted::Unchanged(first.id));
    }
    forge.update_comment(number, first.id, body).await?;
    Ok(Upserted::Updated(first.id))
}

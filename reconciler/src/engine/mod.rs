//! The reconciler service's one loop: a closed [`Event`] in, level-triggered decisions out.

pub mod event;

pub use event::{ConnId, Event};

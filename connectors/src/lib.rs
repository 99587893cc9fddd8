//! Side effects at the edge of guichet: email (templates, SMTP, the outbox dispatcher) and
//! calls to external providers (signed webhooks, verified callbacks).
//!
//! The engine writes emails and webhooks as outbox rows in the same transaction as the state
//! change; this crate turns them into messages and delivers them.

mod delivery;
pub mod email;
pub mod provider;

pub use guichet_definitions::templates::STANDARD as STANDARD_TEMPLATES;

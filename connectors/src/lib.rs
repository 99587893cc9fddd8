//! Side effects at the edge of guichet: email (templates, SMTP, the outbox dispatcher) and,
//! later, calls to external providers.
//!
//! The engine writes emails and webhooks as outbox rows in the same transaction as the state
//! change; this crate turns them into messages and delivers them.

pub mod email;

pub use guichet_definitions::templates::STANDARD as STANDARD_TEMPLATES;

//! Side effects at the edge of guichet: SMTP email and calls to external providers.
//!
//! Placeholder until the connectors issue lands. It depends on the definitions only to share
//! the catalogue of standard template names (`guichet_definitions::templates`).

pub use guichet_definitions::templates::STANDARD as STANDARD_TEMPLATES;

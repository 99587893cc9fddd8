//! The web application of guichet: requester portal, staff inbox, email-link task pages,
//! administration and the REST API.
//!
//! Placeholder until the web issue lands; the crate exists so the workspace has its final shape.

pub use guichet_engine as engine;

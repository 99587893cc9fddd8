//! Email: templates, the context they may see, SMTP or capture, and the outbox dispatcher.

pub mod templates;

pub use templates::{Context, Rendered, RequestRef, TemplateError, Templates};

//! Email: templates, the context they may see, SMTP or capture, and the outbox dispatcher.

pub mod dispatch;
pub mod templates;

pub use dispatch::{Dispatcher, Report, RetryPolicy, SmtpConfig, TlsMode, Transport};
pub use templates::{Context, Rendered, RequestRef, TemplateError, Templates};

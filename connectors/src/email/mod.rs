//! Email: templates, the context they may see, SMTP or capture, and the outbox dispatcher.

pub mod dispatch;
pub mod templates;

pub use crate::delivery::{Report, RetryPolicy};
pub use dispatch::{
    DIGEST_HOUR, DIGEST_TASKS, Dispatcher, SmtpConfig, TlsMode, Transport, digestible,
};
pub use templates::{
    Context, DIGEST, DigestContext, DigestTask, Rendered, RequestRef, TemplateError, Templates,
};

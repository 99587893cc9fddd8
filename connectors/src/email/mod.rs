//! Email: templates, the context they may see, SMTP or capture, and the outbox dispatcher.

pub mod dispatch;
pub mod templates;

pub use dispatch::{
    DIGEST_HOUR, DIGEST_TASKS, Dispatcher, Report, RetryPolicy, SmtpConfig, TlsMode, Transport,
    digestible,
};
pub use templates::{
    Context, DIGEST, DigestContext, DigestTask, Rendered, RequestRef, TemplateError, Templates,
};

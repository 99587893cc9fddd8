//! Delivery settings of `serve` (email and provider webhooks), and the `mail` commands over
//! the outbox.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use guichet_connectors::email::{
    Dispatcher, RetryPolicy, SmtpConfig, Templates, TlsMode, Transport,
};
use guichet_connectors::provider::{ProviderConfig, Webhooks};
use guichet_engine::Engine;
use guichet_engine::definitions::model::Language;

/// Where links in emails point when no public address is given and nothing listens (the
/// default listening address).
const DEFAULT_BASE_URL: &str = "http://127.0.0.1:8080";

/// Where emails go. Without `--smtp-host`, they are captured in the database and listed by
/// `guichet mail list`.
#[derive(Debug, Clone, Args)]
pub(crate) struct MailOptions {
    /// SMTP server; none means capture mode.
    #[arg(long, env = "GUICHET_SMTP_HOST")]
    smtp_host: Option<String>,
    #[arg(long, env = "GUICHET_SMTP_PORT", default_value_t = 587)]
    smtp_port: u16,
    /// none, starttls or tls.
    #[arg(long, env = "GUICHET_SMTP_TLS", default_value = "starttls")]
    smtp_tls: TlsMode,
    #[arg(long, env = "GUICHET_SMTP_USERNAME")]
    smtp_username: Option<String>,
    #[arg(long, env = "GUICHET_SMTP_PASSWORD", hide_env_values = true)]
    smtp_password: Option<String>,
    /// The sender, e.g. "Guichet <guichet@hopital.example>".
    #[arg(
        long,
        env = "GUICHET_MAIL_FROM",
        default_value = "Guichet <guichet@localhost>"
    )]
    mail_from: String,
    /// The public address of the web server, for links in emails (e.g.
    /// `https://guichet.hopital.example`). Unset, `serve` uses the address it listens on and
    /// warns when that is not one people elsewhere can open.
    #[arg(long, env = "GUICHET_BASE_URL")]
    base_url: Option<String>,
    /// A folder of the desk's own templates (fr/NAME.hbs, en/NAME.hbs).
    #[arg(long, env = "GUICHET_TEMPLATES")]
    templates: Option<PathBuf>,
    /// Where a provider receives webhooks: ID=URL (repeat, or comma-separated in the variable).
    #[arg(
        long = "provider",
        env = "GUICHET_PROVIDERS",
        value_delimiter = ',',
        value_name = "ID=URL"
    )]
    providers: Vec<String>,
    /// The secret shared with a provider, to sign webhooks and check callbacks: ID=SECRET.
    #[arg(
        long = "provider-secret",
        env = "GUICHET_PROVIDER_SECRETS",
        value_delimiter = ',',
        value_name = "ID=SECRET",
        hide_env_values = true
    )]
    provider_secrets: Vec<String>,
    /// The hour (0-23, Paris time) at which the daily digests of those who asked for one are
    /// sent.
    #[arg(
        long,
        env = "GUICHET_DIGEST_HOUR",
        default_value_t = guichet_connectors::email::DIGEST_HOUR,
        value_parser = clap::value_parser!(u8).range(0..=23)
    )]
    digest_hour: u8,
    /// How long (seconds) a node holds an email or webhook it is delivering; a node that
    /// dies meanwhile has its messages taken by the others after this delay. Under the SMTP
    /// and webhook timeouts (30 s), a slow delivery may be made twice (same Message-ID).
    #[arg(long, env = "GUICHET_OUTBOX_LEASE", default_value_t = 120, value_parser = clap::value_parser!(u64).range(5..=86_400))]
    outbox_lease: u64,
}

impl MailOptions {
    /// The address links in emails start with.
    pub(crate) fn base_url(&self) -> String {
        self.base_url
            .clone()
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned())
    }

    /// When no public address was given, links point to `listening` (the address `serve`
    /// listens on); returns a warning when people on other machines could not open them.
    pub(crate) fn default_base_url(&mut self, listening: std::net::SocketAddr) -> Option<String> {
        if self.base_url.is_some() {
            return None;
        }
        let url = format!("http://{listening}");
        self.base_url = Some(url.clone());
        (!listening.ip().is_loopback()).then(|| {
            format!(
                "no public address set: links in emails point to {url}; set --base-url (GUICHET_BASE_URL) to the address people open, e.g. https://guichet.hopital.example"
            )
        })
    }

    fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            lease_ms: i64::try_from(self.outbox_lease).unwrap_or(i64::MAX / 2_000) * 1000,
            ..RetryPolicy::default()
        }
    }

    pub(crate) fn digest_hour(&self) -> u8 {
        self.digest_hour
    }

    pub(crate) fn describe(&self) -> String {
        match &self.smtp_host {
            Some(h) => format!("SMTP {h}:{} ({:?})", self.smtp_port, self.smtp_tls),
            None => "no SMTP server: captured, see `guichet mail list`".to_owned(),
        }
    }

    /// The provider webhooks, with their URLs and secrets.
    pub(crate) fn webhooks(&self, engine: Arc<Engine>) -> anyhow::Result<Webhooks> {
        let secrets: HashMap<&str, &str> = self
            .provider_secrets
            .iter()
            .filter_map(|p| p.split_once('='))
            .collect();
        let mut providers = HashMap::new();
        let mut pull = Vec::new();
        for p in &self.providers {
            let (id, url) = p
                .split_once('=')
                .with_context(|| format!("--provider `{p}` is not ID=URL (or ID=pull)"))?;
            if url == "pull" {
                pull.push(id.to_owned());
                continue;
            }
            let secret = secrets
                .get(id)
                .with_context(|| format!("provider `{id}` has no --provider-secret {id}=SECRET"))?;
            providers.insert(
                id.to_owned(),
                ProviderConfig {
                    url: url.to_owned(),
                    secret: (*secret).to_owned(),
                },
            );
        }
        Ok(Webhooks {
            engine,
            providers,
            pull,
            base_url: self.base_url(),
            policy: self.policy(),
            timeout: Duration::from_secs(30),
        })
    }

    pub(crate) fn dispatcher(&self, engine: Arc<Engine>) -> anyhow::Result<Dispatcher> {
        let templates = match &self.templates {
            Some(dir) => Templates::with_overrides(dir).map_err(|errors| {
                anyhow::anyhow!(
                    "the templates in {} have errors:\n{}",
                    dir.display(),
                    errors
                        .iter()
                        .map(|e| format!("  {e}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            })?,
            None => Templates::builtin(),
        };
        let transport = match &self.smtp_host {
            None => Transport::Capture,
            Some(host) => Transport::smtp(&SmtpConfig {
                host: host.clone(),
                port: self.smtp_port,
                tls: self.smtp_tls,
                username: self.smtp_username.clone(),
                password: self.smtp_password.clone(),
                timeout: Duration::from_secs(30),
            })
            .map_err(|e| anyhow::anyhow!("SMTP settings: {e}"))?,
        };
        Ok(Dispatcher {
            engine,
            transport,
            templates: Arc::new(templates),
            from: self
                .mail_from
                .parse()
                .with_context(|| format!("--mail-from `{}` is not an address", self.mail_from))?,
            base_url: self.base_url(),
            policy: self.policy(),
            digest_hour: self.digest_hour,
        })
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum MailCommand {
    /// Messages, newest first.
    List {
        /// pending, sending, sent or dead.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// One message, with its rendered subject and text.
    Show { id: String },
    /// Retry a dead letter (its Message-ID is kept).
    Retry { id: String },
    /// Show or set how a person gets task emails: one per new task and reminder (the
    /// default), or one daily digest of their pending tasks (`--daily`).
    Digest {
        /// The person's address (a role member; no account needed).
        email: String,
        /// One email a day listing the pending tasks.
        #[arg(long, conflicts_with = "each")]
        daily: bool,
        /// Back to one email per new task and reminder.
        #[arg(long)]
        each: bool,
        /// The digest's language: fr or en.
        #[arg(long, value_parser = ["fr", "en"])]
        language: Option<String>,
    },
    /// Deliver the messages that are due now, once (what `serve` does every second).
    Dispatch {
        #[command(flatten)]
        options: MailOptions,
    },
}

pub(crate) async fn mail(e: Arc<Engine>, c: MailCommand) -> anyhow::Result<ExitCode> {
    match c {
        MailCommand::List { state, limit, json } => {
            let messages = e.outbox_messages(state.as_deref(), limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&messages)?);
            } else {
                for m in messages {
                    println!(
                        "{:<8} {:<7} {:<48} {}",
                        m.state,
                        m.kind,
                        m.id,
                        m.subject.or(m.last_error).unwrap_or_default()
                    );
                }
            }
        }
        MailCommand::Show { id } => {
            let m = e.outbox_message(&id).await?;
            println!(
                "Id: {}\nState: {} ({} attempt(s))",
                m.id, m.state, m.attempts
            );
            if let Some(mid) = &m.message_id {
                println!("Message-ID: {mid}");
            }
            if let Some(to) = &m.recipients {
                println!("To: {to}");
            }
            if let Some(err) = &m.last_error {
                println!("Last error: {err}");
            }
            if let Some(s) = &m.subject {
                println!("Subject: {s}");
            }
            if let Some(b) = &m.body {
                println!("\n{b}");
            }
        }
        MailCommand::Retry { id } => {
            e.outbox_retry_dead(&id, e.now()).await?;
            println!("{id} will be sent again");
        }
        MailCommand::Digest {
            email,
            daily,
            each,
            language,
        } => {
            let mut p = e.mail_preference(&email).await?;
            if daily || each || language.is_some() {
                let language = language
                    .as_deref()
                    .and_then(Language::from_code)
                    .unwrap_or(p.language);
                p = e
                    .set_mail_preference(
                        &email,
                        if daily || each { daily } else { p.digest },
                        language,
                    )
                    .await?;
            }
            println!(
                "{}: {} ({})",
                p.email,
                if p.digest {
                    "one daily digest of pending tasks"
                } else {
                    "an email per new task and reminder"
                },
                p.language.code()
            );
        }
        MailCommand::Dispatch { options } => {
            let r = options.dispatcher(e)?.run_once(10_000).await?;
            println!(
                "{} sent, {} to retry, {} dead ({})",
                r.sent,
                r.retried,
                r.dead,
                options.describe()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! The outbox dispatcher for emails: claims due messages, renders them, delivers them by SMTP
//! (or captures them in the database when no SMTP server is configured), and records the
//! result. Transient failures (connection refused, timeouts, 4xx replies) are retried with
//! exponential backoff and jitter; permanent ones (5xx replies, a role with nobody to write
//! to, a missing template) become dead letters. Each message keeps one Message-ID, derived
//! from its outbox id, on every attempt.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use guichet_definitions::model::{Language, Process};
use guichet_engine::Engine;
use guichet_engine::clock::Timestamp;
use guichet_engine::core::{Effect, Instance, Recipient};
use guichet_engine::runtime::TaskRow;
use guichet_engine::runtime::digest::{ClaimedDigest, Preference};
use guichet_engine::runtime::links::Link;
use guichet_engine::runtime::outbox::{Claimed, Outcome};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::delivery::{Failure, Report, RetryPolicy};
use crate::email::templates::{
    Context, DigestContext, DigestTask, Rendered, RequestRef, Templates,
};

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain SMTP (a relay on the same host or network).
    None,
    /// STARTTLS on the submission port (usually 587).
    StartTls,
    /// Implicit TLS (usually 465).
    Tls,
}

impl std::str::FromStr for TlsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(TlsMode::None),
            "starttls" => Ok(TlsMode::StartTls),
            "tls" => Ok(TlsMode::Tls),
            _ => Err(format!("`{s}` is not a TLS mode: none, starttls or tls")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The limit of one message's whole conversation with the server, connection included:
    /// a server that accepts and then never answers (or trickles) fails the message there.
    pub timeout: Duration,
}

/// Where messages go.
#[derive(Debug, Clone)]
pub enum Transport {
    /// No SMTP server: messages are kept in the database (`guichet mail list`).
    Capture,
    Smtp(Smtp),
}

/// An SMTP server, and what this process learned of it.
#[derive(Debug, Clone)]
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    deadline: Duration,
    /// Until when the server counts as silent: set when a conversation outlives its
    /// deadline, so that the other messages of the pass are retried later at once instead
    /// of each waiting out the deadline (and their leases) on a server that does not answer.
    silent_until: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

impl Smtp {
    async fn send(&self, message: Message, to: &str) -> Result<(), Failure> {
        let silent = *self
            .silent_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if silent.is_some_and(|until| std::time::Instant::now() < until) {
            return Err(Failure::Transient(format!(
                "SMTP: the server left a conversation unanswered for {} s a moment ago; not tried again before the next pass",
                self.deadline.as_secs()
            )));
        }
        match tokio::time::timeout(self.deadline, self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.is_permanent() => Err(Failure::Permanent(format!(
                "refused by the SMTP server for {to}: {e}"
            ))),
            Ok(Err(e)) => Err(Failure::Transient(format!("SMTP: {e}"))),
            Err(_) => {
                *self
                    .silent_until
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(std::time::Instant::now() + self.deadline);
                Err(Failure::Transient(format!(
                    "SMTP: the server did not finish the conversation within {} s (it accepted the connection, then did not answer in time); the message is retried",
                    self.deadline.as_secs()
                )))
            }
        }
    }
}

impl Transport {
    pub fn smtp(c: &SmtpConfig) -> Result<Transport, String> {
        let builder = match c.tls {
            TlsMode::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.host),
            TlsMode::StartTls => {
                let params = TlsParameters::new(c.host.clone()).map_err(|e| e.to_string())?;
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.host)
                    .tls(Tls::Required(params))
            }
            TlsMode::Tls => {
                let params = TlsParameters::new(c.host.clone()).map_err(|e| e.to_string())?;
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.host)
                    .tls(Tls::Wrapper(params))
            }
        };
        let mut builder = builder.port(c.port).timeout(Some(c.timeout));
        if let (Some(u), Some(p)) = (&c.username, &c.password) {
            builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
        }
        Ok(Transport::Smtp(Smtp {
            transport: builder.build(),
            deadline: c.timeout,
            silent_until: Arc::default(),
        }))
    }
}

#[derive(Debug)]
pub struct Dispatcher {
    pub engine: Arc<Engine>,
    pub transport: Transport,
    pub templates: Arc<Templates>,
    pub from: Mailbox,
    /// Where links in emails point (the web server's public address).
    pub base_url: String,
    pub policy: RetryPolicy,
    /// The hour (Paris time) at which daily digests are queued.
    pub digest_hour: u8,
}

/// The hour daily digests are queued at, unless configured.
pub const DIGEST_HOUR: u8 = 8;

/// How many tasks a digest lists (the most urgent; it says how many there are in all).
pub const DIGEST_TASKS: i64 = 50;

/// Whether an email may wait for the daily digest of a recipient who asked for one: a new
/// task offered to a role, and reminders. Passed deadlines, escalations, reassignments and a
/// fresh link someone asked for go out at once.
pub fn digestible(template: &str, to: &Recipient) -> bool {
    match template {
        "tache-assignee" => matches!(to, Recipient::Role(_)),
        "tache-rappel" => true,
        _ => false,
    }
}

/// The language of a letter to `recipient`: the one they chose on their preferences page;
/// else, for the request's sponsor, the one they wrote the request in; else the desk's.
fn language(
    process: &Process,
    inst: &guichet_engine::core::Instance,
    recipient: &str,
    preference: Option<&guichet_engine::runtime::digest::Preference>,
) -> Language {
    if let Some(p) = preference {
        return p.language;
    }
    match inst.language {
        Some(l) if guichet_engine::core::dossier::is_sponsor(process, inst, recipient) => l,
        _ => process.language,
    }
}

/// A claimed message made ready to go: a letter for each recipient not held for their
/// daily digest, the links the letters carry, and to whom it goes (in the recipients'
/// order, those held named so).
struct Ready {
    letters: Vec<Letter>,
    links: Vec<Link>,
    sent_to: Vec<String>,
}

/// What a pass read for all its messages ([`Dispatcher::run_once`]).
struct PassRead {
    /// The requests' states, by id.
    states: HashMap<String, Instance>,
    /// Their tasks, by request and number.
    tasks: HashMap<(String, i64), TaskRow>,
    /// The preferences of the recipients who may get a digest, by address in lower case.
    preferences: HashMap<String, Preference>,
}

/// One email of a message, to one address.
struct Letter {
    to: String,
    message_id: String,
    rendered: Rendered,
}

impl Dispatcher {
    /// Claims the due email messages (at most `limit`, and as many digests) and delivers
    /// them, [`CONCURRENT_DELIVERIES`] at a time; returns what happened. The pass writes
    /// the claims, the links of all its emails (before any goes out: nobody gets a link that
    /// does not work yet), and what became of the messages as their results come in
    /// (`Dispatcher::settle_all`).
    pub async fn run_once(&self, limit: i64) -> Result<Report, guichet_engine::Error> {
        use futures_util::StreamExt as _;
        let now = self.engine.now();
        let mut report = Report::default();
        self.engine.queue_digests(now, self.digest_hour).await?;
        let claimed = self
            .engine
            .claim_outbox(now, self.policy.lease_ms, limit, "email")
            .await?;
        let read = &self.read(&claimed).await?;
        let mut ready: Vec<_> = futures_util::stream::iter(claimed)
            .map(|m| async move {
                let ready = self.ready(&m, read).await;
                (m, ready)
            })
            .buffer_unordered(CONCURRENT_DELIVERIES)
            .collect()
            .await;
        let links: Vec<Link> = ready
            .iter_mut()
            .filter_map(|(_, r)| r.as_mut().ok())
            .flat_map(|r| std::mem::take(&mut r.links))
            .collect();
        self.engine.record_links(&links).await?;
        let delivered = ready.into_iter().map(|(m, ready)| async move {
            let outcome = match ready {
                Ok(ready) => self.send_all(ready).await,
                Err(failure) => Err(failure),
            };
            ((m.id, m.attempt), outcome)
        });
        self.settle_all(delivered, now, &mut report).await?;
        let claimed = self
            .engine
            .claim_digests(now, self.policy.lease_ms, limit)
            .await?;
        let deliveries = claimed.into_iter().map(|d| async move {
            let result = self.deliver_digest(&d).await;
            ((d.id, d.attempt), result)
        });
        self.settle_all(deliveries, now, &mut report).await?;
        Ok(report)
    }

    /// Runs deliveries [`CONCURRENT_DELIVERIES`] at a time (each mostly waits for the SMTP
    /// server) and records what became of each as soon as it is known: the results that
    /// came in together in one transaction, while the others go on. A crash then sends
    /// again only the messages whose results were not yet written (at most those in
    /// flight), not the whole pass.
    async fn settle_all(
        &self,
        deliveries: impl Iterator<
            Item = impl Future<Output = ((String, i64), Result<Outcome, Failure>)>,
        >,
        now: Timestamp,
        report: &mut Report,
    ) -> Result<(), guichet_engine::Error> {
        use futures_util::StreamExt as _;
        let mut delivered = std::pin::pin!(
            futures_util::stream::iter(deliveries)
                .buffer_unordered(CONCURRENT_DELIVERIES)
                .ready_chunks(CONCURRENT_DELIVERIES)
        );
        while let Some(chunk) = delivered.next().await {
            let settled: Vec<_> = chunk
                .into_iter()
                .map(|((id, attempt), result)| {
                    let outcome = match result {
                        Ok(sent) => {
                            report.sent += 1;
                            sent
                        }
                        Err(failure) => crate::delivery::failed(
                            &self.policy,
                            attempt,
                            &id,
                            failure,
                            now,
                            report,
                        ),
                    };
                    (id, attempt, outcome)
                })
                .collect();
            self.engine
                .outbox_settle(&settled, self.engine.now())
                .await?;
        }
        Ok(())
    }

    /// The stable Message-ID of an outbox message.
    pub fn message_id(&self, outbox_id: &str) -> String {
        let domain = self.from.email.domain();
        format!("<{outbox_id}@{domain}>")
    }

    /// What the pass's messages need, read once for them all: their requests, those
    /// requests' tasks, and the mail preferences of their recipients (a digest, a language).
    async fn read(&self, claimed: &[Claimed]) -> Result<PassRead, guichet_engine::Error> {
        let mut ids: Vec<&str> = claimed.iter().map(|m| m.instance.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let states = self.engine.instances(&ids).await?;
        let with_task = claimed
            .iter()
            .any(|m| matches!(&m.effect, Effect::Email { task: Some(_), .. }));
        let tasks = if with_task {
            self.engine.tasks_of(&ids).await?
        } else {
            HashMap::new()
        };
        let mut emails = Vec::new();
        for m in claimed {
            if let Effect::Email { to, .. } = &m.effect
                && let Some(inst) = states.get(&m.instance)
            {
                let process = self.engine.process_of(&m.instance).await?;
                emails.extend(guichet_engine::core::recipients(&process, inst, to));
            }
        }
        let emails: Vec<&str> = emails.iter().map(String::as_str).collect();
        let preferences = self.engine.mail_preferences(&emails).await?;
        Ok(PassRead {
            states,
            tasks,
            preferences,
        })
    }

    /// Renders a claimed message's letters from what the pass read.
    async fn ready(&self, m: &Claimed, read: &PassRead) -> Result<Ready, Failure> {
        let Effect::Email { template, to, task } = &m.effect else {
            return Err(Failure::Permanent("not an email".into()));
        };
        let db = |e: guichet_engine::Error| Failure::Transient(format!("database: {e}"));
        let inst = read
            .states
            .get(&m.instance)
            .ok_or_else(|| Failure::Transient(format!("no request {}", m.instance)))?;
        let process = self.engine.process_of(&m.instance).await.map_err(db)?;
        let recipients = guichet_engine::core::recipients(&process, inst, to);
        if recipients.is_empty() {
            return Err(Failure::Permanent(format!(
                "nobody to write to for {to:?}: add members to the role"
            )));
        }
        let task_row = task.and_then(|seq| {
            read.tasks
                .get(&(m.instance.clone(), i64::from(seq)))
                .cloned()
        });
        let domain = self.from.email.domain().to_owned();
        let now = self.engine.now();
        let ttl = if task.is_some() {
            self.policy.task_link_ttl_ms
        } else {
            self.policy.status_link_ttl_ms
        };
        let mut ready = Ready {
            letters: Vec::new(),
            links: Vec::new(),
            sent_to: Vec::new(),
        };
        for (i, r) in recipients.iter().enumerate() {
            let preference = read.preferences.get(&r.trim().to_lowercase());
            if digestible(template, to) && preference.is_some_and(|p| p.digest) {
                // Held for this person's daily digest; the others still get theirs now.
                ready.sent_to.push(format!("{r} (daily digest)"));
                continue;
            }
            // One message per recipient: each carries a link of their own.
            let link = self
                .engine
                .link_for(&m.instance, *task, r, &m.id, Timestamp(now.0 + ttl))
                .await
                .map_err(db)?;
            let url = format!("{}/l/{}", self.base_url.trim_end_matches('/'), link.token);
            let lang = language(&process, inst, r, preference);
            // The desk's texts (its title, the step's) in the letter's language when the
            // definition translates them.
            let ctx = context(
                process.in_language(lang),
                &m.instance,
                inst,
                to,
                task_row.as_ref(),
                url,
                lang,
            );
            let rendered = self
                .templates
                .render(template, lang, &ctx)
                .map_err(|e| Failure::Permanent(e.to_string()))?;
            let message_id = if recipients.len() == 1 {
                format!("<{}@{domain}>", m.id)
            } else {
                format!("<{}.{i}@{domain}>", m.id)
            };
            ready.links.push(link);
            ready.sent_to.push(r.clone());
            ready.letters.push(Letter {
                to: r.clone(),
                message_id,
                rendered,
            });
        }
        Ok(ready)
    }

    /// Sends a message's letters; what to record of it.
    async fn send_all(&self, ready: Ready) -> Result<Outcome, Failure> {
        for letter in &ready.letters {
            self.send(&letter.message_id, &letter.to, &letter.rendered)
                .await?;
        }
        let message_id = ready
            .letters
            .iter()
            .map(|l| l.message_id.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let (subject, body) = ready.letters.into_iter().next().map_or_else(
            || {
                (
                    String::new(),
                    "Held for the recipients' daily digest.".to_owned(),
                )
            },
            |l| (l.rendered.subject, l.rendered.text),
        );
        Ok(Outcome::Sent {
            message_id,
            recipients: ready.sent_to.join(", "),
            subject,
            body: self.kept(body),
            captured: self.captures(),
        })
    }

    /// Writes and sends a person's daily digest, from their inbox as it is now.
    async fn deliver_digest(&self, d: &ClaimedDigest) -> Result<Outcome, Failure> {
        let db = |e: guichet_engine::Error| Failure::Transient(format!("database: {e}"));
        let email = &d.digest.email;
        let now = self.engine.now();
        let inbox = self.engine.inbox(email, DIGEST_TASKS).await.map_err(db)?;
        if inbox.items.is_empty() {
            // Everything was done since the digest was queued.
            return Ok(Outcome::Sent {
                message_id: String::new(),
                recipients: email.clone(),
                subject: String::new(),
                body: "Nothing was pending any more.".into(),
                captured: self.captures(),
            });
        }
        let language = self
            .engine
            .mail_preference(email)
            .await
            .map_err(db)?
            .language;
        let desks = self.engine.desks().await.map_err(db)?;
        let base = self.base_url.trim_end_matches('/');
        let mut tasks = Vec::new();
        let mut links = Vec::new();
        for item in &inbox.items {
            let t = &item.task;
            let seq = u32::try_from(t.seq)
                .map_err(|_| Failure::Permanent(format!("task {} out of range", t.seq)))?;
            let link = self
                .engine
                .link_for(
                    &t.instance,
                    Some(seq),
                    email,
                    &d.id,
                    Timestamp(now.0 + self.policy.task_link_ttl_ms),
                )
                .await
                .map_err(db)?;
            let desk = desks.get(&item.desk).map(|p| p.in_language(language));
            tasks.push(DigestTask {
                desk: desk.map_or_else(|| item.desk.clone(), |p| p.title.clone()),
                request: RequestRef {
                    title: crate::email::templates::defang(&item.title),
                    reference: guichet_engine::core::reference(&t.instance),
                },
                step: desk
                    .and_then(|p| p.step(&t.step))
                    .map_or_else(|| item.step_title.clone(), |s| s.display_name().to_owned()),
                deadline: t
                    .due_at
                    .map(|at| format_date(Timestamp(at), language))
                    .unwrap_or_default(),
                role: desk
                    .and_then(|p| role_title(p, &t.role))
                    .unwrap_or_else(|| t.role.clone()),
                link: format!("{base}/l/{}", link.token),
                overdue: t.overdue,
            });
            links.push(link);
        }
        let ctx = DigestContext {
            count: inbox.total,
            more_than: inbox.more_than,
            several: inbox.total > 1 || inbox.more_than,
            shown: tasks.len(),
            truncated: tasks.len() < inbox.total || inbox.more_than,
            tasks,
            inbox: format!("{base}/inbox"),
            preferences: format!("{base}/preferences"),
        };
        let rendered = self
            .templates
            .render_digest(language, &ctx)
            .map_err(|e| Failure::Permanent(e.to_string()))?;
        self.engine.record_links(&links).await.map_err(db)?;
        let message_id = self.message_id(&d.id);
        self.send(&message_id, email, &rendered).await?;
        Ok(Outcome::Sent {
            message_id,
            recipients: email.clone(),
            subject: rendered.subject,
            body: self.kept(rendered.text),
            captured: self.captures(),
        })
    }

    /// The text of a message as the outbox keeps it: a sent message's links without their
    /// tokens (only their hashes are kept, in `links`: whoever reads the outbox cannot act
    /// with them); a captured message whole, since reading it is how its link is delivered.
    fn kept(&self, text: String) -> String {
        if self.captures() {
            text
        } else {
            redact_link_tokens(&text)
        }
    }

    /// Whether messages are only recorded (no SMTP server configured).
    fn captures(&self) -> bool {
        matches!(self.transport, Transport::Capture)
    }

    /// Builds and sends one message to one address (captured messages are only recorded).
    async fn send(&self, message_id: &str, to: &str, rendered: &Rendered) -> Result<(), Failure> {
        let mailbox: Mailbox = to
            .parse()
            .map_err(|e| Failure::Permanent(format!("`{to}` is not an address: {e}")))?;
        let message = Message::builder()
            .message_id(Some(message_id.to_owned()))
            .from(self.from.clone())
            .to(mailbox)
            .subject(rendered.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                rendered.text.clone(),
                rendered.html.clone(),
            ))
            .map_err(|e| Failure::Permanent(format!("cannot build the message: {e}")))?;
        match &self.transport {
            Transport::Smtp(smtp) => smtp.send(message, to).await,
            Transport::Capture => Ok(()),
        }
    }

    /// Runs passes until `stop` resolves: the next pass at once after a full one (a backlog
    /// is worked through without waiting), else after `interval`. Each pass's outcome goes to
    /// `passed`; one that failed (the database restarting, say) is tried again after
    /// `interval`: the work stays in the outbox.
    pub async fn run(
        &self,
        interval: Duration,
        stop: impl std::future::Future<Output = ()>,
        mut passed: impl FnMut(Result<Report, guichet_engine::Error>),
    ) {
        tokio::pin!(stop);
        loop {
            let pass = self.run_once(PASS);
            tokio::pin!(pass);
            let r = tokio::select! {
                r = &mut pass => r,
                () = &mut stop => {
                    // Stopping: the pass under way may finish for a while; then it is
                    // abandoned, and what it claimed is taken again when its lease ends.
                    match tokio::time::timeout(STOP_GRACE, pass).await {
                        Ok(r) => passed(r),
                        Err(_) => tracing::warn!(
                            grace_s = STOP_GRACE.as_secs(),
                            "stopping: the email pass under way did not finish in time and was abandoned; its messages are sent again after their lease (same Message-ID)"
                        ),
                    }
                    return;
                }
            };
            let full = matches!(&r, Ok(r) if r.sent + r.retried + r.dead >= PASS as usize);
            passed(r);
            if full {
                // Let the stop signal in between two full passes.
                tokio::select! {
                    biased;
                    () = &mut stop => return,
                    () = std::future::ready(()) => {}
                }
                continue;
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}

/// `.../l/TOKEN` written `.../l/…`: a link token is 43 characters of base64url.
pub fn redact_link_tokens(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("/l/") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let token_len = after
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
            .count();
        if token_len == 43 {
            out.push('…');
            rest = &after[token_len..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Messages claimed by one pass of [`Dispatcher::run`].
pub const PASS: i64 = 100;

/// How long a stopping [`Dispatcher::run`] lets the pass under way finish.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Deliveries in flight at once in a pass (as many SMTP connections at most).
pub const CONCURRENT_DELIVERIES: usize = 8;

/// What a template may see: the desk, the request's title and reference, the step, the
/// deadline (written as `language` writes dates), the role and the link. Nothing else of
/// the request's data.
pub fn context(
    p: &Process,
    id: &str,
    inst: &Instance,
    to: &Recipient,
    task: Option<&guichet_engine::runtime::TaskRow>,
    link: String,
    language: Language,
) -> Context {
    let title = guichet_engine::core::request_title(p, inst);
    let reference = guichet_engine::core::reference(id);
    let (step, deadline) = match task {
        Some(t) => (
            p.step(&t.step)
                .map(|s| s.display_name().to_owned())
                .unwrap_or_else(|| t.step.clone()),
            t.due_at
                .map(|d| format_date(Timestamp(d), language))
                .unwrap_or_default(),
        ),
        None => (String::new(), String::new()),
    };
    let role = match to {
        Recipient::Role(r) => role_title(p, r).unwrap_or_else(|| r.clone()),
        Recipient::Person(_) => task
            .and_then(|t| role_title(p, &t.role))
            .unwrap_or_default(),
    };
    Context {
        desk: p.title.clone(),
        request: RequestRef {
            title: crate::email::templates::defang(&title),
            reference,
        },
        step,
        deadline,
        role,
        link,
    }
}

/// A role of the process as people read it: its title, or its id; none if it has no such role.
fn role_title(p: &Process, id: &str) -> Option<String> {
    p.role(id)
        .map(|r| r.title.clone().unwrap_or_else(|| r.id.clone()))
}

fn format_date(t: Timestamp, lang: Language) -> String {
    let d = t.in_paris();
    match lang {
        Language::Fr => format!("{:02}/{:02}/{}", d.day(), d.month() as u8, d.year()),
        Language::En => format!("{}-{:02}-{:02}", d.year(), d.month() as u8, d.day()),
    }
}

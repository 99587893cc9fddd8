//! The commands that work on the database through the engine: deploy, requests, tasks,
//! events, timers, audit, and `serve`.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use guichet_definitions::{diagnostic, models};
use guichet_engine::clock::SystemClock;
use guichet_engine::core::Fields;
use guichet_engine::error::Kind;
use guichet_engine::runtime::tokens::{NewToken, Scopes};
use guichet_engine::{Engine, Error};

#[derive(Debug, Subcommand)]
pub(crate) enum TimersCommand {
    /// Fire every timer due now.
    Fire,
}

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Create a staff account, or set its password (12 characters or more): asked at the
    /// terminal without echo, or read from GUICHET_PASSWORD, or from the first line of
    /// standard input when it is not a terminal. A new password ends the account's sessions
    /// and API tokens; an administrator stays one.
    Add {
        email: String,
        /// Make the account an administrator (the administration pages at /admin); without
        /// it, an existing account keeps the right it has.
        #[arg(long)]
        admin: bool,
    },
    /// Disable an account: it cannot sign in, and its sessions and API tokens end. Its roles
    /// stay as the deployed definitions give them.
    Disable { email: String },
    /// Enable a disabled account again (with its password as it was).
    Enable { email: String },
}

/// The new password: asked twice at the terminal without echo, or else the first line of
/// standard input (a script's pipe).
fn read_password(email: &str) -> anyhow::Result<String> {
    use std::io::IsTerminal as _;
    if !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    let first =
        rpassword::prompt_password(format!("Password for {email} (12 characters or more): "))
            .context("cannot read the password at the terminal")?;
    let again = rpassword::prompt_password("The same password again: ")
        .context("cannot read the password at the terminal")?;
    if first != again {
        return Err(wrong("the two passwords differ; nothing was changed"));
    }
    Ok(first)
}

pub(crate) async fn user(e: Arc<Engine>, c: UserCommand) -> anyhow::Result<ExitCode> {
    let disable = matches!(c, UserCommand::Disable { .. });
    let (email, admin) = match c {
        UserCommand::Add { email, admin } => (email, admin),
        UserCommand::Disable { email } | UserCommand::Enable { email } => {
            if !e.set_disabled(&email, disable).await? {
                return Err(Error::NotFound(format!("staff account {email}")).into());
            }
            println!(
                "{email}: {}",
                if disable {
                    "disabled; its sessions and API tokens have ended"
                } else {
                    "enabled"
                }
            );
            return Ok(ExitCode::SUCCESS);
        }
    };
    let password = match std::env::var("GUICHET_PASSWORD") {
        Ok(p) => p,
        Err(_) => read_password(&email)?,
    };
    e.set_password(&email, &password).await?;
    if admin {
        e.set_admin(&email, true).await?;
    }
    let admin = e
        .users()
        .await?
        .into_iter()
        .any(|u| u.admin && u.email == email.trim().to_lowercase());
    let roles = e.roles_of(&email).await?;
    let roles: Vec<String> = roles.iter().map(|(d, r)| format!("{r} ({d})")).collect();
    println!(
        "{email}: account ready{}; roles from the deployed desks: {}",
        if admin { ", administrator" } else { "" },
        if roles.is_empty() {
            "none yet".to_owned()
        } else {
            roles.join(", ")
        }
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Issue an API token acting as a staff account (its roles, or administration); the
    /// token is printed once, only its hash is kept.
    Create {
        /// The staff account the token acts as.
        #[arg(required_unless_present = "provider")]
        email: Option<String>,
        /// Instead, a provider that pulls its work (fetch-and-lock): the token acts as the
        /// service account `provider:ID`.
        #[arg(long, conflicts_with = "email")]
        provider: Option<String>,
        /// What the token is for, shown in listings.
        #[arg(long, default_value = "")]
        name: String,
        /// What it may do, whatever its account may: `read`, `submit` (new requests), `act`
        /// (tasks, answers, withdrawals, a provider's work), `deploy` (definitions, for an
        /// administrator's token; never by default), several with commas.
        #[arg(long, default_value = "read,submit,act")]
        scope: String,
        /// How many days it lasts (1 to 3650), or `never` (until revoked).
        #[arg(long, default_value = "90")]
        expires: String,
    },
    /// The tokens: prefix, account, name, scopes, dates (never the tokens themselves).
    List,
    /// Revoke a token by its prefix (the first 12 characters, as listed).
    Revoke { prefix: String },
}

pub(crate) async fn token(e: Arc<Engine>, c: TokenCommand) -> anyhow::Result<ExitCode> {
    match c {
        TokenCommand::Create {
            email,
            provider,
            name,
            scope,
            expires,
        } => {
            let days = match expires.as_str() {
                "never" => None,
                days => Some(days.parse::<i64>().map_err(|_| {
                    wrong(format!(
                        "--expires takes a number of days or `never`, not `{days}`"
                    ))
                })?),
            };
            let new = NewToken {
                name,
                scopes: Scopes::parse(&scope)?,
                days,
            };
            let (token, who) = match (email, provider) {
                (_, Some(p)) => (
                    e.create_provider_token(&p, new).await?,
                    format!("provider {p}"),
                ),
                (Some(email), None) => (e.issue_api_token(&email, new).await?, email),
                (None, None) => {
                    return Err(wrong("give the account's email or --provider ID"));
                }
            };
            println!("{token}");
            eprintln!(
                "API token for {who}: send it as `Authorization: Bearer <token>`; it is shown only now"
            );
        }
        TokenCommand::List => {
            let day = |t: Option<i64>| {
                t.map(|t| {
                    guichet_engine::clock::Timestamp(t)
                        .to_datetime()
                        .date()
                        .to_string()
                })
                .unwrap_or_else(|| "-".to_owned())
            };
            for t in e.api_tokens().await? {
                println!(
                    "{}  {}  {}  {}  created {}  expires {}  last used {}{}",
                    t.prefix,
                    t.email,
                    if t.name.is_empty() { "-" } else { &t.name },
                    t.scopes,
                    day(Some(t.created_at)),
                    t.expires_at
                        .map_or_else(|| "never".to_owned(), |at| day(Some(at))),
                    day(t.last_used_at),
                    t.revoked_at
                        .map(|r| format!("  revoked {}", day(Some(r))))
                        .unwrap_or_default()
                );
            }
        }
        TokenCommand::Revoke { prefix } => {
            if e.revoke_api_token(&prefix).await? == 0 {
                return Err(wrong(format!(
                    "no active token has the prefix {prefix} (see `guichet token list`)"
                )));
            }
            println!("{prefix}: revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Recompute every request's hash chain; name the first broken link (exit 1).
    Verify,
}

/// Opens the engine and runs one command on it; errors are printed once, with exit code 2
/// for failures to run and 1 for refusals.
pub(crate) fn run<F, Fut>(url: &str, f: F) -> ExitCode
where
    F: FnOnce(Arc<Engine>) -> Fut,
    Fut: Future<Output = anyhow::Result<ExitCode>>,
{
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let engine = match Engine::open(url, Arc::new(SystemClock)).await {
            Ok(e) => Arc::new(match DOCUMENTS.get().cloned().flatten() {
                Some(dir) => e.with_documents(dir),
                None => e,
            }),
            Err(e) => {
                eprintln!("guichet: cannot open the database {url}: {e}");
                return ExitCode::from(2);
            }
        };
        let code = match f(engine.clone()).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("guichet: {e:#}");
                // 1: the command was refused or its input is wrong; 2: it could not run.
                match e.downcast_ref::<Error>().map(Error::kind) {
                    Some(Kind::Internal | Kind::Unavailable) | None => ExitCode::from(2),
                    Some(Kind::Invalid | Kind::Refused | Kind::NotFound) => ExitCode::from(1),
                }
            }
        };
        engine.store().close().await;
        code
    })
}

/// The multi-threaded runtime (one worker per core): `serve` answers pages, runs commands and
/// delivers messages on every core, not one (a single-threaded runtime held the inbox
/// benchmark to one core for the HTTP side).
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("guichet: cannot start the runtime: {e}");
            ExitCode::from(2)
        })
}

/// Runs a command that needs no database.
pub(crate) fn run_without_database(f: impl Future<Output = anyhow::Result<ExitCode>>) -> ExitCode {
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(f) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("guichet: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `id=value` pairs; a value that parses as JSON (a number, true, false) is taken as such.
/// Where documents are kept when `--documents` says (read by [`run`] as it opens the engine).
static DOCUMENTS: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();

/// Keeps documents in `dir` rather than beside the database, for the engine [`run`] opens.
pub(crate) fn documents_in(dir: Option<PathBuf>) {
    let _ = DOCUMENTS.set(dir);
}

/// A wrong argument: the command exits 1 with `message` (which says what to give instead).
pub(crate) fn wrong(message: impl Into<String>) -> anyhow::Error {
    Error::Invalid(message.into()).into()
}

/// `--field id=value` arguments as field values; values that read as JSON numbers or
/// booleans are those.
pub(crate) fn parse_fields(pairs: &[String]) -> anyhow::Result<Fields> {
    let mut out = Fields::new();
    for pair in pairs {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(wrong(format!(
                "`{pair}` is not id=value (--field titre=\"Étude\")"
            )));
        };
        let value = match serde_json::from_str::<serde_json::Value>(v) {
            Ok(j @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => j,
            _ => serde_json::Value::String(v.to_owned()),
        };
        out.insert(k.to_owned(), value);
    }
    Ok(out)
}

pub(crate) async fn deploy(e: Arc<Engine>, files: Vec<PathBuf>) -> anyhow::Result<ExitCode> {
    let mut code = ExitCode::SUCCESS;
    for file in files {
        let source = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        match e.deploy(&source).await {
            Ok(d) => println!(
                "{}: {} revision {} (version {}){}",
                file.display(),
                d.name,
                d.revision,
                d.version,
                if d.new { "" } else { ", already deployed" }
            ),
            Err(Error::Definition(diags)) => {
                eprint!(
                    "{}",
                    diagnostic::render(&diags, &file.display().to_string(), &source, false)
                );
                eprintln!("{}: not deployed", file.display());
                code = ExitCode::from(1);
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(code)
}

pub(crate) async fn serve(
    e: Arc<Engine>,
    once: bool,
    listen: String,
    max_in_flight: usize,
    limits: guichet_web::LimitSettings,
    no_email: bool,
    mail: crate::mail::MailOptions,
) -> anyhow::Result<ExitCode> {
    println!(
        "guichet {}: database {:?}",
        env!("CARGO_PKG_VERSION"),
        e.backend()
    );
    for (_, source) in models::ALL {
        let d = e.deploy(source).await?;
        println!(
            "  desk {:<28} revision {} (version {})",
            d.name, d.revision, d.version
        );
    }
    if e.user_count().await? == 0 {
        // First start: an administrator account, whose password is shown once.
        let mut bytes = [0u8; 12];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let password = hex::encode(bytes);
        e.set_user("admin@localhost", &password, true).await?;
        println!(
            "  first start: administrator admin@localhost, password {password} (change it with `guichet user add`)"
        );
    }
    if once {
        // The configuration is checked all the same.
        mail.dispatcher(e.clone())?;
        mail.webhooks(e.clone())?;
        return Ok(ExitCode::SUCCESS);
    }
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (set --listen or GUICHET_LISTEN)"))?;
    let local = listener.local_addr()?;
    let address = local.to_string();
    let mut mail = mail;
    if let Some(warning) = mail.default_base_url(local) {
        tracing::warn!("{warning}");
        println!("  warning: {warning}");
    }
    let dispatcher = mail.dispatcher(e.clone())?;
    let webhooks = Arc::new(mail.webhooks(e.clone())?);
    // Announced before any claim, so that what this node claims is known as its own; what a
    // predecessor of this host held when it died is taken again at once.
    let dead = e.join_nodes().await?;
    if dead > 0 {
        tracing::info!(
            dead,
            "a previous node of this host stopped without finishing: the emails and webhooks it held are sent again now"
        );
    }
    let stop = Arc::new(tokio::sync::Notify::new());
    let state = guichet_web::AppState {
        engine: e.clone(),
        webhooks: (!webhooks.providers.is_empty() || !webhooks.pull.is_empty())
            .then(|| webhooks.clone()),
        secure_cookies: mail.base_url().starts_with("https://"),
        digest_hour: mail.digest_hour(),
        max_in_flight,
        limits: guichet_web::Limits::new(&limits),
    };
    let server = {
        let stop = stop.clone();
        tokio::spawn(guichet_web::serve(listener, state, async move {
            stop.notified().await
        }))
    };
    println!(
        "Listening on http://{address}/ ; emails: {}. Ctrl-C to stop.",
        if no_email {
            "none sent by this node (--no-email)".to_owned()
        } else {
            mail.describe()
        }
    );
    // Emails on a task of their own: a backlog (thousands of task emails after a burst of
    // requests) is worked through pass after pass, without holding up the timers.
    let (stop_mail, mail_stopped) = tokio::sync::watch::channel(false);
    let mailer = tokio::spawn(async move {
        if no_email {
            return;
        }
        let mut mail_stopped = mail_stopped;
        let stop = async move {
            let _ = mail_stopped.wait_for(|stopped| *stopped).await;
        };
        let engine = dispatcher.engine.clone();
        dispatcher
            .run(std::time::Duration::from_secs(1), stop, |r| {
                engine.worker_passed("email", r.is_ok());
                match r {
                Ok(r) if r.dead > 0 => tracing::warn!(
                    sent = r.sent, retried = r.retried, dead = r.dead,
                    "emails could not be delivered and became dead letters: see them with `guichet mail list --state dead` or at /admin/outbox, fix the cause (the address, the template, the SMTP server) and retry them from there"
                ),
                Ok(r) if r.sent + r.retried > 0 => {
                    tracing::info!(sent = r.sent, retried = r.retried, "emails");
                }
                Ok(_) => {}
                Err(err) => tracing::error!(error = %err, "sending emails failed; will retry"),
            }})
            .await;
    });
    // The heartbeat on a task of its own, so that a long pass elsewhere never makes this
    // node look dead to the others.
    let heart = {
        let e = e.clone();
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(
                    guichet_engine::runtime::nodes::BEAT_EVERY_MS,
                ))
                .await;
                let beat = e.heartbeat().await;
                if let Err(err) = &beat
                    && !failing
                {
                    tracing::error!(error = %err, "writing this node's heartbeat failed; other nodes take over its emails after 15 s; will retry");
                }
                failing = beat.is_err();
                e.worker_passed("heartbeat", beat.is_ok());
            }
        })
    };
    let stopping = shutdown_signal();
    tokio::pin!(stopping);
    loop {
        tokio::select! {
            () = &mut stopping => break,
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {
                // A pass that fails (the database restarting, say) is logged and tried again
                // at the next tick: the work stays in the database.
                let timers = e.fire_due_timers(1_000).await;
                e.worker_passed("timers", timers.is_ok());
                match timers {
                    Ok(0) => {}
                    Ok(fired) => tracing::info!(fired, "timers fired"),
                    Err(err) => tracing::error!(error = %err, "firing timers failed; will retry"),
                }
                // At most a batch's worth a pass, a few hundred per transaction.
                let most = usize::try_from(guichet_engine::indicators::rollup::FOLD_BATCH).unwrap_or(2_000);
                let folded = e.fold_some_indicators(most).await;
                e.worker_passed("indicators", folded.is_ok());
                match folded {
                    Ok(0) => {}
                    Ok(folded) => tracing::debug!(folded, "indicators folded"),
                    Err(err) => tracing::error!(error = %err, "folding the indicators failed; will retry"),
                }
                let sent = webhooks.run_once(100).await;
                e.worker_passed("webhooks", sent.is_ok());
                match sent {
                    Ok(r) if r.dead > 0 => tracing::warn!(
                        sent = r.sent, retried = r.retried, dead = r.dead,
                        "webhooks to providers became dead letters: check the provider's address and secret (--provider, --provider-secret; docs/providers.md), then retry them at /admin/outbox"
                    ),
                    Ok(r) if r.sent + r.retried > 0 => {
                        tracing::info!(sent = r.sent, retried = r.retried, "webhooks");
                    }
                    Ok(_) => {}
                    Err(err) => tracing::error!(error = %err, "sending webhooks failed; will retry"),
                }
            }
        }
    }
    // Stop taking requests, let those in flight finish.
    tracing::info!("stopping: no new connections, finishing the requests in flight");
    stop.notify_one();
    let _ = stop_mail.send(true);
    server.await??;
    mailer.await?;
    heart.abort();
    if let Err(err) = e.leave_nodes().await {
        tracing::warn!(error = %err, "could not record this node's stop; the others take over what it held after 15 s");
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Resolves at Ctrl-C (SIGINT) or SIGTERM, what service managers send to stop a process.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub(crate) async fn timers(e: Arc<Engine>, c: TimersCommand) -> anyhow::Result<ExitCode> {
    let TimersCommand::Fire = c;
    println!("fired {} timer(s)", e.fire_due_timers(10_000).await?);
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn audit(e: Arc<Engine>, c: AuditCommand) -> anyhow::Result<ExitCode> {
    let AuditCommand::Verify = c;
    let report = e.verify_audit().await?;
    match report.broken {
        None => {
            println!(
                "history intact: {} request(s), {} event(s)",
                report.instances, report.events
            );
            Ok(ExitCode::SUCCESS)
        }
        Some((instance, seq, why)) => {
            println!("history BROKEN at request {instance}, entry {seq}: {why}");
            Ok(ExitCode::from(1))
        }
    }
}

/// CPU time of this process so far (user + system), from /proc; `None` elsewhere.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Peak resident memory of this process, in MiB, from /proc.
fn peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

pub(crate) async fn bench(
    e: Arc<Engine>,
    database: String,
    desk: String,
    requests: usize,
    concurrency: usize,
    json: bool,
    nodes: crate::bench_api::Nodes,
) -> anyhow::Result<ExitCode> {
    let api = &nodes.urls;
    // `desk` is a shipped model's name or a definition file; either is deployed on demand.
    let source = match models::source(&desk) {
        Some(source) => Some(source.to_owned()),
        None if desk.ends_with(".kdl") => {
            Some(std::fs::read_to_string(&desk).with_context(|| format!("cannot read {desk}"))?)
        }
        None => None,
    };
    let desk = match &source {
        Some(source) => e.deploy(source).await?.name,
        None => desk,
    };
    let ids = e.instance_ids(&desk, None).await?;
    let process = match (ids.first(), &source) {
        (Some(id), _) => e.process_of(id).await?,
        (None, Some(source)) => std::sync::Arc::new(
            guichet_definitions::load(source)
                .process
                .context("a deployed definition checks")?,
        ),
        (None, None) => {
            return Err(wrong(format!(
                "no shipped desk named `{desk}` and no request of it here: name a shipped model or a .kdl file"
            )));
        }
    };
    let ceiling = guichet_engine::store::disk_ceiling(&database, 2.0).await?;
    let cpu0 = cpu_seconds();
    let groups0 = e.store().group_commits();
    // (requests finished, commands or API calls, elapsed, sorted latencies)
    let (finished, commands, elapsed, latencies) = if api.is_empty() {
        let intake = guichet_engine::sim::drive::sample_fields(process.start().form());
        let r = guichet_engine::sim::drive::drive(e.clone(), &desk, &intake, requests, concurrency)
            .await?;
        (r.finished, r.commands, r.elapsed, r.latencies)
    } else {
        let tokens = crate::bench_api::tokens(&e, &process).await?;
        let nodes = nodes.clone();
        let r = tokio::task::spawn_blocking(move || {
            crate::bench_api::drive(nodes, &process, &tokens, requests, concurrency)
        })
        .await??;
        (r.finished, r.calls, r.elapsed, r.latencies)
    };
    let cpu = cpu_seconds().zip(cpu0).map(|(a, b)| a - b);
    // Commits and the commands they carried (the writer thread's group commit; without it,
    // as through PostgreSQL, each command is one commit). Only this process's: through the
    // API the server commits.
    let (commits, carried) = match (e.store().group_commits(), groups0) {
        (Some((c1, n1)), Some((c0, n0))) => (c1 - c0, n1 - n0),
        _ => (commands as u64, commands as u64),
    };
    let secs = elapsed.as_secs_f64().max(1e-9);
    let pct = |q: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies[i].as_secs_f64() * 1e3
    };
    let through = if api.is_empty() {
        "library".to_owned()
    } else {
        format!("HTTP API of {} node(s)", api.len())
    };
    let summary = serde_json::json!({
        "backend": format!("{:?}", e.backend()),
        "through": through,
        "desk": desk,
        "requests_finished": finished,
        "commands": commands,
        "seconds": secs,
        "requests_per_second": finished as f64 / secs,
        "commands_per_second": commands as f64 / secs,
        "latency_ms_p50": pct(0.5),
        "latency_ms_p99": pct(0.99),
        "cpu_seconds": cpu,
        "cpu_seconds_per_1000_requests": cpu.map(|c| c * 1000.0 / finished.max(1) as f64),
        "peak_mib": peak_mib(),
        "concurrency": concurrency,
        "disk_commits_per_second": ceiling,
        "engine_commits_per_second": api.is_empty().then(|| commits as f64 / secs),
        "transitions_per_commit": api.is_empty().then(|| carried as f64 / commits.max(1) as f64),
    });
    if json {
        println!("{summary}");
    } else {
        println!(
            "{:?} through the {through}: {} requests in {:.2} s = {:.1} requests/s, {:.0} {}/s; latency p50 {:.1} ms, p99 {:.1} ms; CPU of this process {:.2} s ({:.2} s per 1,000); peak {:.0} MiB",
            e.backend(),
            finished,
            secs,
            finished as f64 / secs,
            commands as f64 / secs,
            if api.is_empty() {
                "commands"
            } else {
                "API calls"
            },
            pct(0.5),
            pct(0.99),
            cpu.unwrap_or(f64::NAN),
            cpu.map_or(f64::NAN, |c| c * 1000.0 / finished.max(1) as f64),
            peak_mib().unwrap_or(f64::NAN),
        );
        if let Some(c) = ceiling {
            if api.is_empty() {
                println!(
                    "disk ceiling {c:.0} one-row durable commits/s; the engine's commits {:.0}/s ({:.1} % of it), {:.1} state transitions each",
                    commits as f64 / secs,
                    100.0 * commits as f64 / secs / c,
                    carried as f64 / commits.max(1) as f64,
                );
            } else {
                println!("disk ceiling {c:.0} one-row durable commits/s");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

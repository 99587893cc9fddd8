//! The `guichet` command line: glue between the crates, nothing else.
//!
//! Exit codes follow compilers: 0 when all is well, 1 when a definition has diagnostics,
//! 2 when the command could not run at all (missing file, bad arguments).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod bench_api;
mod config;
mod db;
mod kpi;
mod mail;
mod requests;
mod simulate;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use guichet_connectors::email::Templates;
use guichet_definitions::{self as definitions, Severity, diagnostic};

/// mimalloc rather than the system allocator: a page served allocates and frees many small
/// strings from several threads, where glibc's malloc spent a fifth of the server's time
/// (bench/README.md, the inbox).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "guichet",
    version,
    about = "A workflow engine for health-data access desks"
)]
struct Cli {
    /// A configuration file (TOML) with any of the settings; `guichet.toml` in the working
    /// directory is read when it exists. See docs/operations.md.
    #[arg(long, global = true, env = "GUICHET_CONFIG")]
    config: Option<PathBuf>,
    /// The database: a SQLite file (created if missing) or a PostgreSQL URL.
    #[arg(
        long,
        global = true,
        env = "GUICHET_DATABASE",
        default_value = "sqlite://guichet.db"
    )]
    database: String,
    /// Where documents are kept (the files sent with forms), by their SHA-256; beside a
    /// SQLite database by default (`guichet.db-documents/`), else `guichet-documents/`.
    #[arg(long, global = true, env = "GUICHET_DOCUMENTS")]
    documents: Option<PathBuf>,
    /// What is logged (to standard error): a level (error, warn, info, debug, trace), and
    /// per-module levels, e.g. `info,sqlx=warn`.
    #[arg(
        long,
        global = true,
        env = "GUICHET_LOG",
        default_value = "info,sqlx=warn"
    )]
    log: tracing_subscriber::filter::Targets,
    /// How logs are written: `text` for people, `json` (one object a line) for collectors.
    #[arg(long, global = true, env = "GUICHET_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Logs go to standard error, so that what a command prints stays its output.
fn init_logs(filter: tracing_subscriber::filter::Targets, format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(false),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check process definitions and report every problem found.
    Check {
        /// Definition files (.kdl).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Treat warnings as errors (exit code 1).
        #[arg(long)]
        deny_warnings: bool,
        /// Colour in text output.
        #[arg(long, value_enum, default_value_t = Color::Auto)]
        color: Color,
        /// The desk's templates folder: its templates are checked, and every template a
        /// definition declares must be in it.
        #[arg(long, env = "GUICHET_TEMPLATES")]
        templates: Option<PathBuf>,
    },
    /// Draw a process definition.
    Graph {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = GraphFormat::Svg)]
        format: GraphFormat,
        /// Write to this file instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Run the desk: deploy the shipped desk models, serve the portal, staff pages,
    /// administration and REST API, send emails and webhooks, fire timers as they fall due,
    /// until stopped (Ctrl-C).
    Serve {
        /// Deploy and list the models, then exit.
        #[arg(long)]
        once: bool,
        /// The address the web server listens on.
        #[arg(long, env = "GUICHET_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// How many HTTP requests this node works on at once; beyond, new requests and page
        /// reads get 503 with Retry-After, while decisions on tasks and provider answers are
        /// still taken.
        #[arg(long, env = "GUICHET_MAX_IN_FLIGHT", default_value_t = 512)]
        max_in_flight: usize,
        #[command(flatten)]
        limits: LimitOptions,
        /// This node sends no emails: another node (or `guichet mail dispatch`) does, and the
        /// messages wait in the outbox for it. For nodes that only serve people and the API.
        #[arg(long, env = "GUICHET_NO_EMAIL")]
        no_email: bool,
        #[command(flatten)]
        mail: mail::MailOptions,
    },
    /// The outbox: emails sent, pending, dead letters (captured emails when no SMTP server
    /// is configured).
    #[command(subcommand)]
    Mail(mail::MailCommand),
    /// Deploy definitions into the database (a changed file becomes a new revision).
    Deploy {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Requests: start, list, show, history, cancel.
    #[command(subcommand)]
    Instance(requests::InstanceCommand),
    /// Tasks: list, claim, release, complete.
    #[command(subcommand)]
    Task(requests::TaskCommand),
    /// External events for a request (e.g. the sponsor's answer).
    #[command(subcommand)]
    Event(requests::EventCommand),
    /// Fire the timers that are due now.
    #[command(subcommand)]
    Timers(db::TimersCommand),
    /// Indicators of ended requests: declared KPIs, per-step timings, the maturity x
    /// performance matrix; models side by side, by version or period.
    Kpi(kpi::KpiArgs),
    /// Simulate desk models side by side under a scenario (arrivals, staff, durations,
    /// calendar), optionally calibrated from the recorded history; or forecast the open
    /// requests.
    Simulate(simulate::SimulateArgs),
    /// Export the history of ended requests for process-mining tools (XES) or spreadsheets.
    Export(kpi::ExportArgs),
    /// Check the tamper-evident history.
    #[command(subcommand)]
    Audit(db::AuditCommand),
    /// Staff accounts.
    #[command(subcommand)]
    User(db::UserCommand),
    /// API tokens for scripts and providers (the REST API under /api/v1).
    #[command(subcommand)]
    Token(db::TokenCommand),
    /// Print the REST API's OpenAPI 3.1 document (the one `serve` answers at
    /// /api/openapi.json), generated from the handlers.
    Openapi,
    /// Drive requests of a desk to their end as fast as the database allows, and report
    /// throughput, latency, CPU and memory. Resumes unfinished requests when restarted.
    Bench {
        /// A shipped model's name, or a definition file (`.kdl`), deployed if new.
        #[arg(long, default_value = "interne-decentralise")]
        desk: String,
        /// How many requests in total (existing ones count).
        #[arg(long, default_value_t = 1000)]
        requests: usize,
        /// How many requests move at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long)]
        json: bool,
        /// Drive the requests through the HTTP API of these `guichet serve` nodes
        /// (comma-separated base URLs, used in turn) instead of the library; the database is
        /// then only used to create the staff accounts and API tokens.
        #[arg(long, value_delimiter = ',', value_name = "URL")]
        api: Vec<String>,
        /// With --api and several nodes: each request's calls all go to the node that took
        /// its submission (as a load balancer routing by the request's id in the path
        /// would), instead of each call to the next node.
        #[arg(long, requires = "api")]
        sticky: bool,
        /// Instead: add this many synthetic open tasks (one per request, spread over the
        /// desk's roles) for the inbox benchmark (bench/inbox.sh), and exit.
        #[arg(long, value_name = "N")]
        seed_open_tasks: Option<usize>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum GraphFormat {
    Svg,
    Dot,
    Mermaid,
}

fn main() -> ExitCode {
    quiet_on_closed_pipe();
    // The configuration file gives the defaults of the settings it names (the environment
    // and the command line still win).
    let args: Vec<String> = std::env::args().collect();
    let mut command = Cli::command();
    if let Some(path) = config::path(&args) {
        match config::read(&path) {
            Ok(settings) => command = config::apply(command, &settings),
            Err(e) => {
                eprintln!("guichet: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let cli = match Cli::from_arg_matches(&command.get_matches_from(args)) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if matches!(cli.command, Command::Serve { .. }) {
        lean_allocator();
    }
    init_logs(cli.log.clone(), cli.log_format);
    db::documents_in(cli.documents.clone());
    match cli.command {
        Command::Check {
            files,
            format,
            deny_warnings,
            color,
            templates,
        } => check(&files, format, deny_warnings, color, templates.as_deref()),
        Command::Graph {
            file,
            format,
            output,
        } => graph(&file, format, output.as_deref()),
        Command::Serve {
            once,
            listen,
            max_in_flight,
            limits,
            no_email,
            mail,
        } => db::run(&cli.database, |e| {
            db::serve(
                e,
                once,
                listen,
                max_in_flight,
                limits.settings(),
                no_email,
                mail,
            )
        }),
        Command::Mail(c) => db::run(&cli.database, |e| mail::mail(e, c)),
        Command::Deploy { files } => db::run(&cli.database, |e| db::deploy(e, files)),
        Command::Instance(c) => db::run(&cli.database, |e| requests::instance(e, c)),
        Command::Task(c) => db::run(&cli.database, |e| requests::task(e, c)),
        Command::Event(c) => db::run(&cli.database, |e| requests::event(e, c)),
        Command::Timers(c) => db::run(&cli.database, |e| db::timers(e, c)),
        Command::Audit(c) => {
            // Verifying never creates the database it is pointed at.
            if let Some(path) = guichet_engine::store::sqlite_path(&cli.database)
                && !path.exists()
            {
                eprintln!(
                    "guichet: there is no database at {}: check --database (audit verify reads an existing one)",
                    path.display()
                );
                return ExitCode::from(2);
            }
            db::run(&cli.database, |e| db::audit(e, c))
        }
        Command::Kpi(a) => db::run(&cli.database, |e| kpi::kpi(e, a)),
        Command::User(c) => db::run(&cli.database, |e| db::user(e, c)),
        Command::Token(c) => db::run(&cli.database, |e| db::token(e, c)),
        Command::Openapi => {
            println!("{}", guichet_web::openapi_document());
            std::process::ExitCode::SUCCESS
        }
        Command::Simulate(a) if a.needs_database() => {
            db::run(&cli.database, |e| simulate::simulate(Some(e), a))
        }
        Command::Simulate(a) => db::run_without_database(simulate::simulate(None, a)),
        Command::Export(a) => db::run(&cli.database, |e| kpi::export(e, a)),
        Command::Bench {
            desk,
            seed_open_tasks: Some(n),
            ..
        } => db::run(&cli.database, |e| async move {
            guichet_engine::sim::drive::seed_open_tasks(&e, &desk, n).await?;
            println!("{n} open tasks added to {desk}");
            Ok(ExitCode::SUCCESS)
        }),
        Command::Bench {
            desk,
            requests,
            concurrency,
            json,
            api,
            sticky,
            seed_open_tasks: None,
        } => {
            let database = cli.database.clone();
            let nodes = bench_api::Nodes { urls: api, sticky };
            db::run(&cli.database, |e| {
                db::bench(e, database, desk, requests, concurrency, json, nodes)
            })
        }
    }
}

/// The rate limits of the public forms (`serve`): beyond one, 429 with Retry-After.
#[derive(Debug, clap::Args)]
struct LimitOptions {
    /// Intake forms submitted per client address, and per email address in the form:
    /// COUNT/UNIT (second, minute, hour, day), or `off`.
    #[arg(long, env = "GUICHET_LIMIT_INTAKE", default_value = "5/hour", value_parser = guichet_web::parse_limit)]
    limit_intake: ::std::option::Option<guichet_web::Rate>,
    /// Fresh links asked for (from an expired link or the lost-link form) per client
    /// address, per link and per email address.
    #[arg(long, env = "GUICHET_LIMIT_LINKS", default_value = "5/hour", value_parser = guichet_web::parse_limit)]
    limit_links: ::std::option::Option<guichet_web::Rate>,
    /// Sign-in attempts per client address (each account also waits longer after failures).
    #[arg(long, env = "GUICHET_LIMIT_LOGIN", default_value = "30/minute", value_parser = guichet_web::parse_limit)]
    limit_login: ::std::option::Option<guichet_web::Rate>,
    /// Reverse proxies whose X-Forwarded-For names the client (comma-separated addresses);
    /// without them, a client is the connection's peer.
    #[arg(long, env = "GUICHET_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Vec<std::net::IpAddr>,
}

impl LimitOptions {
    fn settings(self) -> guichet_web::LimitSettings {
        guichet_web::LimitSettings {
            intake: self.limit_intake,
            links: self.limit_links,
            login: self.limit_login,
            trusted_proxies: self.trusted_proxies,
        }
    }
}

/// The allocator's settings for a process that runs for months, unless the environment sets
/// them: give freed memory back to the system at once, and commit the allocator's arenas as
/// they fill, not ahead (an idle `serve`: 45 -> 19 MiB resident, the same throughput).
/// mimalloc reads its options from the environment as the process starts, and setting them
/// from the program needs `unsafe` (forbidden here): so `serve` starts itself again, once,
/// with them in its environment (same process id, arguments and descriptors).
fn lean_allocator() {
    use std::os::unix::process::CommandExt;
    const OPTIONS: [(&str, &str); 2] = [
        ("MIMALLOC_PURGE_DELAY", "0"),
        ("MIMALLOC_ARENA_EAGER_COMMIT", "0"),
    ];
    if OPTIONS.iter().any(|(k, _)| std::env::var_os(k).is_some()) {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut again = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        again.arg0(arg0);
    }
    // Returns only if it could not start (then this process goes on as it is).
    let _ = again.args(args).envs(OPTIONS).exec();
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("guichet: cannot read {}: {e}", path.display()))
}

fn check(
    files: &[PathBuf],
    format: Format,
    deny_warnings: bool,
    color: Color,
    templates: Option<&Path>,
) -> ExitCode {
    let color = match color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let templates = match templates.map(Templates::with_overrides) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(errors)) => {
            for e in errors {
                eprintln!("error: template {e}");
            }
            return ExitCode::from(1);
        }
    };
    let mut failed = false;
    let mut could_not_run = false;
    let mut json = Vec::new();
    let mut summary = (0usize, 0usize);
    for path in files {
        let bytes = match read(path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{e}");
                could_not_run = true;
                continue;
            }
        };
        let mut checked = definitions::load_bytes(&bytes);
        if let (Some(t), Some(p)) = (&templates, &checked.process) {
            checked.diagnostics.extend(missing_templates(p, t));
        }
        let name = path.display().to_string();
        let source = String::from_utf8_lossy(&bytes);
        let errors = checked
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count();
        let warnings = checked.diagnostics.len() - errors;
        summary.0 += errors;
        summary.1 += warnings;
        if errors > 0 || (deny_warnings && warnings > 0) {
            failed = true;
        }
        match format {
            Format::Text => {
                eprint!("{}", diagnostic::render(&checked.diagnostics, &name, &source, color));
                if let Some(p) = &checked.process {
                    println!(
                        "{name}: ok, process \"{}\" version {} ({} steps, {} roles, {} indicators)",
                        p.name,
                        p.version,
                        p.steps.len(),
                        p.roles.len(),
                        p.kpis.len()
                    );
                }
            }
            Format::Json => json.push(serde_json::json!({
                "file": name,
                "ok": checked.process.is_some(),
                "diagnostics": checked.diagnostics.iter().map(|d| d.to_json(&name, &source)).collect::<Vec<_>>(),
            })),
        }
    }
    match format {
        Format::Json => println!("{}", serde_json::Value::Array(json)),
        Format::Text if summary.0 + summary.1 > 0 => {
            eprintln!("{} error(s), {} warning(s)", summary.0, summary.1);
        }
        Format::Text => {}
    }
    if could_not_run {
        ExitCode::from(2)
    } else if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `guichet kpi | head` closes our standard output early; printing then fails, and `println!`
/// panics. That is not an error of ours: exit quietly, as other command-line tools do.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// Templates a definition declares that the desk's folder does not provide.
fn missing_templates(p: &definitions::Process, t: &Templates) -> Vec<definitions::Diagnostic> {
    p.templates
        .iter()
        .filter(|d| !t.has(&d.id, p.language) && !t.has(&d.id, definitions::model::Language::Fr))
        .map(|d| {
            definitions::Diagnostic::new(
                definitions::Code::UnknownTemplate,
                d.span,
                format!(
                    "template `{}` is declared but the templates folder has no file for it",
                    d.id
                ),
            )
            .label("no template file")
            .help(format!(
                "add fr/{}.hbs (subject line, a line ---, then the body) to the templates folder",
                d.id
            ))
        })
        .collect()
}

fn graph(file: &Path, format: GraphFormat, output: Option<&Path>) -> ExitCode {
    let bytes = match read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let checked = definitions::load_bytes(&bytes);
    let Some(process) = checked.process else {
        let name = file.display().to_string();
        eprint!(
            "{}",
            diagnostic::render(
                &checked.diagnostics,
                &name,
                &String::from_utf8_lossy(&bytes),
                false
            )
        );
        eprintln!("guichet: {name} has errors; fix them to draw it (see `guichet check`)");
        return ExitCode::from(1);
    };
    let drawing = match format {
        GraphFormat::Svg => definitions::graph::svg(&process),
        GraphFormat::Dot => definitions::graph::dot(&process),
        GraphFormat::Mermaid => definitions::graph::mermaid(&process),
    };
    let written = match output {
        Some(path) => std::fs::write(path, drawing)
            .map_err(|e| format!("guichet: cannot write {}: {e}", path.display())),
        None => std::io::stdout()
            .write_all(drawing.as_bytes())
            .map_err(|e| format!("guichet: cannot write the drawing: {e}")),
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

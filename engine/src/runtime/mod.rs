//! The imperative shell around the core: it loads an instance, asks the core what a command
//! does, and writes the new state, the task and timer rows, the outbox messages and the
//! history events in **one transaction**. A crash at any point leaves either the whole change
//! or none of it.

pub mod audit;
pub mod digest;
pub mod dossier;
pub mod export;
pub mod hot;
pub mod indicators;
pub mod links;
pub mod nodes;
pub mod outbox;
pub mod roster;
pub mod signin;
pub mod tokens;
pub mod users;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, RwLock};

use guichet_definitions::load;
use guichet_definitions::model::{EndResult, Process};
use serde::Serialize;

use crate::clock::{Clock, Timestamp};
use crate::core::{self, Command, Effect, Fields, Instance, InstanceStatus, Transition};
pub use crate::error::Error;
use crate::error::corrupt;
use crate::store::db::{Db, Statement, V, inserts};
use crate::store::history::{self, genesis};
use crate::store::rows::{CommandRow, FactsRows};
use crate::store::{Backend, Store, in_long_read, in_read};

/// A deployed definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployed {
    pub name: String,
    pub version: u32,
    pub revision: i64,
    pub hash: String,
    /// False when the same content was already deployed (deploying is idempotent).
    pub new: bool,
}

/// A request started by [`Engine::start_request_once`].
#[derive(Debug, Clone)]
pub struct Started {
    pub id: String,
    /// Where it stands (its open tasks): once started, or now when `replayed`.
    pub inst: Instance,
    /// True when the key had already started this request: nothing was started now.
    pub replayed: bool,
}

/// What a submission was, as its key remembers it: the desk and the fields (documents by
/// their hash), so that a key sent again with something else is not taken for a retry.
fn submission_fingerprint(name: &str, fields: &Fields) -> Result<String, Error> {
    let fields = serde_json::to_string(fields).map_err(corrupt)?;
    Ok(crate::sha256_hex(format!("{name}\n{fields}").as_bytes()))
}

/// A task row, as the inbox shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskRow {
    pub instance: String,
    pub seq: i64,
    pub step: String,
    pub role: String,
    pub assignee: Option<String>,
    pub state: String,
    pub created_at: i64,
    pub due_at: Option<i64>,
    pub overdue: bool,
    pub closed_by: Option<String>,
}

impl TaskRow {
    /// An open task of a request's core state, as its row reads.
    pub fn open(instance: &str, p: &Process, t: &core::Task) -> TaskRow {
        TaskRow {
            instance: instance.to_owned(),
            seq: i64::from(t.seq),
            step: p.steps[t.step].id.clone(),
            role: t.role.clone(),
            assignee: t.assignee.clone(),
            state: task_state(t.state).to_owned(),
            created_at: t.created_at.0,
            due_at: t.due_at.map(|d| d.0),
            overdue: t.overdue,
            closed_by: None,
        }
    }

    /// The columns [`TaskRow::from_row`] reads, in its order.
    const COLUMNS: &str =
        "instance, seq, step, role, assignee, state, created_at, due_at, overdue, closed_by";

    fn from_row(r: &crate::store::db::Row) -> Result<TaskRow, Error> {
        Ok(TaskRow {
            instance: r.text(0)?,
            seq: r.int(1)?,
            step: r.text(2)?,
            role: r.text(3)?,
            assignee: r.opt_text(4)?,
            state: r.text(5)?,
            created_at: r.int(6)?,
            due_at: r.opt_int(7)?,
            overdue: r.int(8)? != 0,
            closed_by: r.opt_text(9)?,
        })
    }
}

/// A request as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRow {
    pub id: String,
    pub desk: String,
    pub title: String,
    pub status: String,
    pub result: Option<String>,
    pub started_at: i64,
    pub ended_at: Option<i64>,
}

/// The engine: a store, a clock, and the compiled definitions it has seen.
pub struct Engine {
    store: Store,
    ctx: Ctx,
    /// The latest revision of each desk and the administrators, read at most once per
    /// [`DESKS_TTL`] (every page needs the desks for the roles of the person, every start
    /// the latest revision of its desk); a deploy or a change of accounts through this
    /// engine refreshes it.
    pub(crate) roster: RwLock<Option<(Timestamp, Arc<roster::Roster>)>>,
    /// Held by the one caller reading the roster again when it is out of date.
    pub(crate) roster_reading: tokio::sync::Mutex<()>,
    /// When this process last recorded the use of each session and API token (by hash).
    pub(crate) touches: std::sync::Mutex<HashMap<String, i64>>,
    /// The account of each API token (by hash) as last read, and when (the engine's clock):
    /// an API client sends its token with every call, which is then read at most once per
    /// [`DESKS_TTL`]; revoking through this engine forgets them all.
    pub(crate) tokens_seen: std::sync::Mutex<HashMap<String, (tokens::Grant, i64)>>,
    /// Failed sign-ins per account, for the progressive delay ([`signin`]).
    pub(crate) signins: signin::Throttle,
    /// The per-database secret links and anti-forgery tokens are derived from: created once,
    /// never changed, so read once.
    pub(crate) link_secret: std::sync::OnceLock<Vec<u8>>,
    /// The definition each request runs on, as read (it never changes): the request path
    /// asks for a request's process on every call.
    definition_of: std::sync::Mutex<HashMap<String, String>>,
    /// The requests this engine wrote last, as written ([`crate::runtime::hot`]).
    hot: crate::runtime::hot::Hot,
    /// Where documents are kept ([`crate::store::documents`]).
    documents: crate::store::documents::Documents,
    /// This process as the other nodes see it ([`crate::runtime::nodes`]).
    pub(crate) node: nodes::Node,
    /// Set once no request's facts are stale ([`Engine::refresh_stale_facts`]): no upgrade
    /// makes more while the engine runs, so the folds stop looking.
    pub(crate) facts_fresh: std::sync::atomic::AtomicBool,
}

/// A condition on a request as a command finds it ([`Engine::execute_if`]).
pub type Allowed<'a> = dyn Fn(&Process, &Instance) -> bool + Sync + 'a;

/// Where documents go by default: beside a SQLite file (`desk.db` keeps them in
/// `desk.db-documents/`), else in `guichet-documents/` in the working directory.
fn default_documents_dir(url: &str) -> std::path::PathBuf {
    let file = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .map(|rest| rest.split('?').next().unwrap_or(rest))
        .filter(|path| !path.is_empty() && !path.starts_with(':'));
    match file {
        Some(path) => std::path::PathBuf::from(format!("{path}-documents")),
        None => std::path::PathBuf::from("guichet-documents"),
    }
}

/// At most this many requests' definitions are remembered (then the memory starts afresh).
const DEFINITIONS_REMEMBERED: usize = 10_000;

/// How long the list of deployed desks is reused before it is read again: a revision
/// deployed by another process (another node, `guichet deploy`) is seen within this delay.
pub const DESKS_TTL: std::time::Duration = std::time::Duration::from_secs(1);

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// A request's status as stored and shown (`running`, `ended`, `cancelled`), and its result.
pub fn status_str(s: InstanceStatus) -> (&'static str, Option<&'static str>) {
    match s {
        InstanceStatus::Running => ("running", None),
        InstanceStatus::Ended(r) => ("ended", Some(r.as_str())),
        InstanceStatus::Cancelled => ("cancelled", None),
    }
}

/// What a command's transaction needs besides its connection: the clock, the compiled
/// definitions. Cheap to clone, so that the SQLite writer thread can own one.
#[derive(Clone)]
pub(crate) struct Ctx {
    clock: Arc<dyn Clock>,
    processes: Arc<RwLock<HashMap<String, Arc<Process>>>>,
    /// PostgreSQL: reads the facts' sources with those of the other requests ending.
    facts_reader: Option<crate::store::postgres::reader::PgReader<FactsRows>>,
}

/// A command's writes, prepared from the request as read ([`Ctx::prepare`]) before its
/// transaction: on SQLite the request is read and the core run on the caller's thread, so that
/// the writer thread, which every command goes through one after the other, only writes.
#[derive(Clone)]
struct Prepared {
    id: String,
    /// The definition the request runs on (by hash).
    definition: String,
    /// The request's new state.
    inst: Instance,
    /// Its row's version, history tip and chain head once written.
    row_version: i64,
    history_seq: i64,
    history_head: String,
    /// Its events and tasks' deadlines, when all known ([`crate::runtime::hot`]).
    seen: Option<crate::runtime::hot::Seen>,
    /// The first changes the request's row (an update on the condition that its version is
    /// the one read, or the insert of a new request) and must change exactly one row. When
    /// the command ends the request, the last ones store its facts.
    statements: Vec<Statement>,
}

impl Prepared {
    /// Runs the statements of a prepared command (in the caller's transaction). False when
    /// the request changed since it was read (its first statement changed no row): nothing
    /// was written, and the command must be prepared again from the request as it now is.
    async fn write<D: Db>(&self, db: &mut D) -> Result<bool, Error> {
        let mut statements = self.statements.iter();
        if let Some((sql, params)) = statements.next()
            && db.exec(sql.clone(), params).await? != 1
        {
            return Ok(false);
        }
        for (sql, params) in statements {
            db.exec(sql.clone(), params).await?;
        }
        Ok(true)
    }
}

/// How many times a command is prepared again when its request changed between the read and
/// the write (another command on the same request in the same group commit).
const STALE_RETRIES: usize = 8;

impl Engine {
    pub async fn open(url: &str, clock: Arc<dyn Clock>) -> Result<Engine, Error> {
        let store = Store::open(url).await?;
        let documents = crate::store::documents::Documents::new(default_documents_dir(url));
        Ok(Engine {
            documents,
            ctx: Ctx {
                clock,
                processes: Arc::default(),
                facts_reader: store.pg_facts.clone(),
            },
            store,
            roster: RwLock::new(None),
            roster_reading: tokio::sync::Mutex::new(()),
            touches: std::sync::Mutex::default(),
            tokens_seen: std::sync::Mutex::default(),
            signins: signin::Throttle::default(),
            link_secret: std::sync::OnceLock::new(),
            definition_of: std::sync::Mutex::default(),
            hot: crate::runtime::hot::Hot::default(),
            node: nodes::Node::new(),
            facts_fresh: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The engine keeping documents in `dir` rather than beside the database.
    pub fn with_documents(mut self, dir: impl Into<std::path::PathBuf>) -> Engine {
        self.documents = crate::store::documents::Documents::new(dir);
        self
    }

    /// Where documents are kept.
    pub fn documents(&self) -> &crate::store::documents::Documents {
        &self.documents
    }

    pub fn now(&self) -> Timestamp {
        self.ctx.clock.now()
    }

    /// Deploys a definition: checked, stored by content hash, a new revision of its name if the
    /// content is new. Running instances stay on the revision they started with.
    pub async fn deploy(&self, source: &str) -> Result<Deployed, Error> {
        let checked = load(source);
        let Some(process) = checked.process else {
            return Err(Error::Definition(checked.diagnostics));
        };
        let hash = crate::sha256_hex(source.as_bytes());
        // The next revision of its name, unless the same content is there already: one
        // statement, so that two nodes deploying at once cannot both take a revision.
        let inserted = self
            .write_one(
                "INSERT INTO definitions (hash, name, version, revision, source, deployed_at) \
                 SELECT $1, $2, $3, COALESCE(MAX(revision), 0) + 1, $4, $5 FROM definitions WHERE name = $2 \
                 ON CONFLICT (hash) DO NOTHING",
                vec![
                    V::Text(hash.clone()),
                    V::Text(process.name.clone()),
                    V::Int(i64::from(process.version)),
                    V::Text(source.to_owned()),
                    V::Int(self.now().0),
                ],
            )
            .await?;
        let key = [V::Text(hash.clone())];
        let sql = "SELECT revision FROM definitions WHERE hash = $1";
        let revision = in_read!(self.store, |db| db.row(sql.into(), &key))?
            .ok_or_else(|| Error::Corrupt(format!("definition {hash} was not stored")))?
            .int(0)?;
        let new = inserted == 1;
        let deployed = Deployed {
            name: process.name.clone(),
            version: process.version,
            revision,
            hash: hash.clone(),
            new,
        };
        self.ctx
            .processes
            .write()
            .map_err(corrupt)?
            .insert(hash, Arc::new(process));
        if new {
            self.forget_roster();
        }
        Ok(deployed)
    }

    /// The compiled process of a deployed definition (cached).
    pub(crate) async fn process<D: Db>(
        &self,
        db: &mut D,
        hash: &str,
    ) -> Result<Arc<Process>, Error> {
        self.ctx.process(db, hash).await
    }

    /// Starts a request on the latest revision of the named desk; returns its id.
    pub async fn start(&self, name: &str, fields: &Fields) -> Result<String, Error> {
        Ok(self.start_request(name, fields, None).await?.0)
    }

    /// Starts a request on the latest revision of the named desk, written in `language` (the
    /// desk writes to its sponsor in it; the desk's own when `None`); returns its id and
    /// where it stands once started (its open tasks).
    pub async fn start_request(
        &self,
        name: &str,
        fields: &Fields,
        language: Option<guichet_definitions::model::Language>,
    ) -> Result<(String, Instance), Error> {
        let ctx = &self.ctx;
        let (hash, process) = self
            .latest(name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no desk named `{name}` is deployed")))?;
        let prepared = in_read!(self.store, |db| ctx
            .prepare_start(db, name, &hash, &process, fields, language))?;
        let prepared = self
            .write_prepared(prepared)
            .await?
            .ok_or_else(|| Error::Corrupt("a new request's row was not written".into()))?;
        let id = prepared.id.clone();
        Ok((id, self.remember(prepared)))
    }

    /// Starts a request once per `key`: a submission sent again with the same key (its answer
    /// lost, the page sent twice) finds the request the first one created and starts none
    /// (`replayed`). The key is written in the same transaction as the request, so either
    /// both are stored or neither; two submissions racing with one key start one request.
    /// The caller scopes the key (by account, by desk). A key already used for a different
    /// submission (another desk or other fields) is refused as invalid: nothing is started.
    pub async fn start_request_once(
        &self,
        name: &str,
        fields: &Fields,
        language: Option<guichet_definitions::model::Language>,
        key: &str,
    ) -> Result<Started, Error> {
        let ctx = &self.ctx;
        let fingerprint = submission_fingerprint(name, fields)?;
        for _ in 0..STALE_RETRIES {
            if let Some(id) = self.submitted(key, &fingerprint).await? {
                let (_, inst) = self.instance(&id).await?;
                return Ok(Started {
                    id,
                    inst,
                    replayed: true,
                });
            }
            let (hash, process) = self
                .latest(name)
                .await?
                .ok_or_else(|| Error::NotFound(format!("no desk named `{name}` is deployed")))?;
            let mut prepared = in_read!(self.store, |db| ctx
                .prepare_start(db, name, &hash, &process, fields, language))?;
            // The key first: the command's guard, which changes no row when the key is taken.
            prepared.statements.insert(
                0,
                (
                    "INSERT INTO submission_keys (key, instance, fingerprint, at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING"
                        .into(),
                    vec![
                        V::Text(key.to_owned()),
                        V::Text(prepared.id.clone()),
                        V::Text(fingerprint.clone()),
                        V::Int(self.now().0),
                    ],
                ),
            );
            if let Some(prepared) = self.write_prepared(prepared).await? {
                let id = prepared.id.clone();
                return Ok(Started {
                    id,
                    inst: self.remember(prepared),
                    replayed: false,
                });
            }
            // Taken meanwhile: the request of the submission that took it, once written.
        }
        Err(Error::Conflict(format!(
            "the submission key `{key}` is being used by another submission; try again"
        )))
    }

    /// The request a submission key created, if any; refused when that submission was not
    /// the same as this one (its fingerprint).
    async fn submitted(&self, key: &str, fingerprint: &str) -> Result<Option<String>, Error> {
        let sql = "SELECT instance, fingerprint FROM submission_keys WHERE key = $1";
        let params = [V::Text(key.to_owned())];
        let Some(row) = in_read!(self.store, |db| db.row(sql.into(), &params))? else {
            return Ok(None);
        };
        if row.text(1)? != fingerprint {
            return Err(Error::KeyReused(core::reference(&row.text(0)?)));
        }
        Ok(Some(row.text(0)?))
    }

    /// Remembers a request as a command just wrote it (its definition; its state unless it
    /// ended, for the next command: [`crate::runtime::hot`]); returns its new state.
    fn remember(&self, written: Prepared) -> Instance {
        self.remember_definition(&written.id, written.definition.clone());
        if written.inst.status != InstanceStatus::Running {
            self.hot.forget(&written.id);
            return written.inst;
        }
        let inst = written.inst.clone();
        self.hot.put(
            &written.id,
            crate::runtime::hot::Entry {
                definition: written.definition,
                inst: written.inst,
                row_version: written.row_version,
                history_seq: written.history_seq,
                history_head: written.history_head,
                seen: written.seen,
            },
        );
        inst
    }

    /// A request's row as a command reads it (on PostgreSQL with those of the other commands
    /// arriving meanwhile).
    async fn command_row(&self, id: &str) -> Result<CommandRow, Error> {
        let row = match &self.store.pg_reader {
            Some(reader) => reader.read(id).await?,
            None => {
                let sql = format!(
                    "SELECT {} FROM instances WHERE id = $1",
                    CommandRow::COLUMNS
                );
                let key = [V::Text(id.to_owned())];
                in_read!(self.store, |db| db.row(sql.into(), &key))?
                    .map(|r| CommandRow::from_row(&r))
                    .transpose()?
            }
        };
        row.ok_or_else(|| Error::NotFound(format!("request {id}")))
    }

    /// How the requests this engine remembers have served ([`crate::runtime::hot`]).
    pub fn remembered(&self) -> crate::runtime::hot::HotStats {
        self.hot.stats()
    }

    /// Runs statements in one transaction and returns how many rows each changed: on SQLite
    /// on the writer thread (they share its group commit and its turn: an autocommit write
    /// beside the writer made each wait for the other's lock in SQLite's busy handler, and
    /// cost a disk flush of its own), on PostgreSQL in one round trip.
    pub(crate) async fn write_all(&self, statements: Vec<Statement>) -> Result<Vec<u64>, Error> {
        match &self.store.writer {
            Some(writer) => {
                writer
                    .write(move |db| {
                        crate::store::sqlite::writer::ready(crate::store::db::exec_all(
                            db,
                            &statements,
                        ))
                    })
                    .await
            }
            None if self.store.backend == Backend::Postgres => {
                self.store.postgres_batch(&statements).await
            }
            None => crate::store::in_kept_transaction!(
                self.store,
                |db| crate::store::db::exec_all(db, &statements)
            ),
        }
    }

    /// Writes a prepared command, on the condition that its request is still as read
    /// (the first statement checks the version read); `None` when it changed meanwhile:
    /// nothing was written, and the command must be prepared again. On SQLite the writer
    /// thread writes it in its group commit, on PostgreSQL the node's next batch.
    async fn write_prepared(&self, mut prepared: Prepared) -> Result<Option<Prepared>, Error> {
        let written = match (&self.store.writer, &self.store.pg_writer) {
            (Some(writer), _) => {
                let prepared = Arc::new(prepared);
                let job = prepared.clone();
                let written = writer
                    .write(move |db| crate::store::sqlite::writer::ready(job.write(db)))
                    .await?;
                return Ok(written.then(|| Arc::unwrap_or_clone(prepared)));
            }
            (None, Some(pg)) => {
                let statements = std::mem::take(&mut prepared.statements);
                pg.write(&prepared.id, statements).await?
            }
            (None, None) => {
                crate::store::in_kept_transaction!(self.store, |db| prepared.write(db))?
            }
        };
        Ok(written.then_some(prepared))
    }

    /// Runs one statement as [`Engine::write_all`] does; returns how many rows it changed.
    pub(crate) async fn write_one(&self, sql: &'static str, params: Vec<V>) -> Result<u64, Error> {
        Ok(self
            .write_all(vec![(sql.into(), params)])
            .await?
            .first()
            .copied()
            .unwrap_or_default())
    }

    /// Applies a command to a request, in one transaction.
    pub async fn execute(&self, id: &str, command: Command) -> Result<Instance, Error> {
        self.execute_if(id, command, &|_, _| true)
            .await?
            .ok_or_else(|| Error::Corrupt("a command allowed to all was refused".into()))
    }

    /// Applies a command to a request if `allowed` says so of the request as the command
    /// finds it (the same read: a task that a caller may act on is still theirs when the
    /// command applies); `None`, and nothing written, otherwise. Saves a caller that checks
    /// permissions a read of its own before the command.
    pub async fn execute_if(
        &self,
        id: &str,
        command: Command,
        allowed: &Allowed<'_>,
    ) -> Result<Option<Instance>, Error> {
        let ctx = &self.ctx;
        // As this engine last wrote it, if it did: trusted, its version is checked by the
        // write's condition only; distrusted, by reading it first.
        let mut remembered = self.hot.take(id);
        // The version of the request used from memory unchecked, until its outcome is known:
        // if its remembered state refuses the command, the row read next says whether it was
        // out of date.
        let mut unchecked = None;
        for _ in 0..STALE_RETRIES {
            let found = match remembered.take() {
                Some(entry) if self.hot.trusted() => {
                    unchecked = Some(entry.row_version);
                    entry
                }
                Some(entry) => {
                    let row = self.command_row(id).await?;
                    let stale = row.row_version != entry.row_version;
                    self.hot.found(!stale, stale);
                    if stale { entry_of(row)? } else { entry }
                }
                None => {
                    let row = self.command_row(id).await?;
                    if let Some(version) = unchecked.take() {
                        self.hot.found(true, row.row_version != version);
                    }
                    entry_of(row)?
                }
            };
            let prepared = match in_read!(self.store, |db| ctx.prepare(
                db,
                id,
                command.clone(),
                allowed,
                found
            )) {
                Ok(Some(prepared)) => prepared,
                // Refused on a remembered state, which may be out of date: the request as
                // stored decides.
                Ok(None) | Err(Error::Refused(_) | Error::Conflict(_)) if unchecked.is_some() => {
                    continue;
                }
                Ok(None) => return Ok(None),
                Err(e) => return Err(e),
            };
            let written = self.write_prepared(prepared).await?;
            if unchecked.take().is_some() {
                self.hot.found(true, written.is_none());
            }
            if let Some(written) = written {
                return Ok(Some(self.remember(written)));
            }
        }
        Err(Error::Conflict(format!(
            "request {id} changed meanwhile; try again"
        )))
    }
}

impl Ctx {
    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The compiled process of a deployed definition (cached).
    async fn process<D: Db>(&self, db: &mut D, hash: &str) -> Result<Arc<Process>, Error> {
        if let Some(p) = self.processes.read().map_err(corrupt)?.get(hash) {
            return Ok(p.clone());
        }
        let source = db
            .row(
                "SELECT source FROM definitions WHERE hash = $1".into(),
                &[V::Text(hash.to_owned())],
            )
            .await?
            .ok_or_else(|| Error::NotFound(format!("definition {hash}")))?
            .text(0)?;
        let process = load(&source)
            .process
            .ok_or_else(|| Error::Corrupt(format!("stored definition {hash} no longer checks")))?;
        let process = Arc::new(process);
        self.processes
            .write()
            .map_err(corrupt)?
            .insert(hash.to_owned(), process.clone());
        Ok(process)
    }

    /// Reads what starting a request of the desk `name` needs and prepares its writes.
    async fn prepare_start<D: Db>(
        &self,
        db: &mut D,
        name: &str,
        hash: &str,
        process: &Process,
        fields: &Fields,
        language: Option<guichet_definitions::model::Language>,
    ) -> Result<Prepared, Error> {
        let now = self.now();
        let (mut inst, transition) = core::start(process, fields, now)?;
        inst.language = language;
        let id = uuid::Uuid::now_v7().to_string();
        let title = fields
            .get("titre")
            .or_else(|| fields.get("title"))
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned();
        let (status, result) = status_str(inst.status);
        let state = serde_json::to_string(&inst).map_err(corrupt)?;
        let (mut tip, mut head) = (0, genesis(&id));
        let history = history::row(&id, &mut tip, &mut head, &transition.events)?;
        let mut statements: Vec<Statement> = vec![(
            "INSERT INTO instances (id, definition, name, title, status, result, state, row_version, started_at, ended_at, history_seq, history_head, next_timer_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9, $10, $11, $12)"
                .into(),
            vec![
                V::Text(id.clone()),
                V::Text(hash.to_owned()),
                V::Text(name.to_owned()),
                V::Text(title),
                V::Text(status.to_owned()),
                V::MaybeText(result.map(str::to_owned)),
                V::Text(state),
                V::Int(now.0),
                V::MaybeInt(inst.ended_at.map(|t| t.0)),
                V::Int(tip),
                V::Text(head.clone()),
                V::MaybeInt(inst.next_timer_at().map(|t| t.0)),
            ],
        )];
        let fields = crate::indicators::facts::intake_fields(process, &inst)
            .into_iter()
            .map(|(field, value)| vec![V::Text(id.clone()), V::Text(field), V::Text(value)])
            .collect();
        statements.extend(inserts(
            "instance_fields",
            &["instance", "field", "value"],
            fields,
        ));
        self.effects(
            &mut statements,
            now,
            &id,
            process,
            None,
            &transition,
            0,
            history,
        )?;
        let seen = if transition.effects.contains(&Effect::Finished) {
            let facts = self
                .facts(db, &id, process, &inst, 0, &transition, None)
                .await?;
            statements.extend(facts);
            None
        } else {
            crate::runtime::hot::Seen::default().extend(transition.events, &transition.effects)
        };
        Ok(Prepared {
            id,
            definition: hash.to_owned(),
            inst,
            row_version: 1,
            history_seq: tip,
            history_head: head,
            seen,
            statements,
        })
    }

    /// Applies a command to a request as found (read or remembered) in the core, and
    /// prepares the writes of the outcome. Refusals are found here, before anything is
    /// written.
    async fn prepare<D: Db>(
        &self,
        db: &mut D,
        id: &str,
        command: Command,
        allowed: &Allowed<'_>,
        found: crate::runtime::hot::Entry,
    ) -> Result<Option<Prepared>, Error> {
        let now = self.now();
        let crate::runtime::hot::Entry {
            definition: hash,
            inst,
            row_version,
            history_seq: seq,
            history_head: head,
            seen,
        } = found;
        let process = self.process(db, &hash).await?;
        if !allowed(&process, &inst) {
            return Ok(None);
        }
        let before = inst.status;
        let timer_before = inst.next_timer_at();
        let task_of_command = match &command {
            Command::Complete { task, .. }
            | Command::Claim { task, .. }
            | Command::Release { task, .. }
            | Command::Delegate { task, .. } => Some(*task),
            _ => None,
        };
        let (inst, transition) = match core::advance(&process, inst, command, now) {
            Ok(r) => r,
            Err(core::Error::UnknownTask(task)) if task_of_command.is_some() => {
                // Say who got there first, if the task was closed meanwhile.
                let closed = db
                    .row(
                        "SELECT state, closed_by FROM tasks WHERE instance = $1 AND seq = $2"
                            .into(),
                        &[V::Text(id.to_owned()), V::Int(i64::from(task))],
                    )
                    .await?;
                return Err(match closed {
                    Some(r) => Error::Conflict(format!(
                        "task {task} is already {} (by {})",
                        r.text(0)?,
                        r.opt_text(1)?.unwrap_or_else(|| "the system".to_owned())
                    )),
                    None => Error::Refused(core::Error::UnknownTask(task)),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let (status, result) = status_str(inst.status);
        let state = serde_json::to_string(&inst).map_err(corrupt)?;
        // The history's new entries, so that the row's tip moves in the same statement.
        let (mut tip, mut head) = (seq, head);
        let history = history::row(id, &mut tip, &mut head, &transition.events)?;
        // First: the request's row, on the condition that it is still as read. Its status
        // and next timer are indexed: set only when they change (SQLite rewrites the index
        // entries of every column an UPDATE sets, changed or not).
        let mut sql = String::from(
            "UPDATE instances SET state = $1, row_version = row_version + 1, history_seq = $4, history_head = $5",
        );
        let mut params = vec![
            V::Text(state),
            V::Text(id.to_owned()),
            V::Int(row_version),
            V::Int(tip),
            V::Text(head.clone()),
        ];
        if status_str(before) != (status, result) {
            sql.push_str(", status = $6, result = $7, ended_at = $8");
            params.extend([
                V::Text(status.to_owned()),
                V::MaybeText(result.map(str::to_owned)),
                V::MaybeInt(inst.ended_at.map(|t| t.0)),
            ]);
        }
        let timer_after = inst.next_timer_at();
        if timer_after != timer_before {
            params.push(V::MaybeInt(timer_after.map(|t| t.0)));
            let _ = write!(sql, ", next_timer_at = ${}", params.len());
        }
        sql.push_str(" WHERE id = $2 AND row_version = $3");
        let mut statements: Vec<Statement> = vec![(sql.into(), params)];
        let actor = transition.events.first().map(|e| e.actor.clone());
        self.effects(
            &mut statements,
            now,
            id,
            &process,
            actor,
            &transition,
            seq,
            history,
        )?;
        let seen = if transition.effects.contains(&Effect::Finished) {
            let facts = self
                .facts(db, id, &process, &inst, seq, &transition, seen)
                .await?;
            statements.extend(facts);
            None
        } else {
            seen.and_then(|seen| seen.extend(transition.events, &transition.effects))
        };
        Ok(Some(Prepared {
            id: id.to_owned(),
            definition: hash,
            inst,
            row_version: row_version + 1,
            history_seq: tip,
            history_head: head,
            seen,
            statements,
        }))
    }

    /// Appends to `out` the statements of a transition's effects and its history row
    /// (`history::row`, chained after entry `first_seq`; the instance row's statement already
    /// points at its last entry).
    #[allow(clippy::too_many_arguments)]
    fn effects(
        &self,
        out: &mut Vec<Statement>,
        now: Timestamp,
        id: &str,
        process: &Process,
        actor: Option<core::Actor>,
        t: &Transition,
        first_seq: i64,
        history: Option<Vec<V>>,
    ) -> Result<(), Error> {
        let by = match &actor {
            Some(core::Actor::User(u)) => Some(u.clone()),
            Some(core::Actor::Provider(p)) => Some(format!("provider:{p}")),
            Some(core::Actor::Requester) => Some("requester".to_owned()),
            _ => None,
        };
        let text = |s: &str| V::Text(s.to_owned());
        for (n, e) in t.effects.iter().enumerate() {
            match e {
                Effect::TaskSaved(task) => out.push((
                    "INSERT INTO tasks (instance, seq, step, role, assignee, state, created_at, due_at, overdue, desk) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (instance, seq) DO UPDATE SET role = excluded.role, assignee = excluded.assignee, \
                     state = excluded.state, due_at = excluded.due_at, overdue = excluded.overdue"
                        .into(),
                    vec![
                        text(id),
                        V::Int(i64::from(task.seq)),
                        text(&process.steps[task.step].id),
                        text(&task.role),
                        V::MaybeText(task.assignee.clone()),
                        text(task_state(task.state)),
                        V::Int(task.created_at.0),
                        V::MaybeInt(task.due_at.map(|d| d.0)),
                        V::Int(i64::from(task.overdue)),
                        text(&process.name),
                    ],
                )),
                // Its links stop working with it: a link opens only a task still open
                // (`Engine::verify_link`), so nothing is written to them.
                Effect::TaskClosed { task, completed } => {
                    out.push((
                        "UPDATE tasks SET state = $1, closed_at = $2, closed_by = $3 WHERE instance = $4 AND seq = $5"
                            .into(),
                        vec![
                            text(if *completed { "completed" } else { "cancelled" }),
                            V::Int(now.0),
                            V::MaybeText(by.clone()),
                            text(id),
                            V::Int(i64::from(*task)),
                        ],
                    ));
                }
                // In the request's state; its row says when the earliest falls due.
                Effect::TimerScheduled(_) | Effect::TimerCancelled { .. } => {}
                Effect::Email { .. } | Effect::CallProvider { .. } => {
                    // A stable id: the request, the history position of the command, and the
                    // effect's rank in it. Reused on every resend (it becomes the Message-ID).
                    let outbox_id = format!("{id}.{}.{n}", first_seq + 1);
                    let kind = if matches!(e, Effect::Email { .. }) {
                        "email"
                    } else {
                        "webhook"
                    };
                    let provider = match e {
                        Effect::CallProvider { provider, .. } => Some(provider.clone()),
                        _ => None,
                    };
                    out.push((
                        "INSERT INTO outbox (id, instance, kind, payload, state, attempts, next_attempt_at, created_at, provider) \
                         VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5, $6)"
                            .into(),
                        vec![
                            V::Text(outbox_id),
                            text(id),
                            text(kind),
                            V::Text(serde_json::to_string(e).map_err(corrupt)?),
                            V::Int(now.0),
                            V::MaybeText(provider),
                        ],
                    ));
                }
                Effect::Finished => {}
            }
        }
        // A reassigned task's links stop working: the new holder gets new ones.
        for event in &t.events {
            if let core::EventKind::TaskDelegated { task, .. }
            | core::EventKind::TaskEscalated { task, .. } = &event.kind
            {
                out.push(crate::runtime::links::revoke_task_links(id, *task, now));
            }
        }
        // The command's events: one row.
        out.extend(inserts(
            "history",
            history::COLUMNS,
            history.into_iter().collect(),
        ));
        Ok(())
    }

    /// The statements that store the facts of a request that a transition ends (its step
    /// visits and indicator values, derived from its whole history), to run in the
    /// transaction that ends it. `tip` is the last history entry before the transition, as
    /// read with the request (the transaction's version check makes sure it still is); its
    /// history and deadlines up to there are read unless `seen` (by this engine) already.
    #[allow(clippy::too_many_arguments)]
    async fn facts<D: Db>(
        &self,
        db: &mut D,
        id: &str,
        process: &Process,
        inst: &Instance,
        tip: i64,
        t: &Transition,
        seen: Option<crate::runtime::hot::Seen>,
    ) -> Result<Vec<Statement>, Error> {
        let key = || V::Text(id.to_owned());
        let read = seen.is_none() && tip > 0;
        let crate::runtime::hot::Seen {
            mut events,
            mut due,
        } = seen.unwrap_or_default();
        if read {
            let rows = match &self.facts_reader {
                Some(reader) => reader.read(id).await?.unwrap_or_default(),
                None => FactsRows::read(db, id, tip).await?,
            };
            rows.parse_into(tip, &mut events, &mut due)?;
        }
        // What the transition itself appends and changes.
        events.extend(t.events.iter().cloned());
        crate::runtime::hot::tasks_due(&mut due, &t.effects);
        let visits = crate::indicators::facts::visits(process, &events, &due);
        let mut out: Vec<Statement> = vec![(
            "INSERT INTO kpi_pending (instance) VALUES ($1)".into(),
            vec![key()],
        )];
        let rows = visits.iter().map(|v| v.row(id)).collect();
        out.extend(inserts(
            "step_visits",
            crate::indicators::facts::VISIT_COLUMNS,
            rows,
        ));
        let rows = crate::indicators::facts::kpi_values(process, inst, &visits)
            .into_iter()
            .map(|(kpi, value)| vec![key(), V::Text(kpi), V::Real(value)])
            .collect();
        out.extend(inserts("kpi_facts", &["instance", "kpi", "value"], rows));
        Ok(out)
    }
}

impl Engine {
    /// Fires the timers due now of at most `limit` requests (those whose earliest timer is
    /// the most overdue first), each timer in its own transaction; returns how many fired.
    pub async fn fire_due_timers(&self, limit: i64) -> Result<usize, Error> {
        let now = self.now();
        let sql = "SELECT id, state, row_version FROM instances WHERE next_timer_at <= $1 \
             ORDER BY next_timer_at, id LIMIT $2";
        let key = [V::Int(now.0), V::Int(limit)];
        let due = in_read!(self.store, |db| db.rows(sql.into(), &key))?;
        let mut fired = 0;
        for row in due {
            let instance = row.text(0)?;
            let state = row.text(1)?;
            let inst: Instance = serde_json::from_str(&state).map_err(corrupt)?;
            let timers = inst.timers_due(now);
            if timers.is_empty() {
                // The row says a timer is due that its state does not have (a row edited by
                // hand, say): set it from the state, so that it does not come back at every
                // pass ahead of the timers really due. Unless the request changed meanwhile.
                let repaired = self
                    .write_one(
                        "UPDATE instances SET next_timer_at = $1 WHERE id = $2 AND row_version = $3",
                        vec![
                            V::MaybeInt(inst.next_timer_at().map(|t| t.0)),
                            V::Text(instance.clone()),
                            V::Int(row.int(2)?),
                        ],
                    )
                    .await?;
                if repaired > 0 {
                    tracing::warn!(request = %instance, "a request's next timer disagreed with its state; set from the state");
                }
            }
            for timer in timers {
                match self.execute(&instance, Command::FireTimer { timer }).await {
                    Ok(_) => fired += 1,
                    // Cancelled or fired meanwhile (by another node, or by an earlier timer
                    // of this request that ended it or closed the task): nothing to do.
                    Err(Error::Refused(
                        core::Error::UnknownTimer(_) | core::Error::NotRunning(_),
                    )) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(fired)
    }

    /// The core state of a request and the name of its desk.
    pub async fn instance(&self, id: &str) -> Result<(String, Instance), Error> {
        let key = [V::Text(id.to_owned())];
        let sql = "SELECT name, state FROM instances WHERE id = $1";
        let row = in_read!(self.store, |db| db.row(sql.into(), &key))?
            .ok_or_else(|| Error::NotFound(format!("request {id}")))?;
        Ok((
            row.text(0)?,
            serde_json::from_str(&row.text(1)?).map_err(corrupt)?,
        ))
    }

    /// The state of each of these requests that exists, in one read (a dispatcher's pass
    /// reads those of all its messages at once).
    pub async fn instances(&self, ids: &[&str]) -> Result<HashMap<String, Instance>, Error> {
        let (sql, keys) = among("SELECT id, state FROM instances WHERE id", ids);
        let rows = in_read!(self.store, |db| db.rows(sql.into(), &keys))?;
        rows.iter().map(keyed_json).collect()
    }

    /// The desk a request belongs to.
    pub async fn desk_of(&self, id: &str) -> Result<String, Error> {
        let key = [V::Text(id.to_owned())];
        let sql = "SELECT name FROM instances WHERE id = $1";
        in_read!(self.store, |db| db.row(sql.into(), &key))?
            .ok_or_else(|| Error::NotFound(format!("request {id}")))?
            .text(0)
    }

    /// Ids of the requests of a desk, optionally only those with a status (`running`, `ended`,
    /// `cancelled`), oldest first.
    pub async fn instance_ids(
        &self,
        desk: &str,
        status: Option<&str>,
    ) -> Result<Vec<String>, Error> {
        let sql = "SELECT id FROM instances WHERE name = $1 AND ($2 = '' OR status = $2) ORDER BY started_at, id";
        let key = [
            V::Text(desk.to_owned()),
            V::Text(status.unwrap_or("").to_owned()),
        ];
        let rows = in_long_read!(self.store, |db| db.rows(sql.into(), &key))?;
        rows.iter().map(|r| r.text(0)).collect()
    }

    /// The compiled process a request runs on.
    pub async fn process_of(&self, id: &str) -> Result<Arc<Process>, Error> {
        let known = self
            .definition_of
            .lock()
            .ok()
            .and_then(|m| m.get(id).cloned());
        if let Some(hash) = &known
            && let Some(p) = self.ctx.processes.read().map_err(corrupt)?.get(hash)
        {
            return Ok(p.clone());
        }
        in_read!(self.store, |db| self.process_in(db, id))
    }

    async fn process_in<D: Db>(&self, db: &mut D, id: &str) -> Result<Arc<Process>, Error> {
        let hash = db
            .row(
                "SELECT definition FROM instances WHERE id = $1".into(),
                &[V::Text(id.to_owned())],
            )
            .await?
            .ok_or_else(|| Error::NotFound(format!("request {id}")))?
            .text(0)?;
        self.remember_definition(id, hash.clone());
        self.process(db, &hash).await
    }

    /// Remembers the definition a request runs on (it never changes), for `process_of`.
    fn remember_definition(&self, id: &str, hash: String) {
        if let Ok(mut known) = self.definition_of.lock() {
            if known.len() >= DEFINITIONS_REMEMBERED && !known.contains_key(id) {
                known.clear();
            }
            known.insert(id.to_owned(), hash);
        }
    }

    /// Tasks, open ones first by due date; `open_only` hides closed ones.
    pub async fn tasks(
        &self,
        instance: Option<&str>,
        open_only: bool,
    ) -> Result<Vec<TaskRow>, Error> {
        // One statement per case: `$1 = '' OR instance = $1` would read the whole table.
        let open = if open_only {
            "state IN ('open', 'claimed')"
        } else {
            "1 = 1"
        };
        let order = "ORDER BY CASE WHEN state IN ('open', 'claimed') THEN 0 ELSE 1 END, overdue DESC, due_at, instance, seq";
        let columns = TaskRow::COLUMNS;
        let rows = match instance {
            Some(id) => {
                let sql =
                    format!("SELECT {columns} FROM tasks WHERE instance = $1 AND {open} {order}");
                let key = [V::Text(id.to_owned())];
                in_read!(self.store, |db| db.rows(sql.into(), &key))?
            }
            None => {
                let sql = format!("SELECT {columns} FROM tasks WHERE {open} {order}");
                in_long_read!(self.store, |db| db.rows(sql.into(), &[]))?
            }
        };
        rows.iter().map(TaskRow::from_row).collect()
    }

    /// One task of a request, whatever its state, and the desk it belongs to.
    pub async fn task(&self, instance: &str, seq: u32) -> Result<Option<(String, TaskRow)>, Error> {
        let sql = format!(
            "SELECT {}, desk FROM tasks WHERE instance = $1 AND seq = $2",
            TaskRow::COLUMNS
        );
        let key = [V::Text(instance.to_owned()), V::Int(i64::from(seq))];
        let row = in_read!(self.store, |db| db.row(sql.into(), &key))?;
        row.map(|r| Ok((r.text(10)?, TaskRow::from_row(&r)?)))
            .transpose()
    }

    /// The tasks of these requests, by request and number, in one read.
    pub async fn tasks_of(&self, ids: &[&str]) -> Result<HashMap<(String, i64), TaskRow>, Error> {
        let select = format!("SELECT {} FROM tasks WHERE instance", TaskRow::COLUMNS);
        let (sql, keys) = among(&select, ids);
        let rows = in_read!(self.store, |db| db.rows(sql.into(), &keys))?;
        rows.iter()
            .map(|r| {
                let task = TaskRow::from_row(r)?;
                Ok(((task.instance.clone(), task.seq), task))
            })
            .collect()
    }

    /// Outbox messages of a request (for tests and `guichet mail list`).
    pub async fn outbox(&self, instance: &str) -> Result<Vec<(String, Effect)>, Error> {
        let sql = "SELECT id, payload FROM outbox WHERE instance = $1 ORDER BY created_at, id";
        let key = [V::Text(instance.to_owned())];
        let rows = in_read!(self.store, |db| db.rows(sql.into(), &key))?;
        rows.iter().map(keyed_json).collect()
    }

    /// Every deployed revision: (desk, revision, version, deployed at), newest first per desk.
    pub async fn definitions(&self) -> Result<Vec<(String, i64, i64, i64)>, Error> {
        let sql = "SELECT name, revision, version, deployed_at FROM definitions ORDER BY name, revision DESC";
        let rows = in_read!(self.store, |db| db.rows(sql.into(), &[]))?;
        rows.iter()
            .map(|r| Ok((r.text(0)?, r.int(1)?, r.int(2)?, r.int(3)?)))
            .collect()
    }

    /// Requests, newest first: of one desk and one status (`running`, `ended`,
    /// `cancelled`) when given, at most `limit`.
    pub async fn requests(
        &self,
        desk: Option<&str>,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RequestRow>, Error> {
        let sql = "SELECT id, name, title, status, result, started_at, ended_at FROM instances \
             WHERE ($1 = '' OR name = $1) AND ($2 = '' OR status = $2) ORDER BY started_at DESC, id LIMIT $3";
        let key = [
            V::Text(desk.unwrap_or("").to_owned()),
            V::Text(status.unwrap_or("").to_owned()),
            V::Int(limit),
        ];
        let rows = in_read!(self.store, |db| db.rows(sql.into(), &key))?;
        rows.iter()
            .map(|r| {
                Ok(RequestRow {
                    id: r.text(0)?,
                    desk: r.text(1)?,
                    title: r.text(2)?,
                    status: r.text(3)?,
                    result: r.opt_text(4)?,
                    started_at: r.int(5)?,
                    ended_at: r.opt_int(6)?,
                })
            })
            .collect()
    }

    /// How requests ended, by result (for tests and summaries).
    pub async fn count_by_status(&self) -> Result<Vec<(String, Option<EndResult>, i64)>, Error> {
        let sql = "SELECT status, result, COUNT(*) FROM instances GROUP BY status, result ORDER BY status, result";
        let rows = in_long_read!(self.store, |db| db.rows(sql.into(), &[]))?;
        rows.iter()
            .map(|r| {
                let result = r
                    .opt_text(1)?
                    .and_then(|s| serde_json::from_value(serde_json::Value::String(s)).ok());
                Ok((r.text(0)?, result, r.int(2)?))
            })
            .collect()
    }

    pub fn backend(&self) -> Backend {
        self.store.backend
    }
}

fn task_state(s: core::TaskState) -> &'static str {
    match s {
        core::TaskState::Open => "open",
        core::TaskState::Claimed => "claimed",
        core::TaskState::Completed => "completed",
        core::TaskState::Cancelled => "cancelled",
    }
}

/// `select` (ending with a column) `IN ($1, $2, ..)` for each of `values`, and their values
/// (at least one placeholder: `IN ()` is not SQL).
pub(crate) fn among(select: &str, values: &[&str]) -> (String, Vec<V>) {
    let marks: Vec<String> = (1..=values.len().max(1)).map(|n| format!("${n}")).collect();
    let mut keys: Vec<V> = values.iter().map(|v| V::Text((*v).to_owned())).collect();
    if keys.is_empty() {
        keys.push(V::MaybeText(None));
    }
    (format!("{select} IN ({})", marks.join(", ")), keys)
}

/// A request as a command starts from its row: its state parsed, its events unknown.
fn entry_of(row: CommandRow) -> Result<crate::runtime::hot::Entry, Error> {
    Ok(crate::runtime::hot::Entry {
        inst: serde_json::from_str(&row.state).map_err(corrupt)?,
        definition: row.definition,
        row_version: row.row_version,
        history_seq: row.history_seq,
        history_head: row.history_head,
        seen: None,
    })
}

/// A row of a key and a JSON value (a request's state, a message's payload), read back.
fn keyed_json<T: serde::de::DeserializeOwned>(
    r: &crate::store::db::Row,
) -> Result<(String, T), Error> {
    Ok((
        r.text(0)?,
        serde_json::from_str(&r.text(1)?).map_err(corrupt)?,
    ))
}

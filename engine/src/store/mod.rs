//! The database: a connection pool to SQLite (a file, the embedded default) or PostgreSQL,
//! with the schema migrated at start. The same SQL serves both (TEXT and BIGINT, `$1`
//! placeholders); the few differences (how a write transaction begins, row locks) are in
//! [`Backend`].

pub(crate) mod db;
pub mod documents;
pub mod history;
pub(crate) mod postgres;
pub(crate) mod rows;
pub(crate) mod sqlite;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Executor, Row as _, SqlSafeStr};

use crate::store::rows::{CommandRow, FactsRows};

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a database URL names, if any.
    fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("postgres") {
            Some(Backend::Postgres)
        } else if url.starts_with("sqlite") {
            Some(Backend::Sqlite)
        } else {
            None
        }
    }

    /// The statement that opens a read-only snapshot.
    pub(crate) fn begin_snapshot(self) -> &'static str {
        match self {
            Backend::Sqlite => "BEGIN",
            Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        }
    }

    /// How a transaction that will write begins. SQLite must take the write lock at once
    /// (`BEGIN IMMEDIATE`), or a later write in the transaction fails with "database is
    /// locked" without waiting for the busy timeout.
    pub(crate) fn begin_write(self) -> &'static str {
        match self {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        }
    }

    /// An aggregate that returns the rows of a query as one JSON array of arrays (text), so
    /// that a page of rows crosses from the database as one value: each row returned costs
    /// a hand-off between threads in sqlx's SQLite driver.
    pub(crate) fn json_rows(self, columns: &str) -> String {
        match self {
            Backend::Sqlite => format!("json_group_array(json_array({columns}))"),
            Backend::Postgres => {
                format!("COALESCE(json_agg(json_build_array({columns}))::text, '[]')")
            }
        }
    }
}

/// A pool and its backend.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    /// SQLite has one writer at a time: the process's write transactions take turns here,
    /// first come first served, instead of polling the database's lock (its busy handler
    /// sleeps up to 100 ms between tries, which made the slowest commands wait a second).
    /// Other processes on the same file still meet the busy timeout.
    write_turn: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
    /// SQLite on a file: the thread that runs the engine's command transactions with group
    /// commit ([`crate::store::sqlite::writer`]).
    pub(crate) writer: Option<std::sync::Arc<crate::store::sqlite::writer::Writer>>,
    /// SQLite on a file: read connections for the request path's point reads.
    pub(crate) readers: Option<std::sync::Arc<crate::store::db::Readers>>,
    /// Connections taken out of the pool for the engine's commands and point reads when there
    /// is no writer thread or reader (PostgreSQL).
    kept: std::sync::Arc<Kept>,
    /// PostgreSQL: the task that sends the engine's commands in batches ([`crate::store::postgres::writer`]).
    pub(crate) pg_writer: Option<crate::store::postgres::writer::PgWriter>,
    /// PostgreSQL: the task that reads the commands' requests together ([`crate::store::postgres::reader`]).
    pub(crate) pg_reader: Option<crate::store::postgres::reader::PgReader<CommandRow>>,
    /// PostgreSQL: the task that reads the facts' sources of ending requests together.
    pub(crate) pg_facts: Option<crate::store::postgres::reader::PgReader<FactsRows>>,
}

/// Connections taken out of sqlx's pool and kept: the pool tests a connection with a round
/// trip each time it hands one out and again each time one is given back (with PostgreSQL,
/// two of the three round trips of a one-statement read). A kept connection is tested by
/// use: one that failed is closed, not kept.
#[derive(Debug)]
pub(crate) struct Kept {
    idle: std::sync::Mutex<Vec<(sqlx::AnyConnection, PreparedNames)>>,
    /// At most this many taken at once (the pool's size).
    permits: tokio::sync::Semaphore,
}

/// The names of the statements prepared on a PostgreSQL connection (see
/// [`crate::store::db::postgres_batch`]).
pub(crate) type PreparedNames = std::collections::HashSet<u64>;

/// A connection taken from [`Store::take`]; kept for the next use if [`Taken::ok`] was
/// called, else closed (an error, or a caller that stopped half-way through a transaction).
pub(crate) struct Taken<'s> {
    conn: Option<sqlx::AnyConnection>,
    /// The statements [`crate::store::db::postgres_batch`] prepared on this connection.
    pub(crate) prepared: PreparedNames,
    kept: &'s Kept,
    _permit: tokio::sync::SemaphorePermit<'s>,
    ok: bool,
}

impl Taken<'_> {
    /// The connection is in a clean state (no transaction open, no error seen): keep it.
    pub(crate) fn ok(&mut self) {
        self.ok = true;
    }

    pub(crate) fn conn(&mut self) -> &mut sqlx::AnyConnection {
        self.conn
            .as_mut()
            .unwrap_or_else(|| unreachable!("a taken connection is only moved out on drop"))
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if self.ok
            && let Some(conn) = self.conn.take()
            && let Ok(mut idle) = self.kept.idle.lock()
        {
            idle.push((conn, std::mem::take(&mut self.prepared)));
        }
    }
}

/// Runs a command's transaction on a kept connection (see [`Kept`]): begins it, runs
/// `$body` with `$db` the connection, commits, or rolls back on an error.
macro_rules! in_kept_transaction {
    ($store:expr, |$db:ident| $body:expr) => {{
        let _turn = $store.write_turn().await;
        let mut taken = $store.take().await?;
        let begin = $store.backend.begin_write();
        let $db = taken.conn();
        crate::store::db::Db::exec($db, begin.into(), &[]).await?;
        match $body.await {
            Ok(r) => {
                crate::store::db::Db::exec(taken.conn(), "COMMIT".into(), &[]).await?;
                taken.ok();
                Ok(r)
            }
            Err(e) => {
                if crate::store::db::Db::exec(taken.conn(), "ROLLBACK".into(), &[])
                    .await
                    .is_ok()
                    && !matches!(e, crate::error::Error::Database(_))
                {
                    taken.ok();
                }
                Err(e)
            }
        }
    }};
}
pub(crate) use in_kept_transaction;

/// Runs a read written against [`crate::store::db::Db`] on a SQLite reader connection when the store
/// has them (on this thread: a point read), else statement by statement on kept connections
/// ([`PerStatement`]). `$db` is the connection inside `$body`, which must return
/// `Result<_, Error>`.
macro_rules! in_read {
    ($store:expr, |$db:ident| $body:expr) => {
        crate::store::read_on!($store, crate::store::on_this_thread, |$db| $body)
    };
}
pub(crate) use in_read;

/// [`in_read!`] for a read that may take long (a scan, a listing, an export): on SQLite it
/// runs on the caller's thread as a point read does, but tells tokio first
/// ([`off_the_workers`]), so that the other tasks of that worker thread move to another one
/// instead of waiting for it.
macro_rules! in_long_read {
    ($store:expr, |$db:ident| $body:expr) => {
        crate::store::read_on!($store, crate::store::off_the_workers, |$db| $body)
    };
}
pub(crate) use in_long_read;

/// What [`in_read!`] and [`in_long_read!`] share: `$run` runs the SQLite reader's work.
macro_rules! read_on {
    ($store:expr, $run:path, |$db:ident| $body:expr) => {
        match &$store.readers {
            Some(readers) => {
                $run(|| readers.with(|$db| crate::store::sqlite::writer::ready($body)))
            }
            None => {
                let $db = &mut crate::store::PerStatement(&$store);
                $body.await
            }
        }
    };
}
pub(crate) use read_on;

/// Runs work here and now (a point read takes microseconds).
pub(crate) fn on_this_thread<T>(work: impl FnOnce() -> T) -> T {
    work()
}

/// Runs reads in one snapshot: every statement of `$body` sees the database as it was when
/// the first ran (a commit meanwhile is seen whole or not at all). On SQLite a read
/// transaction on a reader connection, off the workers as [`in_long_read!`]; elsewhere a
/// read-only repeatable-read transaction on a kept connection. Nothing is written.
macro_rules! in_snapshot {
    ($store:expr, |$db:ident| $body:expr) => {
        match &$store.readers {
            Some(readers) => crate::store::off_the_workers(|| {
                readers.with(|$db| {
                    crate::store::sqlite::writer::ready(async {
                        crate::store::db::Db::exec($db, "BEGIN".into(), &[]).await?;
                        let r = $body.await;
                        crate::store::db::Db::exec($db, "ROLLBACK".into(), &[]).await?;
                        r
                    })
                })
            }),
            None => {
                let mut taken = $store.take().await?;
                let begin = $store.backend.begin_snapshot();
                let $db = taken.conn();
                crate::store::db::Db::exec($db, begin.into(), &[]).await?;
                let r = $body.await;
                if crate::store::db::Db::exec(taken.conn(), "ROLLBACK".into(), &[])
                    .await
                    .is_ok()
                {
                    taken.ok();
                }
                r
            }
        }
    };
}
pub(crate) use in_snapshot;

/// Runs blocking work on a worker thread of tokio's multi-threaded runtime after handing that
/// worker's other tasks over (`block_in_place`); as it is elsewhere (a current-thread runtime,
/// as in tests, or none).
pub(crate) fn off_the_workers<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// Reads outside a transaction, each statement on a kept connection taken for it and given
/// back at once: a read that waits for something else between two statements (a command's
/// preparation waiting for [`crate::store::postgres::reader`]) holds no connection meanwhile, so those
/// waits can never take all of them.
pub(crate) struct PerStatement<'s>(pub(crate) &'s Store);

impl PerStatement<'_> {
    /// Runs one statement on a kept connection, kept again unless the database failed.
    async fn on_kept<T>(
        &self,
        run: impl AsyncFnOnce(&mut sqlx::AnyConnection) -> Result<T, crate::error::Error>,
    ) -> Result<T, crate::error::Error> {
        let mut taken = self.0.take().await?;
        let r = run(taken.conn()).await;
        if !matches!(r, Err(crate::error::Error::Database(_))) {
            taken.ok();
        }
        r
    }
}

impl crate::store::db::Db for PerStatement<'_> {
    async fn exec(
        &mut self,
        sql: std::borrow::Cow<'static, str>,
        params: &[crate::store::db::V],
    ) -> Result<u64, crate::error::Error> {
        self.on_kept(async |conn| conn.exec(sql, params).await)
            .await
    }

    async fn rows(
        &mut self,
        sql: std::borrow::Cow<'static, str>,
        params: &[crate::store::db::V],
    ) -> Result<Vec<crate::store::db::Row>, crate::error::Error> {
        self.on_kept(async |conn| conn.rows(sql, params).await)
            .await
    }
}

/// PostgreSQL connections of a node: the pool's, and as many kept ones (see [`Kept`]).
const CONNECTIONS: usize = 8;

/// The schema, embedded in the binary; applied in order, each once. The same SQL on both
/// backends but for one migration (a database never changes backend).
fn migrator(backend: Backend) -> Migrator {
    let m = |version, description: &'static str, sql: &'static str| {
        Migration::new(
            version,
            description.into(),
            MigrationType::Simple,
            sql.into_sql_str(),
            false,
        )
    };
    Migrator::with_migrations(vec![
        m(1, "init", include_str!("../../migrations/0001_init.sql")),
        m(
            2,
            "outbox delivery",
            include_str!("../../migrations/0002_outbox_delivery.sql"),
        ),
        m(3, "links", include_str!("../../migrations/0003_links.sql")),
        m(
            4,
            "callbacks",
            include_str!("../../migrations/0004_callbacks.sql"),
        ),
        m(5, "facts", include_str!("../../migrations/0005_facts.sql")),
        m(6, "users", include_str!("../../migrations/0006_users.sql")),
        m(
            7,
            "api tokens",
            include_str!("../../migrations/0007_api_tokens.sql"),
        ),
        m(
            8,
            "task desk",
            include_str!("../../migrations/0008_task_desk.sql"),
        ),
        m(
            9,
            "outbox provider",
            include_str!("../../migrations/0009_outbox_provider.sql"),
        ),
        m(
            10,
            "digests",
            include_str!("../../migrations/0010_digests.sql"),
        ),
        m(
            11,
            "kpi rollups",
            include_str!("../../migrations/0011_kpi_rollups.sql"),
        ),
        m(
            12,
            "history index",
            include_str!("../../migrations/0012_history_index.sql"),
        ),
        m(
            13,
            "open task indexes",
            include_str!("../../migrations/0013_open_task_indexes.sql"),
        ),
        m(
            14,
            "step visits index",
            include_str!("../../migrations/0014_step_visits_index.sql"),
        ),
        m(
            15,
            "timers in requests",
            include_str!("../../migrations/0015_timers_in_requests.sql"),
        ),
        m(
            16,
            "command rows without foreign keys",
            match backend {
                Backend::Postgres => {
                    include_str!("../../migrations/0016_command_rows_without_foreign_keys.sql")
                }
                // Dropping a foreign key means rebuilding the table on SQLite, whose check is
                // a lookup in pages already cached: they stay.
                Backend::Sqlite => "SELECT 1",
            },
        ),
        m(
            17,
            "outbox captured",
            include_str!("../../migrations/0017_outbox_captured.sql"),
        ),
        m(
            18,
            "disabled accounts",
            include_str!("../../migrations/0018_disabled_accounts.sql"),
        ),
        m(
            19,
            "submission keys",
            include_str!("../../migrations/0019_submission_keys.sql"),
        ),
        m(
            20,
            "token scopes",
            include_str!("../../migrations/0020_token_scopes.sql"),
        ),
        m(21, "nodes", include_str!("../../migrations/0021_nodes.sql")),
        m(
            22,
            "visit exits",
            include_str!("../../migrations/0022_visit_exits.sql"),
        ),
    ])
}

impl Store {
    /// Connects and migrates. `url` is `sqlite://path/to/file.db` or `postgres://...`.
    pub async fn open(url: &str) -> Result<Store, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url).ok_or_else(|| {
            sqlx::Error::Configuration(
                format!("unsupported database URL `{url}`: use sqlite://FILE or postgres://...")
                    .into(),
            )
        })?;
        if backend == Backend::Sqlite {
            check_sqlite_file(url)?;
        }
        let url = match backend {
            // Create the file when it does not exist yet.
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
            }
            _ => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => CONNECTIONS as u32,
            })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL for concurrent readers; FULL so that a commit is on disk before
                        // anyone is told it happened; wait on a busy database, do not fail.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        // Sorts and unions (the inbox's page) use temporary b-trees: in
                        // memory, not in temporary files.
                        conn.execute("PRAGMA temp_store = MEMORY").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        migrator(backend).run(&pool).await?;
        let write_turn =
            (backend == Backend::Sqlite).then(|| std::sync::Arc::new(tokio::sync::Mutex::new(())));
        let file = sqlite_file(&url)?;
        let writer = match (&write_turn, &file) {
            (Some(turn), Some(path)) => Some(std::sync::Arc::new(
                crate::store::sqlite::writer::Writer::start(path, turn.clone())
                    .map_err(|e| sqlx::Error::Configuration(e.to_string().into()))?,
            )),
            _ => None,
        };
        let readers = file.map(|path| std::sync::Arc::new(crate::store::db::Readers::new(&path)));
        let kept = std::sync::Arc::new(Kept {
            idle: std::sync::Mutex::new(Vec::new()),
            permits: tokio::sync::Semaphore::new(CONNECTIONS),
        });
        let pg_writer = (backend == Backend::Postgres)
            .then(|| crate::store::postgres::writer::PgWriter::start(kept.clone(), pool.clone()));
        let pg_reader = (backend == Backend::Postgres).then(|| {
            crate::store::postgres::reader::PgReader::start(
                kept.clone(),
                pool.clone(),
                read_requests,
            )
        });
        let pg_facts = (backend == Backend::Postgres).then(|| {
            crate::store::postgres::reader::PgReader::start(kept.clone(), pool.clone(), read_facts)
        });
        Ok(Store {
            pool,
            backend,
            write_turn,
            writer,
            readers,
            kept,
            pg_writer,
            pg_reader,
            pg_facts,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs statements on PostgreSQL in one round trip, as one transaction
    /// ([`crate::store::db::postgres_batch`]); returns how many rows each changed.
    pub(crate) async fn postgres_batch(
        &self,
        statements: &[crate::store::db::Statement],
    ) -> Result<Vec<u64>, crate::error::Error> {
        match run_postgres(&self.kept, &self.pool, &[statements], false).await? {
            Ran::Done(changed) => Ok(changed),
            Ran::Stale(_) => Err(crate::error::Error::Corrupt(
                "an unguarded batch was found stale".into(),
            )),
        }
    }

    /// A connection out of the pool, kept after use unless something went wrong with it.
    pub(crate) async fn take(&self) -> Result<Taken<'_>, sqlx::Error> {
        take_from(&self.kept, &self.pool).await
    }

    /// Waits for this process's turn to write (SQLite); hold it until the transaction ends.
    pub(crate) async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.write_turn {
            Some(turn) => Some(turn.clone().lock_owned().await),
            None => None,
        }
    }

    /// The transactions the SQLite writer thread has committed and the commands they carried
    /// (their ratio is the group commit's batch size); `None` without a writer thread.
    pub fn group_commits(&self) -> Option<(u64, u64)> {
        use std::sync::atomic::Ordering;
        self.writer.as_ref().map(|w| {
            (
                w.counters.commits.load(Ordering::Relaxed),
                w.counters.commands.load(Ordering::Relaxed),
            )
        })
    }

    /// The pool, for tools and tests that read the tables directly.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn close(&self) {
        use sqlx::Connection;
        let kept: Vec<_> = self
            .kept
            .idle
            .lock()
            .map(|mut idle| idle.drain(..).collect())
            .unwrap_or_default();
        for (conn, _) in kept {
            let _ = conn.close().await;
        }
        self.pool.close().await;
        if let Some(readers) = &self.readers {
            readers.close();
        }
    }
}

/// The file of a SQLite URL; `None` for an in-memory database (which another connection
/// cannot open: it has no writer thread).
/// A file that exists must be a SQLite database: any other (a mistyped path to a document,
/// a PostgreSQL dump) is refused at once with what it is, instead of the pool's retries
/// ending in "pool timed out".
fn check_sqlite_file(url: &str) -> Result<(), sqlx::Error> {
    use std::io::Read as _;
    let Some(path) = sqlite_file(url)? else {
        return Ok(());
    };
    let Ok(mut file) = std::fs::File::open(&path) else {
        // Absent (created), or unreadable (SQLite says why).
        return Ok(());
    };
    let mut head = [0u8; 16];
    let read = file.read(&mut head).unwrap_or(0);
    if read == 0 || head.starts_with(b"SQLite format 3\0") {
        return Ok(());
    }
    Err(sqlx::Error::Configuration(
        format!(
            "{} is not a SQLite database (it does not start with SQLite's header): check --database",
            path.display()
        )
        .into(),
    ))
}

/// The file of a SQLite URL; `None` for PostgreSQL, an in-memory database or a URL that does
/// not parse.
pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    sqlite_file(url).ok().flatten()
}

fn sqlite_file(url: &str) -> Result<Option<std::path::PathBuf>, sqlx::Error> {
    if !url.starts_with("sqlite") || url.contains(":memory:") || url.contains("mode=memory") {
        return Ok(None);
    }
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
    Ok(Some(options.get_filename().to_owned()))
}

/// The disk's ceiling for durable commits, in commits a second: a loop of one-row
/// transactions for `seconds` on a scratch SQLite file next to the database, set up as the
/// engine's (WAL, `synchronous=FULL`), through the same library as the engine's writer
/// thread (rusqlite, on a thread of its own). `None` for PostgreSQL.
pub async fn disk_ceiling(database: &str, seconds: f64) -> Result<Option<f64>, sqlx::Error> {
    let Some(path) = sqlite_file(database)? else {
        return Ok(None);
    };
    let scratch = format!("{}.ceiling", path.display());
    let remove = {
        let scratch = scratch.clone();
        move || {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{scratch}{suffix}"));
            }
        }
    };
    remove();
    let measure = move || -> rusqlite::Result<f64> {
        let conn = rusqlite::Connection::open(&scratch)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; CREATE TABLE t (id INTEGER PRIMARY KEY, v BIGINT NOT NULL);",
        )?;
        let mut insert = conn.prepare("INSERT INTO t (v) VALUES (?1)")?;
        let began = std::time::Instant::now();
        let mut commits = 0i64;
        while began.elapsed().as_secs_f64() < seconds {
            // Each statement outside a transaction is one durable commit.
            insert.execute([commits])?;
            commits += 1;
        }
        #[allow(clippy::cast_precision_loss)]
        Ok(commits as f64 / began.elapsed().as_secs_f64())
    };
    let rate = tokio::task::spawn_blocking(measure)
        .await
        .map_err(|e| sqlx::Error::Protocol(e.to_string()))?
        .map_err(|e| sqlx::Error::Protocol(e.to_string()));
    remove();
    Ok(Some(rate?))
}

/// Writes `requests` as a list of literals (for `IN (..)`): a text with placeholders would
/// be prepared and cached by sqlx once for each number of ids.
fn literal_list(requests: &[String]) -> String {
    let mut out = String::new();
    for (n, id) in requests.iter().enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        crate::store::db::push_literal(&mut out, &crate::store::db::V::Text(id.clone()));
    }
    out
}

/// Runs a simple query (literals written in) on a kept connection.
async fn simple_query(
    kept: &Kept,
    pool: &AnyPool,
    sql: String,
) -> Result<Vec<sqlx::any::AnyRow>, sqlx::Error> {
    let mut taken = take_from(kept, pool).await?;
    let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .fetch_all(taken.conn())
        .await?;
    taken.ok();
    Ok(rows)
}

/// The rows of requests on PostgreSQL, in one query ([`crate::store::postgres::reader`]); those that exist.
pub(crate) fn read_requests(
    kept: Arc<Kept>,
    pool: AnyPool,
    requests: Vec<String>,
) -> BoxFuture<'static, Result<HashMap<String, CommandRow>, crate::error::Error>> {
    Box::pin(async move {
        let sql = format!(
            "SELECT {}, id FROM instances WHERE id IN ({})",
            CommandRow::COLUMNS,
            literal_list(&requests)
        );
        simple_query(&kept, &pool, sql)
            .await?
            .iter()
            .map(|r| {
                let row = crate::store::db::row_of(r)?;
                Ok((row.text(5)?, CommandRow::from_row(&row)?))
            })
            .collect()
    })
}

/// What the facts of requests that end are derived from, on PostgreSQL, in one query
/// ([`crate::store::postgres::reader`]): each one's history rows and its tasks' deadlines, those of every
/// entry stored (the caller keeps those up to the tip it read).
pub(crate) fn read_facts(
    kept: Arc<Kept>,
    pool: AnyPool,
    requests: Vec<String>,
) -> BoxFuture<'static, Result<HashMap<String, FactsRows>, crate::error::Error>> {
    Box::pin(async move {
        let ids = literal_list(&requests);
        // History rows have a body, deadlines a due time.
        let sql = format!(
            "SELECT instance, seq, body, CAST(NULL AS BIGINT) FROM history WHERE instance IN ({ids}) \
             UNION ALL SELECT instance, seq, CAST(NULL AS TEXT), due_at FROM tasks \
             WHERE instance IN ({ids}) AND due_at IS NOT NULL"
        );
        let mut found: HashMap<String, FactsRows> = HashMap::new();
        for r in simple_query(&kept, &pool, sql).await? {
            let rows = found.entry(r.try_get(0)?).or_default();
            let seq: i64 = r.try_get(1)?;
            match r.try_get::<Option<String>, _>(2)? {
                Some(body) => rows.history.push((seq, body)),
                None => rows.due.push((seq, r.try_get(3)?)),
            }
        }
        Ok(found)
    })
}

/// What a batch of commands did on PostgreSQL ([`run_postgres`]).
pub(crate) enum Ran {
    /// Written: how many rows each statement sent changed, in order (a guard's count is its
    /// SELECT's; guarded commands' inserts are merged, so only unguarded counts are the
    /// statements').
    Done(Vec<u64>),
    /// Nothing written: the request of the command of this rank changed since it was read.
    Stale(usize),
}

/// A connection out of `pool`, kept in `kept` after use unless something went wrong with it.
async fn take_from<'s>(kept: &'s Kept, pool: &AnyPool) -> Result<Taken<'s>, sqlx::Error> {
    let permit = kept
        .permits
        .acquire()
        .await
        .map_err(|_| sqlx::Error::PoolClosed)?;
    let idle = kept.idle.lock().ok().and_then(|mut idle| idle.pop());
    let (conn, prepared) = match idle {
        Some(kept) => kept,
        None => (pool.acquire().await?.detach(), PreparedNames::default()),
    };
    Ok(Taken {
        conn: Some(conn),
        prepared,
        kept,
        _permit: permit,
        ok: false,
    })
}

/// Runs commands' statements on PostgreSQL in one round trip, as one transaction
/// ([`crate::store::db::postgres_batch`]).
pub(crate) async fn run_postgres(
    kept: &Kept,
    pool: &AnyPool,
    commands: &[&[crate::store::db::Statement]],
    guarded: bool,
) -> Result<Ran, crate::error::Error> {
    use futures_util::TryStreamExt as _;
    let mut taken = take_from(kept, pool).await?;
    let batch = crate::store::db::postgres_batch(commands, guarded, &taken.prepared)?;
    for (name, prepare) in batch.prepare {
        sqlx::raw_sql(sqlx::AssertSqlSafe(prepare))
            .execute(taken.conn())
            .await?;
        taken.prepared.insert(name);
    }
    let results = sqlx::raw_sql(sqlx::AssertSqlSafe(batch.sql))
        .execute_many(taken.conn())
        .try_collect::<Vec<_>>()
        .await;
    match results {
        Ok(results) => {
            taken.ok();
            Ok(Ran::Done(
                results.iter().map(|r| r.rows_affected()).collect(),
            ))
        }
        // An answer, not a broken connection: the batch's implicit transaction was rolled
        // back, the connection is ready for the next.
        Err(sqlx::Error::Database(e))
            if guarded && let Some(k) = crate::store::db::stale_command(&*e) =>
        {
            taken.ok();
            Ok(Ran::Stale(k))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database of the schema before its timers moved into the requests' rows, with a
    /// request holding two timers and one holding none, is migrated: the first's row says
    /// when its earliest timer falls due, the second's says none, the table is gone.
    async fn timers_move_into_the_requests_rows(url: &str) {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(url).await.unwrap();
        let backend = Backend::of_url(url).unwrap();
        migrator(backend).run_to(14, &pool).await.unwrap();
        for sql in [
            "INSERT INTO definitions VALUES ('h', 'desk', 1, 1, '', 0)",
            "INSERT INTO instances (id, definition, name, title, status, state, row_version, started_at, history_seq, history_head) \
             VALUES ('a', 'h', 'desk', '', 'running', '{}', 1, 0, 0, ''), ('b', 'h', 'desk', '', 'running', '{}', 1, 0, 0, '')",
            "INSERT INTO timers VALUES ('a', 3, 500, '{}'), ('a', 4, 200, '{}')",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
        let store = Store::open(url).await.unwrap();
        let rows = sqlx::query("SELECT id, next_timer_at FROM instances ORDER BY id")
            .fetch_all(&store.pool)
            .await
            .unwrap();
        let got: Vec<(String, Option<i64>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(got, [("a".into(), Some(200)), ("b".into(), None)]);
        assert!(
            sqlx::query("SELECT 1 FROM timers")
                .fetch_all(&store.pool)
                .await
                .is_err(),
            "the timers table is dropped"
        );
        store.close().await;
    }

    #[tokio::test]
    async fn timers_move_into_the_requests_rows_on_sqlite() {
        let path = std::env::temp_dir().join(format!("guichet_migrate_{}.db", std::process::id()));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        timers_move_into_the_requests_rows(&format!("sqlite://{}?mode=rwc", path.display())).await;
    }

    #[tokio::test]
    async fn timers_move_into_the_requests_rows_on_postgres() {
        let admin = std::env::var("GUICHET_TEST_POSTGRES")
            .expect("GUICHET_TEST_POSTGRES is not set: run the tests with scripts/test");
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&admin).await.unwrap();
        let name = format!("guichet_migrate_{}", std::process::id());
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name}"
        )))
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let base = admin.rsplit_once('/').unwrap().0;
        timers_move_into_the_requests_rows(&format!("{base}/{name}")).await;
    }
}

//! The statements of a write transaction, over either database connection: sqlx's (PostgreSQL,
//! and SQLite when there is no writer thread) or the SQLite writer thread's own (rusqlite, see
//! [`crate::store::sqlite::writer`]). The engine's command transactions are written once, against [`Db`].
//!
//! SQL is written with `$1` placeholders, as everywhere in the engine; on the writer's
//! connection they become SQLite's `?1` (explicit positions: SQLite would number `$1`-style
//! names in order of first appearance).

use std::borrow::Cow;

use sqlx::Row as _;

use crate::error::Error;

/// A value bound to a statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum V {
    Int(i64),
    MaybeInt(Option<i64>),
    Real(f64),
    Text(String),
    MaybeText(Option<String>),
    /// Bytes (the indicators' stored parts).
    Blob(Vec<u8>),
}

/// A row returned by a query, read by column position.
#[derive(Debug)]
pub(crate) struct Row(Vec<V>);

impl Row {
    fn get(&self, i: usize) -> Result<&V, Error> {
        self.0
            .get(i)
            .ok_or_else(|| Error::Corrupt(format!("a query returned no column {i}")))
    }

    pub(crate) fn opt_int(&self, i: usize) -> Result<Option<i64>, Error> {
        match self.get(i)? {
            V::Int(x) | V::MaybeInt(Some(x)) => Ok(Some(*x)),
            V::MaybeInt(None) | V::MaybeText(None) => Ok(None),
            v => Err(Error::Corrupt(format!(
                "column {i} is {v:?}, not an integer"
            ))),
        }
    }

    pub(crate) fn int(&self, i: usize) -> Result<i64, Error> {
        self.opt_int(i)?
            .ok_or_else(|| Error::Corrupt(format!("column {i} is null, not an integer")))
    }

    pub(crate) fn opt_text(&self, i: usize) -> Result<Option<String>, Error> {
        match self.get(i)? {
            V::Text(x) | V::MaybeText(Some(x)) => Ok(Some(x.clone())),
            V::MaybeInt(None) | V::MaybeText(None) => Ok(None),
            v => Err(Error::Corrupt(format!("column {i} is {v:?}, not text"))),
        }
    }

    pub(crate) fn text(&self, i: usize) -> Result<String, Error> {
        self.opt_text(i)?
            .ok_or_else(|| Error::Corrupt(format!("column {i} is null, not text")))
    }

    /// A number stored as a real (an integer read as one: SQLite keeps whole reals as such
    /// in some expressions).
    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn real(&self, i: usize) -> Result<f64, Error> {
        match self.get(i)? {
            V::Real(x) => Ok(*x),
            V::Int(x) | V::MaybeInt(Some(x)) => Ok(*x as f64),
            v => Err(Error::Corrupt(format!("column {i} is {v:?}, not a number"))),
        }
    }

    pub(crate) fn blob(&self, i: usize) -> Result<&[u8], Error> {
        match self.get(i)? {
            V::Blob(x) => Ok(x),
            v => Err(Error::Corrupt(format!("column {i} is {v:?}, not bytes"))),
        }
    }
}

/// A connection inside a write transaction. (No generic methods: a generic async method
/// here makes rustc lose track of lifetimes when it checks that the callers' futures are
/// `Send`.)
pub(crate) trait Db {
    /// Runs a statement; returns how many rows it changed.
    async fn exec(&mut self, sql: Cow<'static, str>, params: &[V]) -> Result<u64, Error>;

    /// Runs a query.
    async fn rows(&mut self, sql: Cow<'static, str>, params: &[V]) -> Result<Vec<Row>, Error>;

    /// The first row of a query.
    async fn row(&mut self, sql: Cow<'static, str>, params: &[V]) -> Result<Option<Row>, Error> {
        Ok(self.rows(sql, params).await?.into_iter().next())
    }
}

fn bind<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    params: &[V],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for v in params {
        q = match v {
            V::Int(x) => q.bind(*x),
            V::MaybeInt(x) => q.bind(*x),
            V::Real(x) => q.bind(*x),
            V::Blob(x) => q.bind(x.clone()),
            V::Text(x) => q.bind(x.clone()),
            V::MaybeText(x) => q.bind(x.clone()),
        };
    }
    q
}

/// A column of a sqlx row, as the engine stores values: integer, real or text (or null).
fn any_value(r: &sqlx::any::AnyRow, i: usize) -> Result<V, Error> {
    if let Ok(x) = r.try_get::<Option<i64>, _>(i) {
        return Ok(V::MaybeInt(x));
    }
    if let Ok(x) = r.try_get::<Option<String>, _>(i) {
        return Ok(V::MaybeText(x));
    }
    if let Ok(x) = r.try_get::<f64, _>(i) {
        return Ok(V::Real(x));
    }
    Ok(V::Blob(r.try_get::<Vec<u8>, _>(i)?))
}

impl Db for sqlx::AnyConnection {
    async fn exec(&mut self, sql: Cow<'static, str>, params: &[V]) -> Result<u64, Error> {
        let q = bind(sqlx::query(sqlx::AssertSqlSafe(sql)), params);
        Ok(q.execute(&mut *self).await?.rows_affected())
    }

    async fn rows(&mut self, sql: Cow<'static, str>, params: &[V]) -> Result<Vec<Row>, Error> {
        let q = bind(sqlx::query(sqlx::AssertSqlSafe(sql)), params);
        q.fetch_all(&mut *self).await?.iter().map(row_of).collect()
    }
}

/// A row as sqlx's `Any` driver gives it.
pub(crate) fn row_of(r: &sqlx::any::AnyRow) -> Result<Row, Error> {
    Ok(Row((0..r.len())
        .map(|i| any_value(r, i))
        .collect::<Result<_, _>>()?))
}

/// The writer thread's connection, inside its transaction.
pub(crate) struct Lite<'c> {
    pub(crate) conn: &'c rusqlite::Connection,
}

impl std::fmt::Debug for Lite<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lite")
    }
}

/// `$1`-style placeholders as SQLite's explicit `?1`.
fn positional(sql: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(sql.len());
    for piece in pieces(sql) {
        match piece {
            Piece::Sql(text) => out.push_str(text),
            Piece::Param(n) => {
                let _ = write!(out, "?{n}");
            }
        }
    }
    out
}

impl rusqlite::ToSql for V {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            V::Int(x) | V::MaybeInt(Some(x)) => ValueRef::Integer(*x),
            V::Real(x) => ValueRef::Real(*x),
            V::Blob(x) => ValueRef::Blob(x),
            V::Text(x) | V::MaybeText(Some(x)) => ValueRef::Text(x.as_bytes()),
            V::MaybeInt(None) | V::MaybeText(None) => ValueRef::Null,
        }))
    }
}

impl From<rusqlite::Error> for Error {
    /// Busy and locked may pass by themselves; other SQLite failures (disk full, read-only,
    /// corrupt, I/O, a constraint broken by a bug) do not.
    fn from(e: rusqlite::Error) -> Error {
        use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
        match e.sqlite_error_code() {
            Some(DatabaseBusy | DatabaseLocked) => Error::Sqlite(e.to_string()),
            Some(_) => Error::SqliteFault(e.to_string()),
            None => Error::Sqlite(e.to_string()),
        }
    }
}

/// A column of a rusqlite row.
fn lite_value(r: &rusqlite::Row<'_>, i: usize) -> Result<V, Error> {
    use rusqlite::types::ValueRef;
    Ok(match r.get_ref(i)? {
        ValueRef::Null => V::MaybeInt(None),
        ValueRef::Integer(x) => V::Int(x),
        ValueRef::Real(x) => V::Real(x),
        ValueRef::Text(x) => V::Text(
            std::str::from_utf8(x)
                .map_err(|e| Error::Corrupt(format!("column {i} is not UTF-8: {e}")))?
                .to_owned(),
        ),
        ValueRef::Blob(x) => V::Blob(x.to_vec()),
    })
}

impl Db for Lite<'_> {
    async fn exec(&mut self, sql: Cow<'static, str>, params: &[V]) -> Result<u64, Error> {
        let mut statement = self.conn.prepare_cached(&positional(&sql))?;
        let changed = statement.execute(rusqlite::params_from_iter(params))?;
        Ok(changed as u64)
    }

    async fn rows(&mut self, sql: Cow<'static, str>, params: &[V]) -> Result<Vec<Row>, Error> {
        let mut statement = self.conn.prepare_cached(&positional(&sql))?;
        let mut rows = statement.query(rusqlite::params_from_iter(params))?;
        let columns = rows.as_ref().map_or(0, rusqlite::Statement::column_count);
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(Row((0..columns)
                .map(|i| lite_value(row, i))
                .collect::<Result<_, _>>()?));
        }
        Ok(out)
    }
}

/// Read connections to a SQLite file for the point reads of the request path (an API token,
/// a request, its tasks): the query runs on the caller's thread, in microseconds, without the
/// two hand-offs between threads that sqlx's driver makes per statement. Reads that may take
/// long (listings, scans, exports: `in_long_read!`) run here too, after tokio has moved the
/// worker's other tasks away; the indicators' snapshot and fold still go through sqlx.
pub(crate) struct Readers {
    path: std::path::PathBuf,
    idle: std::sync::Mutex<Vec<rusqlite::Connection>>,
    /// Set when the store is closed: reads fail as the pool's would.
    closed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Idle read connections kept open (more are opened when more readers run at once).
const IDLE_READERS: usize = 8;

impl Readers {
    pub(crate) fn new(path: &std::path::Path) -> Readers {
        Readers {
            path: path.to_owned(),
            idle: std::sync::Mutex::new(Vec::new()),
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Closes the idle connections; reads after this fail.
    pub(crate) fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }

    fn open(&self) -> Result<rusqlite::Connection, Error> {
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }

    /// Runs `f` on an idle read connection (outside any transaction: each statement reads
    /// the last committed state).
    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&mut Lite<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Database(sqlx::Error::PoolClosed));
        }
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) => conn,
            None => self.open()?,
        };
        let r = f(&mut Lite { conn: &conn });
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < IDLE_READERS
        {
            idle.push(conn);
        }
        r
    }
}

/// Commands' statements as one text for PostgreSQL's simple query protocol, their values
/// written in as literals: the whole batch crosses in one round trip and runs as one
/// implicit transaction (an error in any statement rolls back all of them), instead of a
/// round trip per statement and two more for `BEGIN` and `COMMIT`. With `guarded`, the first
/// statement of each command (an UPDATE or an INSERT) must change exactly one row, or the
/// batch fails there, before the statements after it run, with an error that names the
/// command ([`stale_command`]): a request's conditional update on the version that was read;
/// guarded commands are on distinct requests, and their inserts of rows are merged
/// ([`merged`]).
///
/// Each statement is prepared on the connection the first time it is sent there
/// (`PREPARE`, its parameter types inferred by the server) and run with `EXECUTE` and the
/// values: the server parses and plans it once per connection instead of at every batch
/// (a third of its work on this path otherwise). `prepared` names the statements the
/// connection already has; those it lacks are returned apart ([`Batch::prepare`]), each to
/// be sent alone before the batch: the server keeps a prepared statement's whole query
/// text and copies it at every `EXECUTE`, so a `PREPARE` sent inside a batch would have
/// every later `EXECUTE` copy that batch with all its values (an eighth of the server's
/// work, measured).
///
/// Text is written as `E'...'` with quotes and backslashes doubled, which reads back the same
/// whatever `standard_conforming_strings` says; placeholders inside quoted SQL are left alone.
pub(crate) fn postgres_batch(
    commands: &[&[Statement]],
    guarded: bool,
    prepared: &std::collections::HashSet<u64>,
) -> Result<Batch, Error> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut prepare: Vec<(u64, String)> = Vec::new();
    let sent = if guarded {
        merged(commands)
    } else {
        commands
            .iter()
            .flat_map(|statements| statements.iter().map(|s| Sent::One(s, None)))
            .collect()
    };
    for statement in sent {
        let (sql, params, rank) = match statement {
            Sent::One(statement, rank) => (&statement.0, &statement.1, rank),
            Sent::Rows(head, tail, rows) => {
                // Values written in: the text differs with the number of rows, not worth
                // preparing.
                out.push_str(head);
                for (n, (values, statement)) in rows.iter().enumerate() {
                    if n > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&postgres_literals(values, &statement.1)?);
                }
                out.push_str(tail);
                out.push_str(";\n");
                continue;
            }
        };
        // The guard: the command's rank as one more value, written into the error when
        // no row changed (a text that is not a number; a constant would fail at planning).
        let sql: Cow<'_, str> = if rank.is_some() {
            format!(
                "WITH changed AS ({sql} RETURNING 1) SELECT (CASE WHEN COUNT(*) = 1 THEN '1' \
                 ELSE '{STALE_MARK}' || ${}::text END)::int FROM changed",
                params.len() + 1
            )
            .into()
        } else {
            sql.as_ref().into()
        };
        let rank = rank.map(|k| V::Text(k.to_string()));
        let values = || params.iter().chain(rank.as_ref());
        let name = {
            use std::hash::{Hash as _, Hasher as _};
            let mut h = std::hash::DefaultHasher::new();
            sql.hash(&mut h);
            h.finish()
        };
        let mut known = prepared.contains(&name) || prepare.iter().any(|(n, _)| *n == name);
        if !known
            && prepared.len() + prepare.len() < MAX_PREPARED
            && placeholders(&sql) == values().count()
        {
            prepare.push((name, format!("PREPARE guichet_{name:016x} AS {sql}")));
            known = true;
        }
        if known {
            let _ = write!(out, "EXECUTE guichet_{name:016x}");
            for (n, value) in values().enumerate() {
                out.push_str(if n == 0 { "(" } else { ", " });
                push_literal(&mut out, value);
            }
            if values().next().is_some() {
                out.push(')');
            }
        } else {
            out.push_str(&postgres_literals(
                &sql,
                &values().cloned().collect::<Vec<_>>(),
            )?);
        }
        out.push_str(";\n");
    }
    Ok(Batch { sql: out, prepare })
}

/// A statement of a batch as sent.
enum Sent<'a> {
    /// As written; with its command's rank when it is the command's guard.
    One(&'a Statement, Option<usize>),
    /// The rows of the same insert in several commands, as one statement: the text before
    /// the rows, after them, and the statements whose rows they are (with the text of
    /// their rows).
    Rows(&'a str, &'a str, Vec<(&'a str, &'a Statement)>),
}

/// The statements of guarded commands (on distinct requests) in the order sent: every
/// command's guard first, in the commands' order (the order in which rows are locked),
/// then the rest of each command in its own order, where the same insert in several commands
/// (`INSERT INTO t (..) VALUES (..)`, the same text around the rows) becomes one statement
/// with all their rows. The server starts, runs and ends a statement once for them all, a
/// third of the statements of a request in the batches of the benchmark's workload. Rows of
/// distinct requests never share a key; were two to conflict, the batch fails and each
/// command runs again alone ([`crate::store::postgres::writer`]).
fn merged<'a>(commands: &[&'a [Statement]]) -> Vec<Sent<'a>> {
    let mut guards = Vec::new();
    let mut rest: Vec<Sent<'a>> = Vec::new();
    for (k, statements) in commands.iter().enumerate() {
        let Some((guard, others)) = statements.split_first() else {
            continue;
        };
        guards.push(Sent::One(guard, Some(k)));
        // Where the command's next statement may go: after its previous one.
        let mut at = 0;
        for statement in others {
            let Some((head, values, tail)) = rows_insert(&statement.0) else {
                rest.insert(at, Sent::One(statement, None));
                at += 1;
                continue;
            };
            let same = rest[at..]
                .iter()
                .position(|s| matches!(s, Sent::Rows(h, t, _) if (*h, *t) == (head, tail)));
            match same {
                Some(i) => {
                    if let Sent::Rows(_, _, rows) = &mut rest[at + i] {
                        rows.push((values, statement));
                    }
                    at += i + 1;
                }
                None => {
                    rest.insert(at, Sent::Rows(head, tail, vec![(values, statement)]));
                    at += 1;
                }
            }
        }
    }
    guards.extend(rest.into_iter().map(|sent| match sent {
        Sent::Rows(_, _, rows) if rows.len() == 1 => Sent::One(rows[0].1, None),
        sent => sent,
    }));
    guards
}

/// An insert of rows split around them: `INSERT INTO t (..) VALUES `, the rows (`(..)`,
/// one or more, separated by commas), and what follows, which must not refer to values.
fn rows_insert(sql: &str) -> Option<(&str, &str, &str)> {
    const VALUES: &str = " VALUES ";
    if !sql.starts_with("INSERT INTO ") {
        return None;
    }
    let start = sql.find(VALUES)? + VALUES.len();
    let b = sql.as_bytes();
    let mut i = start;
    loop {
        // One row: from its parenthesis to the one that closes it, quoted text aside.
        if b.get(i) != Some(&b'(') {
            return None;
        }
        let (mut depth, mut quoted) = (0usize, false);
        loop {
            match *b.get(i)? {
                b'\'' => quoted = !quoted,
                b'(' if !quoted => depth += 1,
                b')' if !quoted => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        i += 1;
        if sql[i..].starts_with(", (") {
            i += 2;
        } else {
            break;
        }
    }
    let tail = &sql[i..];
    (!tail.contains('$')).then(|| (&sql[..start], &sql[start..i], tail))
}

/// A batch of statements for PostgreSQL ([`postgres_batch`]).
pub(crate) struct Batch {
    /// The statements, one result each, in order.
    pub(crate) sql: String,
    /// What the connection must prepare first: each statement's name and its `PREPARE`,
    /// to be sent one at a time.
    pub(crate) prepare: Vec<(u64, String)>,
}

/// What a guarded batch writes into its error when a command's first statement changed no
/// row, followed by the command's rank.
const STALE_MARK: &str = "guichet-stale-";

/// The rank of the command whose request changed since it was read, when a guarded batch
/// failed for that (its guard's text is not a number: SQLSTATE 22P02, the text in the
/// message, in any language the server speaks).
pub(crate) fn stale_command(e: &dyn sqlx::error::DatabaseError) -> Option<usize> {
    if e.code().as_deref() != Some("22P02") {
        return None;
    }
    let message = e.message();
    let at = message.find(STALE_MARK)? + STALE_MARK.len();
    let digits = message[at..]
        .find(|c: char| !c.is_ascii_digit())
        .map_or(&message[at..], |end| &message[at..at + end]);
    digits.parse().ok()
}

/// Statements prepared on one connection at most; past that, statements are sent whole.
const MAX_PREPARED: usize = 200;

/// A piece of SQL text: text as is, or a `$n` placeholder (outside quoted text).
enum Piece<'a> {
    Sql(&'a str),
    Param(usize),
}

fn pieces(sql: &str) -> Vec<Piece<'_>> {
    let b = sql.as_bytes();
    let (mut out, mut start, mut i, mut quoted) = (Vec::new(), 0, 0, false);
    while i < b.len() {
        match b[i] {
            b'\'' => quoted = !quoted,
            b'$' if !quoted && b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                out.push(Piece::Sql(&sql[start..i]));
                let (mut j, mut n) = (i + 1, 0usize);
                while let Some(d) = b.get(j).filter(|d| d.is_ascii_digit()) {
                    n = n * 10 + usize::from(d - b'0');
                    j += 1;
                }
                out.push(Piece::Param(n));
                (start, i) = (j, j);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(Piece::Sql(&sql[start..]));
    out
}

/// The highest `$n` of a statement: how many values it takes.
fn placeholders(sql: &str) -> usize {
    pieces(sql)
        .iter()
        .map(|p| match p {
            Piece::Param(n) => *n,
            Piece::Sql(_) => 0,
        })
        .max()
        .unwrap_or(0)
}

/// `sql` with its `$n` placeholders replaced by the literals of `params`.
fn postgres_literals(sql: &str, params: &[V]) -> Result<String, Error> {
    let mut out = String::with_capacity(sql.len() + 16 * params.len());
    for piece in pieces(sql) {
        match piece {
            Piece::Sql(text) => out.push_str(text),
            Piece::Param(n) => match n.checked_sub(1).and_then(|i| params.get(i)) {
                Some(value) => push_literal(&mut out, value),
                None => {
                    return Err(Error::Corrupt(format!(
                        "a statement refers to ${n} but has {} values: {sql}",
                        params.len()
                    )));
                }
            },
        }
    }
    Ok(out)
}

/// A value as a PostgreSQL literal.
pub(crate) fn push_literal(out: &mut String, value: &V) {
    use std::fmt::Write as _;
    match value {
        // A negative number in parentheses: after a minus (`a-$1`) its sign would start a
        // comment, and `-9223372036854775808::bigint` casts before the sign applies.
        V::Int(x) | V::MaybeInt(Some(x)) if *x < 0 => {
            let _ = write!(out, "({x})");
        }
        V::Int(x) | V::MaybeInt(Some(x)) => {
            let _ = write!(out, "{x}");
        }
        V::MaybeInt(None) | V::MaybeText(None) => out.push_str("NULL"),
        // An escape string, as text is: `'\x80'` is bytes only while
        // `standard_conforming_strings` is on (off, it is the byte 0x80 of a text, refused).
        V::Blob(x) => {
            let _ = write!(out, "E'\\\\x{}'::bytea", hex::encode(x));
        }
        V::Real(x) => {
            let x = match *x {
                x if x.is_nan() => "NaN".to_owned(),
                x if x.is_infinite() => if x > 0.0 { "Infinity" } else { "-Infinity" }.to_owned(),
                x => format!("{x:?}"),
            };
            let _ = write!(out, "CAST('{x}' AS DOUBLE PRECISION)");
        }
        V::Text(x) | V::MaybeText(Some(x)) => {
            out.push_str("E'");
            for c in x.chars() {
                match c {
                    '\'' => out.push_str("''"),
                    '\\' => out.push_str("\\\\"),
                    c => out.push(c),
                }
            }
            out.push('\'');
        }
    }
}

/// A statement and the values bound to it.
pub(crate) type Statement = (Cow<'static, str>, Vec<V>);

/// Runs statements in order (in the caller's transaction); returns how many rows each
/// changed.
pub(crate) async fn exec_all<D: Db>(
    db: &mut D,
    statements: &[Statement],
) -> Result<Vec<u64>, Error> {
    let mut changed = Vec::with_capacity(statements.len());
    for (sql, params) in statements {
        changed.push(db.exec(sql.clone(), params).await?);
    }
    Ok(changed)
}

/// Multi-row inserts of `rows` into `table`, at most 100 rows a statement.
pub(crate) fn inserts(table: &str, columns: &[&str], rows: Vec<Vec<V>>) -> Vec<Statement> {
    const PER_STATEMENT: usize = 100;
    let mut out = Vec::new();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<V>> = rows.by_ref().take(PER_STATEMENT).collect();
        let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
        let mut n = 0;
        for (i, _) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            let marks: Vec<String> = (0..columns.len())
                .map(|_| {
                    n += 1;
                    format!("${n}")
                })
                .collect();
            sql.push_str(&format!("({})", marks.join(", ")));
        }
        out.push((sql.into(), chunk.into_iter().flatten().collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::{V, positional, postgres_batch};

    #[test]
    fn placeholders_become_explicit_positions() {
        assert_eq!(
            positional("UPDATE t SET a = $2, b = $1 WHERE c = $10 AND d = '$'"),
            "UPDATE t SET a = ?2, b = ?1 WHERE c = ?10 AND d = '$'"
        );
    }

    #[test]
    fn postgres_batches_prepare_each_statement_once_per_connection() {
        let update = || {
            (
                "UPDATE t SET a = $1, b = $2 WHERE c = $3 AND d = '$1'".into(),
                vec![
                    V::Text("it's a \\ test".into()),
                    V::MaybeInt(None),
                    V::Int(-7),
                ],
            )
        };
        let insert = (
            "INSERT INTO u (x, y, z) VALUES ($3, $2, $1)".into(),
            vec![V::Real(0.5), V::Real(f64::NEG_INFINITY), V::MaybeText(None)],
        );
        let super::Batch {
            sql: batch,
            prepare,
        } = postgres_batch(&[&[update(), insert.clone()]], true, &HashSet::new()).unwrap();
        assert_eq!(prepare.len(), 2);
        let (guard, insert_name) = (
            format!("guichet_{:016x}", prepare[0].0),
            format!("guichet_{:016x}", prepare[1].0),
        );
        // Each prepared alone, apart from the values.
        assert_eq!(
            prepare[0].1,
            format!(
                "PREPARE {guard} AS WITH changed AS (UPDATE t SET a = $1, b = $2 WHERE c = $3 AND d = '$1' \
                 RETURNING 1) SELECT (CASE WHEN COUNT(*) = 1 THEN '1' ELSE 'guichet-stale-' || $4::text END)::int FROM changed"
            )
        );
        assert_eq!(
            prepare[1].1,
            format!("PREPARE {insert_name} AS INSERT INTO u (x, y, z) VALUES ($3, $2, $1)")
        );
        assert_eq!(
            batch,
            format!(
                "EXECUTE {guard}(E'it''s a \\\\ test', NULL, (-7), E'0');\n\
                 EXECUTE {insert_name}(CAST('0.5' AS DOUBLE PRECISION), CAST('-Infinity' AS DOUBLE PRECISION), NULL);\n"
            )
        );
        // Known to the connection: executed only. Unguarded, the update is another statement.
        let known: HashSet<u64> = prepare.into_iter().map(|(name, _)| name).collect();
        let super::Batch {
            sql: batch,
            prepare,
        } = postgres_batch(&[&[update()], &[update()]], true, &known).unwrap();
        assert!(prepare.is_empty());
        // Each command's guard says its rank.
        assert_eq!(
            batch,
            format!(
                "EXECUTE {guard}(E'it''s a \\\\ test', NULL, (-7), E'0');\n\
                 EXECUTE {guard}(E'it''s a \\\\ test', NULL, (-7), E'1');\n"
            )
        );
        let unguarded = postgres_batch(&[&[update()]], false, &known).unwrap();
        assert_eq!(unguarded.prepare.len(), 1);
    }

    #[test]
    fn guarded_commands_share_their_inserts_of_rows() {
        let st = |sql: &'static str, values: &[i64]| -> super::Statement {
            (sql.into(), values.iter().map(|v| V::Int(*v)).collect())
        };
        let guard = |id| st("UPDATE r SET v = v + 1 WHERE id = $1", &[id]);
        let log = |id, n| st("INSERT INTO log (r, n, s) VALUES ($1, $2, 'x')", &[id, n]);
        // Several rows in one statement merge too, with what follows them unless it
        // refers to values.
        let two = |id| {
            st(
                "INSERT INTO log (r, n, s) VALUES ($1, 1, 'a, (b)'), ($1, 2, 'c')",
                &[id],
            )
        };
        let upsert = |id| {
            st(
                "INSERT INTO t (r) VALUES ($1) ON CONFLICT (r) DO UPDATE SET r = excluded.r",
                &[id],
            )
        };
        let bound = |id| {
            st(
                "INSERT INTO t (r) VALUES ($1) ON CONFLICT (r) DO UPDATE SET r = $1",
                &[id],
            )
        };
        let set = |id| st("UPDATE s SET n = 0 WHERE r = $1", &[id]);
        let c0 = [guard(10), log(10, 1), set(10), upsert(10), bound(10)];
        let c1 = [guard(11), two(11), upsert(11), log(11, 3), bound(11)];
        let c2 = [guard(12), set(12)];
        let batch = postgres_batch(&[&c0, &c1, &c2], true, &HashSet::new()).unwrap();
        let name = |sql: &str| {
            let (name, _) = batch
                .prepare
                .iter()
                .find(|(_, p)| p.contains(sql))
                .unwrap_or_else(|| panic!("{sql} not prepared: {:?}", batch.prepare));
            format!("guichet_{name:016x}")
        };
        let (g, s, b) = (
            name("UPDATE r SET"),
            name("UPDATE s SET"),
            name("SET r = $1"),
        );
        assert_eq!(batch.prepare.len(), 4, "{:?}", batch.prepare);
        let expected = [
            // The guards first, in the commands' order.
            format!("EXECUTE {g}(10, E'0')"),
            format!("EXECUTE {g}(11, E'1')"),
            format!("EXECUTE {g}(12, E'2')"),
            // Then each command's statements in its order, the same inserts together (a
            // statement that shares nothing goes right after its command's previous one).
            format!("EXECUTE {s}(12)"),
            "INSERT INTO log (r, n, s) VALUES (10, 1, 'x'), (11, 1, 'a, (b)'), (11, 2, 'c')"
                .to_owned(),
            format!("EXECUTE {s}(10)"),
            "INSERT INTO t (r) VALUES (10), (11) ON CONFLICT (r) DO UPDATE SET r = excluded.r"
                .to_owned(),
            // Alone: after the command's previous statement, nothing to share it with.
            format!("EXECUTE {}(11, 3)", name("'x')")),
            // Not merged: what follows the rows refers to a value.
            format!("EXECUTE {b}(11)"),
            format!("EXECUTE {b}(10)"),
        ];
        assert_eq!(batch.sql, expected.map(|s| s + ";\n").concat());
    }

    #[test]
    fn statements_not_prepared_carry_their_values_as_literals() {
        // A statement whose values outnumber its placeholders is not prepared (EXECUTE would
        // refuse the extra values), and one that refers to a missing value is refused.
        let batch = postgres_batch(
            &[&[("SELECT $1".into(), vec![V::Int(1), V::Int(2)])]],
            false,
            &HashSet::new(),
        )
        .unwrap();
        assert!(batch.prepare.is_empty());
        assert_eq!(batch.sql, "SELECT 1;\n");
        assert!(
            postgres_batch(
                &[&[("SELECT $2".into(), vec![V::Int(1)])]],
                false,
                &HashSet::new()
            )
            .is_err()
        );
    }

    /// PostgreSQL itself reads every literal back as the value it was written from: text
    /// with quotes, backslashes, dollars and any character but NUL (which PostgreSQL's text
    /// cannot hold), under both settings of `standard_conforming_strings`; integers to their
    /// limits, negative ones after a minus; reals with NaN and the infinities; bytes; and a
    /// `$n` inside quoted SQL stays text. The judge is the server, not this code.
    #[test]
    fn postgres_reads_every_literal_back_as_its_value() {
        use proptest::prelude::*;
        use sqlx::{Connection as _, Row as _};
        let url = std::env::var("GUICHET_TEST_POSTGRES")
            .expect("GUICHET_TEST_POSTGRES is not set: run the tests with scripts/test");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let conn = std::cell::Cell::new(Some(
            rt.block_on(sqlx::PgConnection::connect(&url)).unwrap(),
        ));
        let tricky = prop::sample::select(vec!['\'', '\\', '$', '"', '-', '\n', 'é', '\u{feff}']);
        let text = prop::collection::vec(prop_oneof![2 => any::<char>(), 1 => tricky], 0..48)
            .prop_map(|cs| cs.into_iter().filter(|c| *c != '\0').collect::<String>());
        let values = (
            text,
            any::<i64>(),
            any::<f64>(),
            prop::collection::vec(any::<u8>(), 0..32),
            any::<bool>(),
        );
        let mut runner =
            proptest::test_runner::TestRunner::new(proptest::test_runner::Config::with_cases(300));
        runner
            .run(&values, |(t, i, r, b, conforming)| {
                let params = [
                    V::Text(t.clone()),
                    V::Int(i),
                    V::Real(r),
                    V::Blob(b.clone()),
                ];
                // `0-$2`: a negative value after a minus must not start a comment.
                let sql = super::postgres_literals(
                    "SELECT $1::text, '$2 stays', $2::bigint, (0-$2)::numeric::text, $3::float8, \
                     $4::bytea",
                    &params,
                )
                .unwrap();
                let setting = if conforming { "on" } else { "off" };
                let row = rt
                    .block_on(async {
                        let mut c = conn.take().expect("the connection");
                        let row = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                            "SET standard_conforming_strings = {setting}; {sql}"
                        )))
                        .fetch_one(&mut c)
                        .await;
                        conn.set(Some(c));
                        row
                    })
                    .map_err(|e| TestCaseError::fail(format!("{sql}: {e}")))?;
                prop_assert_eq!(row.get::<String, _>(0), t, "{}", sql);
                prop_assert_eq!(row.get::<String, _>(1), "$2 stays");
                prop_assert_eq!(row.get::<i64, _>(2), i, "{}", sql);
                prop_assert_eq!(row.get::<String, _>(3), (-i128::from(i)).to_string());
                let back: f64 = row.get(4);
                prop_assert!(
                    back == r || (back.is_nan() && r.is_nan()),
                    "{} for {}",
                    back,
                    r
                );
                prop_assert_eq!(row.get::<Vec<u8>, _>(5), b);
                Ok(())
            })
            .unwrap();
    }
}

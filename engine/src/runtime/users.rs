//! Staff accounts and sessions, and what a staff member may see and do: the roles they hold
//! (a role's static members in the deployed definitions) and their inbox.
//!
//! Passwords are hashed with Argon2id (own salt per hash), off the async workers, and failed
//! sign-ins slow further attempts on the account ([`crate::runtime::signin`]). A session is a
//! 256-bit token in a cookie, of which only the SHA-256 is stored; it ends after two hours
//! without use or twelve hours in all, and at logout.

use std::collections::BTreeSet;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use guichet_definitions::model::{Language, RoleSource};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::runtime::signin::off_workers;
use crate::runtime::{Engine, TaskRow};
use crate::store::db::{Db, Statement, V};
use crate::store::{in_long_read, in_read};

/// A session ends after this long without a request.
pub const IDLE_MS: i64 = 2 * 3_600_000;
/// A session ends this long after login, used or not.
pub const ABSOLUTE_MS: i64 = 12 * 3_600_000;

pub(crate) fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// An open task as the inbox shows it.
#[derive(Debug, Clone, Serialize)]
pub struct InboxItem {
    #[serde(flatten)]
    pub task: TaskRow,
    pub desk: String,
    pub title: String,
    pub step_title: String,
}

/// What a sign-in attempt comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    /// A new session: its token, for the cookie.
    Session(String),
    /// Wrong email or password (never which).
    Wrong,
    /// Too many failures in a row on this account: try again in `ms` milliseconds.
    Wait { ms: i64 },
    /// The right password of a disabled account (an administrator disabled it).
    Disabled,
}

/// A staff account as administrators list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub email: String,
    pub admin: bool,
    /// When an administrator disabled it; `None` while it is enabled.
    pub disabled_at: Option<i64>,
}

/// The staff member behind an open session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub email: String,
    pub admin: bool,
    /// The language they chose on their preferences page (for their emails and pages);
    /// `None` until they chose one.
    pub language: Option<Language>,
}

impl Engine {
    /// Creates a staff account, or sets the password and administrator right of an existing
    /// one (the CLI's `user add`, first start). A changed password ends every session and API
    /// token the account had.
    pub async fn set_user(&self, email: &str, password: &str, admin: bool) -> Result<(), Error> {
        self.write_account(email, password, Some(admin)).await
    }

    /// Sets an account's password, creating the account (not an administrator) when it is
    /// new; its administrator right stays as it is ([`Engine::set_admin`] changes it). Every
    /// session and API token the account had ends.
    pub async fn set_password(&self, email: &str, password: &str) -> Result<(), Error> {
        self.write_account(email, password, None).await
    }

    async fn write_account(
        &self,
        email: &str,
        password: &str,
        admin: Option<bool>,
    ) -> Result<(), Error> {
        if password.chars().count() < 12 {
            return Err(Error::Refused(crate::core::Error::Invalid(vec![
                crate::core::form::FieldError::new(
                    "password",
                    crate::core::form::Problem::TooShort { min: 12 },
                ),
            ])));
        }
        let password = password.to_owned();
        let hashed = off_workers(move || {
            Argon2::default()
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
        })
        .await?
        .map_err(|e| Error::Corrupt(format!("cannot hash the password: {e}")))?;
        let email = email.trim().to_lowercase();
        let now = self.now().0;
        let account: Statement = match admin {
            Some(admin) => (
                "INSERT INTO users (email, password_hash, admin, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (email) DO UPDATE SET password_hash = $2, admin = $3"
                    .into(),
                vec![
                    V::Text(email.clone()),
                    V::Text(hashed),
                    V::Int(i64::from(admin)),
                    V::Int(now),
                ],
            ),
            None => (
                "INSERT INTO users (email, password_hash, admin, created_at) VALUES ($1, $2, 0, $3) \
                 ON CONFLICT (email) DO UPDATE SET password_hash = $2"
                    .into(),
                vec![V::Text(email.clone()), V::Text(hashed), V::Int(now)],
            ),
        };
        // What the old password opened ends with it, in the same transaction.
        self.write_all(vec![
            account,
            (
                "DELETE FROM sessions WHERE email = $1".into(),
                vec![V::Text(email.clone())],
            ),
            (
                "UPDATE api_tokens SET revoked_at = $1 WHERE email = $2 AND revoked_at IS NULL"
                    .into(),
                vec![V::Int(now), V::Text(email)],
            ),
        ])
        .await?;
        self.forget_tokens();
        self.forget_roster();
        Ok(())
    }

    /// Gives or takes an account's administrator right; `false` when there is no such
    /// account.
    pub async fn set_admin(&self, email: &str, admin: bool) -> Result<bool, Error> {
        let changed = self
            .write_one(
                "UPDATE users SET admin = $1 WHERE email = $2",
                vec![
                    V::Int(i64::from(admin)),
                    V::Text(email.trim().to_lowercase()),
                ],
            )
            .await?;
        self.forget_roster();
        Ok(changed > 0)
    }

    /// Disables an account (it cannot sign in; its sessions and API tokens end, in the same
    /// transaction) or enables it again; `false` when there is no such account. Its roles
    /// stay as the definitions give them.
    pub async fn set_disabled(&self, email: &str, disabled: bool) -> Result<bool, Error> {
        let email = email.trim().to_lowercase();
        let now = self.now().0;
        let mut statements: Vec<Statement> = vec![(
            "UPDATE users SET disabled_at = $1 WHERE email = $2".into(),
            vec![V::MaybeInt(disabled.then_some(now)), V::Text(email.clone())],
        )];
        if disabled {
            statements.push((
                "DELETE FROM sessions WHERE email = $1".into(),
                vec![V::Text(email.clone())],
            ));
            statements.push((
                "UPDATE api_tokens SET revoked_at = $1 WHERE email = $2 AND revoked_at IS NULL"
                    .into(),
                vec![V::Int(now), V::Text(email)],
            ));
        }
        let changed = self.write_all(statements).await?;
        self.forget_tokens();
        self.forget_roster();
        Ok(changed.first().copied().unwrap_or(0) > 0)
    }

    /// Forgets the API tokens this engine read: the next call with each reads it again.
    pub(crate) fn forget_tokens(&self) {
        if let Ok(mut seen) = self.tokens_seen.lock() {
            seen.clear();
        }
    }

    pub(crate) async fn user_exists(&self, email: &str) -> Result<bool, Error> {
        let (sql, key) = (
            "SELECT 1 FROM users WHERE email = $1",
            [V::Text(email.to_owned())],
        );
        Ok(in_read!(self.store(), |db| db.row(sql.into(), &key))?.is_some())
    }

    pub async fn user_count(&self) -> Result<i64, Error> {
        let sql = "SELECT COUNT(*) FROM users";
        in_read!(self.store(), |db| db.rows(sql.into(), &[]))?
            .first()
            .map_or(Ok(0), |r| r.int(0))
    }

    /// Checks a password and opens a session; `None` for a wrong email or password, or an
    /// account that must wait before its next attempt ([`Engine::sign_in`] tells which).
    pub async fn login(&self, email: &str, password: &str) -> Result<Option<String>, Error> {
        Ok(match self.sign_in(email, password).await? {
            SignIn::Session(token) => Some(token),
            SignIn::Wrong | SignIn::Wait { .. } | SignIn::Disabled => None,
        })
    }

    /// Checks a password and opens a session. A wrong email or password is one answer (the
    /// same work is done either way, so timing does not tell which); after
    /// [`crate::runtime::signin::FREE_FAILURES`] failures in a row on an account, attempts wait their turn
    /// ([`crate::runtime::signin`]) and are answered [`SignIn::Wait`] unchecked until then.
    pub async fn sign_in(&self, email: &str, password: &str) -> Result<SignIn, Error> {
        let email = email.trim().to_lowercase();
        if let Some(ms) = self.signins.wait(&email, self.now().0) {
            return Ok(SignIn::Wait { ms });
        }
        let (sql, key) = (
            "SELECT password_hash, disabled_at FROM users WHERE email = $1",
            [V::Text(email.clone())],
        );
        let row = in_read!(self.store(), |db| db.row(sql.into(), &key))?;
        let disabled = row
            .as_ref()
            .map(|r| r.opt_int(1))
            .transpose()?
            .flatten()
            .is_some();
        let stored = row.map(|r| r.text(0)).transpose()?;
        let exists = stored.is_some();
        let password = password.to_owned();
        let matches = off_workers(move || {
            // A real hash to verify against when the account does not exist, so that the
            // time taken does not tell whether it does.
            static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
            let dummy = DUMMY.get_or_init(|| {
                Argon2::default()
                    .hash_password(b"no such account")
                    .map(|h| h.to_string())
                    .unwrap_or_default()
            });
            Argon2::default()
                .verify_password(password.as_bytes(), stored.as_deref().unwrap_or(dummy))
                .is_ok()
        })
        .await?;
        if !(matches && exists) {
            self.signins.failed(&email, self.now().0);
            return Ok(SignIn::Wrong);
        }
        self.signins.succeeded(&email);
        if disabled {
            return Ok(SignIn::Disabled);
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| Error::Corrupt(format!("no randomness: {e}")))?;
        let token = hex::encode(bytes);
        let now = self.now().0;
        self.write_one(
            "INSERT INTO sessions (token_hash, email, created_at, last_seen_at) VALUES ($1, $2, $3, $3)",
            vec![V::Text(hash(&token)), V::Text(email), V::Int(now)],
        )
        .await?;
        Ok(SignIn::Session(token))
    }

    /// The staff member behind a session token, if the session is still open; using it
    /// extends the idle timeout.
    pub async fn session(&self, token: &str) -> Result<Option<String>, Error> {
        Ok(self.session_account(token).await?.map(|a| a.email))
    }

    /// [`Engine::session`], with whether the account is an administrator and the language
    /// the person chose (one query for all three, on the path of every staff page).
    pub async fn session_account(&self, token: &str) -> Result<Option<Account>, Error> {
        if token.len() != 64 {
            return Ok(None);
        }
        let now = self.now().0;
        let token_hash = hash(token);
        // A point read on every staff page: on a reader connection.
        let key = [
            V::Text(token_hash.clone()),
            V::Int(now - IDLE_MS),
            V::Int(now - ABSOLUTE_MS),
        ];
        let sql = "SELECT s.email, s.last_seen_at, u.admin, p.language FROM sessions s JOIN users u ON u.email = s.email \
                   LEFT JOIN mail_preferences p ON p.email = s.email WHERE s.token_hash = $1 AND s.last_seen_at > $2 AND s.created_at > $3 \
                   AND u.disabled_at IS NULL";
        let row = in_read!(self.store(), |db| db.row(sql.into(), &key))?;
        let Some(row) = row else { return Ok(None) };
        // At most one write a minute per session, by the first caller of this process:
        // reading the inbox stays a read. The statement is not even sent otherwise: on SQLite
        // an UPDATE takes the write lock whether or not it changes a row.
        if row.int(1)? < now - 60_000 && self.first_touch(&token_hash, now) {
            self.write_one(
                "UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2 AND last_seen_at < $3",
                vec![V::Int(now), V::Text(token_hash), V::Int(now - 60_000)],
            )
            .await?;
        }
        Ok(Some(Account {
            email: row.text(0)?,
            admin: row.int(2)? != 0,
            language: row.opt_text(3)?.as_deref().and_then(Language::from_code),
        }))
    }

    /// Whether this caller is the first of the process to see the session or API token (by
    /// hash) in use this minute, and so the one to record it.
    pub(crate) fn first_touch(&self, token_hash: &str, now: i64) -> bool {
        let Ok(mut touched) = self.touches.lock() else {
            return false;
        };
        if touched.len() > 10_000 {
            touched.clear();
        }
        match touched.get(token_hash) {
            Some(at) if *at >= now - 60_000 => false,
            _ => {
                touched.insert(token_hash.to_owned(), now);
                true
            }
        }
    }

    /// The staff accounts: (email, administrator), by email.
    pub async fn users(&self) -> Result<Vec<User>, Error> {
        let sql = "SELECT email, admin, disabled_at FROM users ORDER BY email";
        let rows = in_read!(self.store(), |db| db.rows(sql.into(), &[]))?;
        rows.iter()
            .map(|r| {
                Ok(User {
                    email: r.text(0)?,
                    admin: r.int(1)? != 0,
                    disabled_at: r.opt_int(2)?,
                })
            })
            .collect()
    }

    pub async fn logout(&self, token: &str) -> Result<(), Error> {
        self.write_one(
            "DELETE FROM sessions WHERE token_hash = $1",
            vec![V::Text(hash(token))],
        )
        .await?;
        Ok(())
    }

    /// The (desk, role) pairs a staff member holds: the roles listing them as a member in the
    /// latest definition of each desk.
    pub async fn roles_of(&self, email: &str) -> Result<BTreeSet<(String, String)>, Error> {
        Ok(roles_in(&self.desks().await?, email))
    }

    /// Whether a staff member may act on a task: it is theirs, or open to one of their roles.
    pub fn may_act(
        roles: &BTreeSet<(String, String)>,
        email: &str,
        desk: &str,
        task: &TaskRow,
    ) -> bool {
        match &task.assignee {
            Some(a) => a.eq_ignore_ascii_case(email),
            None => roles.contains(&(desk.to_owned(), task.role.clone())),
        }
    }

    /// Whether a staff member may act on this task of `desk` now: it is still open (or
    /// claimed), and theirs or open to one of their roles.
    pub async fn may_act_now(
        &self,
        email: &str,
        desk: &str,
        task: &TaskRow,
    ) -> Result<bool, Error> {
        Ok((task.state == "open" || task.state == "claimed")
            && Engine::may_act(&self.roles_of(email).await?, email, desk, task))
    }

    /// The open tasks a staff member may act on: theirs, and those open to their roles;
    /// overdue first, then by deadline; at most `limit` of them, with how many there are in
    /// all. The database does the filtering, so a desk with a hundred thousand open tasks
    /// reads only the page it shows.
    pub async fn inbox(&self, email: &str, limit: i64) -> Result<Inbox, Error> {
        let email = email.trim().to_lowercase();
        let desks = self.desks().await?;
        let roles = roles_in(&desks, &email);
        // Mine, or unclaimed and open to one of my (desk, role) pairs: one part per case, bound
        // to `values` in order.
        let mut parts = vec!["t.assignee = $1 AND t.state IN ('open', 'claimed')".to_owned()];
        let mut values: Vec<V> = vec![V::Text(email.clone())];
        for (desk, role) in &roles {
            let n = values.len();
            parts.push(format!(
                "t.desk = ${} AND t.role = ${} AND t.state = 'open' AND t.assignee IS NULL",
                n + 1,
                n + 2
            ));
            values.push(V::Text(desk.clone()));
            values.push(V::Text(role.clone()));
        }
        let filter = parts
            .iter()
            .map(|p| format!("({p})"))
            .collect::<Vec<_>>()
            .join(" OR ");
        // Counted up to a bound: beyond it the page says "more than"; in the same query.
        // The bounds are bound too: no value is ever written into the SQL text.
        values.push(V::Int(
            i64::try_from(INBOX_COUNT_BOUND + 1).unwrap_or(i64::MAX),
        ));
        let count = format!(
            "(SELECT COUNT(*) FROM (SELECT 1 FROM tasks t WHERE {filter} LIMIT ${}) AS c)",
            values.len()
        );
        // The page: each part of the filter read in the index's order (overdue first, then by
        // deadline) and cut at `limit`, tasks without a deadline apart (NULLs sort first);
        // the parts are merged and cut again by the database, so that only the page's rows
        // come back, with the request's title. The database never sorts a role's thousands of
        // tasks: at most `limit` rows per part.
        const COLUMNS: &str = "t.instance, t.seq, t.step, t.role, t.assignee, t.state, t.created_at, t.due_at, t.overdue, t.closed_by, t.desk";
        let shown = usize::try_from(limit).unwrap_or_default();
        values.push(V::Int(limit.max(1)));
        let limit = format!("${}", values.len());
        let mut selects = Vec::new();
        for filter in &parts {
            for (due, order) in [
                (
                    "t.due_at IS NOT NULL",
                    "t.overdue DESC, t.due_at, t.created_at, t.instance, t.seq",
                ),
                (
                    "t.due_at IS NULL",
                    "t.overdue DESC, t.created_at, t.instance, t.seq",
                ),
            ] {
                selects.push(format!(
                    "SELECT * FROM (SELECT {COLUMNS} FROM tasks t WHERE {filter} AND {due} ORDER BY {order} LIMIT {limit}) AS p{}",
                    selects.len()
                ));
            }
        }
        // Cut to the page first, then fetch the titles of those rows only; the page comes
        // back as one JSON value with the count beside it.
        let rows = self.store().backend.json_rows(
            "r.instance, r.seq, r.step, r.role, r.assignee, r.state, r.created_at, r.due_at, r.overdue, r.closed_by, r.desk, r.title",
        );
        let sql = format!(
            "SELECT {count}, {rows} FROM (\
             SELECT u.instance, u.seq, u.step, u.role, u.assignee, u.state, u.created_at, u.due_at, u.overdue, u.closed_by, u.desk, i.title \
             FROM (SELECT * FROM ({}) AS a \
                   ORDER BY a.overdue DESC, (CASE WHEN a.due_at IS NULL THEN 1 ELSE 0 END), a.due_at, a.created_at, a.instance, a.seq LIMIT {limit}) AS u \
             JOIN instances i ON i.id = u.instance) AS r",
            selects.join(" UNION ALL ")
        );
        // One page row, as the JSON array the query builds (serde reads a struct from an
        // array in field order).
        #[derive(serde::Deserialize)]
        struct PageRow {
            instance: String,
            seq: i64,
            step: String,
            role: String,
            assignee: Option<String>,
            state: String,
            created_at: i64,
            due_at: Option<i64>,
            overdue: i64,
            closed_by: Option<String>,
            desk: Option<String>,
            title: Option<String>,
        }
        let r = in_long_read!(self.store(), |db| db.row(sql.into(), &values))?
            .ok_or_else(|| Error::Corrupt("the inbox query returned no row".into()))?;
        let total = r.int(0)?;
        let page: Vec<PageRow> = serde_json::from_str(&r.text(1)?)
            .map_err(|e| Error::Corrupt(format!("the inbox page: {e}")))?;
        let mut found: Vec<(TaskRow, String, String)> = page
            .into_iter()
            .map(|r| {
                let task = TaskRow {
                    instance: r.instance,
                    seq: r.seq,
                    step: r.step,
                    role: r.role,
                    assignee: r.assignee,
                    state: r.state,
                    created_at: r.created_at,
                    due_at: r.due_at,
                    overdue: r.overdue != 0,
                    closed_by: r.closed_by,
                };
                (
                    task,
                    r.desk.unwrap_or_default(),
                    r.title.unwrap_or_default(),
                )
            })
            .collect();
        // The same order in Rust, whatever the database's collation does with ties.
        found.sort_by(|(a, ..), (b, ..)| {
            b.overdue
                .cmp(&a.overdue)
                .then(a.due_at.is_none().cmp(&b.due_at.is_none()))
                .then(a.due_at.cmp(&b.due_at))
                .then(a.created_at.cmp(&b.created_at))
                .then(a.instance.cmp(&b.instance))
                .then(a.seq.cmp(&b.seq))
        });
        found.truncate(shown);
        let items = found
            .into_iter()
            .map(|(task, desk, title)| {
                let step_title = desks
                    .get(&desk)
                    .and_then(|p| p.step(&task.step))
                    .map_or_else(|| task.step.clone(), |s| s.display_name().to_owned());
                InboxItem {
                    title,
                    task,
                    desk,
                    step_title,
                }
            })
            .collect();
        let total = usize::try_from(total).unwrap_or_default();
        Ok(Inbox {
            more_than: total > INBOX_COUNT_BOUND,
            total: total.min(INBOX_COUNT_BOUND),
            items,
        })
    }
}

/// Inboxes count their tasks up to this bound.
pub const INBOX_COUNT_BOUND: usize = 1000;

/// The (desk, role) pairs that list `email` as a member.
fn roles_in(
    desks: &std::collections::BTreeMap<String, std::sync::Arc<guichet_definitions::model::Process>>,
    email: &str,
) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (desk, p) in desks {
        for r in &p.roles {
            if let RoleSource::Members(m) = &r.source
                && m.iter().any(|x| x.eq_ignore_ascii_case(email))
            {
                out.insert((desk.clone(), r.id.clone()));
            }
        }
    }
    out
}

/// A page of an inbox: the first tasks, and how many there are in all (or that there are
/// more than `total` when `more_than`).
#[derive(Debug, Clone, Serialize)]
pub struct Inbox {
    pub total: usize,
    pub more_than: bool,
    pub items: Vec<InboxItem>,
}

/// Figures for monitoring (the web server's `/metrics`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Gauges {
    /// Requests by status (`running`, `ended`, `cancelled`).
    pub instances: Vec<(String, i64)>,
    pub tasks_open: i64,
    pub tasks_overdue: i64,
    /// Outbox messages by kind and state.
    pub outbox: Vec<(String, String, i64)>,
    /// Requests with a scheduled timer (a deadline, reminder, escalation or time-out).
    pub requests_with_timers: i64,
    /// Of those, the requests whose earliest timer is due and not fired yet: a figure that
    /// stays above zero for more than a minute says that firing is behind or failing.
    pub timers_due: i64,
}

/// One read of every table this version uses: a database missing one (a wrong file, a
/// migration rolled back by hand) is not ready.
/// A heartbeat this recent proves the database takes writes: readiness writes none.
const HEARTBEAT_FRESH_MS: i64 = 5_000;

const TABLES: [&str; 21] = [
    "SELECT 1 FROM definitions LIMIT 1",
    "SELECT 1 FROM instances LIMIT 1",
    "SELECT 1 FROM instance_fields LIMIT 1",
    "SELECT 1 FROM history LIMIT 1",
    "SELECT 1 FROM tasks LIMIT 1",
    "SELECT 1 FROM outbox LIMIT 1",
    "SELECT 1 FROM links LIMIT 1",
    "SELECT 1 FROM callbacks LIMIT 1",
    "SELECT 1 FROM users LIMIT 1",
    "SELECT 1 FROM sessions LIMIT 1",
    "SELECT 1 FROM api_tokens LIMIT 1",
    "SELECT 1 FROM settings LIMIT 1",
    "SELECT 1 FROM mail_preferences LIMIT 1",
    "SELECT 1 FROM step_visits LIMIT 1",
    "SELECT 1 FROM kpi_facts LIMIT 1",
    "SELECT 1 FROM kpi_fold LIMIT 1",
    "SELECT 1 FROM kpi_pending LIMIT 1",
    "SELECT 1 FROM kpi_rollups LIMIT 1",
    "SELECT 1 FROM submission_keys LIMIT 1",
    "SELECT 1 FROM nodes LIMIT 1",
    "SELECT 1 FROM facts_stale LIMIT 1",
];

impl Engine {
    /// Whether this node can serve: every table of this version answers a read, the
    /// database takes a write (this node's heartbeat, through the same path as every
    /// command's: written now unless the heartbeat loop wrote it in the last few seconds, so
    /// that probes cost no commit of their own), and its background workers do their work
    /// ([`Engine::workers_problem`]). The error says which failed.
    pub async fn readiness(&self) -> Result<(), Error> {
        for sql in TABLES {
            in_read!(self.store(), |db| db.row(sql.into(), &[]))?;
        }
        if !self.beat_within(HEARTBEAT_FRESH_MS) {
            self.heartbeat().await?;
        }
        match self.workers_problem() {
            Some(problem) => Err(Error::Unready(problem)),
            None => Ok(()),
        }
    }

    pub async fn gauges(&self) -> Result<Gauges, Error> {
        let mut g = Gauges::default();
        let sql = "SELECT status, COUNT(*) FROM instances GROUP BY status";
        for r in in_long_read!(self.store(), |db| db.rows(sql.into(), &[]))? {
            g.instances.push((r.text(0)?, r.int(1)?));
        }
        // COUNT, not SUM: PostgreSQL sums BIGINTs as NUMERIC, a type the driver does not read.
        let sql = "SELECT COUNT(*), COUNT(CASE WHEN overdue <> 0 THEN 1 END) FROM tasks WHERE state IN ('open', 'claimed')";
        if let Some(r) = in_long_read!(self.store(), |db| db.row(sql.into(), &[]))? {
            g.tasks_open = r.int(0)?;
            g.tasks_overdue = r.int(1)?;
        }
        let sql = "SELECT kind, state, COUNT(*) FROM outbox GROUP BY kind, state";
        for r in in_long_read!(self.store(), |db| db.rows(sql.into(), &[]))? {
            g.outbox.push((r.text(0)?, r.text(1)?, r.int(2)?));
        }
        let (sql, key) = (
            "SELECT COUNT(*), COUNT(CASE WHEN next_timer_at <= $1 THEN 1 END) \
             FROM instances WHERE next_timer_at IS NOT NULL",
            [V::Int(self.now().0)],
        );
        if let Some(r) = in_long_read!(self.store(), |db| db.row(sql.into(), &key))? {
            g.requests_with_timers = r.int(0)?;
            g.timers_due = r.int(1)?;
        }
        Ok(g)
    }
}

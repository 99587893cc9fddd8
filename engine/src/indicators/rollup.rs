//! Where the indicators are read from: the stored parts (per month and per day, for all
//! requests and for those of each intake answer) of the requests already folded, and the
//! facts of the others: those ended since the last fold, those in the hours at the edges of
//! the period asked for, and all of them when the query filters on two intake answers or
//! more. Both are read in one snapshot, so a fold committing meanwhile is seen whole or not
//! at all, and every request counts once.

use std::collections::HashMap;

use sqlx::{Any, AnyConnection, Row};

use crate::clock::Timestamp;
use crate::error::Error;
use crate::indicators::kpi::Compare;
use crate::indicators::tally::{Part, Tally, VisitTimes};

/// Which requests' facts to read.
pub(crate) enum Scope<'a> {
    /// Ended in `[from, to)`, with the intake answers `filters`.
    Ended {
        from: i64,
        to: i64,
        filters: &'a [(String, String)],
    },
    /// Not folded yet, ended in `[from, to)`, with the intake answers `filters`.
    Pending {
        from: i64,
        to: i64,
        filters: &'a [(String, String)],
    },
    /// These requests.
    Ids(&'a [String]),
}

pub(crate) enum Arg {
    Int(i64),
    Text(String),
}

impl Scope<'_> {
    /// The condition on `instances i` and its arguments, numbered from `$1`. Each reads
    /// through one index: the end's (a period), the queue's (not folded), the key (ids).
    pub(crate) fn condition(&self) -> (String, Vec<Arg>) {
        match self {
            Scope::Ended { from, to, filters } | Scope::Pending { from, to, filters } => {
                // `+` keeps the database from reading the end's index (the whole period)
                // instead of the short queue.
                let mut sql = String::from(if matches!(self, Scope::Ended { .. }) {
                    "i.status <> 'running' AND i.ended_at >= $1 AND i.ended_at < $2"
                } else {
                    "i.id IN (SELECT instance FROM kpi_pending) AND +i.ended_at >= $1 AND +i.ended_at < $2"
                });
                let mut args = vec![Arg::Int(*from), Arg::Int(*to)];
                for (f, v) in filters.iter() {
                    let n = args.len();
                    sql.push_str(&format!(
                        " AND EXISTS (SELECT 1 FROM instance_fields f WHERE f.instance = i.id AND f.field = ${} AND f.value = ${})",
                        n + 1,
                        n + 2
                    ));
                    args.push(Arg::Text(f.clone()));
                    args.push(Arg::Text(v.clone()));
                }
                (sql, args)
            }
            Scope::Ids(ids) => {
                let marks: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
                (
                    format!("i.id IN ({})", marks.join(", ")),
                    ids.iter().map(|s| Arg::Text(s.clone())).collect(),
                )
            }
        }
    }
}

/// Runs a query over the facts of the requests in scope.
pub(crate) async fn fetch(
    conn: &mut AnyConnection,
    select: &str,
    (condition, args): &(String, Vec<Arg>),
) -> Result<Vec<sqlx::any::AnyRow>, Error> {
    let sql = format!("{select} WHERE {condition}");
    let mut q = sqlx::query::<Any>(sqlx::AssertSqlSafe(sql));
    for a in args {
        q = match a {
            Arg::Int(i) => q.bind(*i),
            Arg::Text(s) => q.bind(s.clone()),
        };
    }
    Ok(q.fetch_all(&mut *conn).await?)
}

/// The facts of the requests in scope, each under the group `group(id, revision, ended_at)`
/// gives it; `desks` (when not empty) keeps only those desks.
pub(crate) async fn read_facts<G: Ord + Clone>(
    conn: &mut AnyConnection,
    scope: &Scope<'_>,
    desks: &[String],
    group: impl Fn(&str, i64, i64) -> G,
) -> Result<Tally<G>, Error> {
    let cond = scope.condition();
    let mut tally = Tally::default();
    let mut of: HashMap<String, (String, G)> = HashMap::new();
    let rows = fetch(
        conn,
        "SELECT i.id, i.name, d.revision, i.started_at, i.ended_at FROM instances i JOIN definitions d ON d.hash = i.definition",
        &cond,
    )
    .await?;
    for r in rows {
        let desk: String = r.try_get(1)?;
        if !desks.is_empty() && !desks.contains(&desk) {
            continue;
        }
        let (started, ended): (i64, i64) = (r.try_get(3)?, r.try_get(4)?);
        let id: String = r.try_get(0)?;
        let g = group(&id, r.try_get(2)?, ended);
        tally.request(&desk, &g, ended - started);
        of.insert(id, (desk, g));
    }
    if of.is_empty() {
        return Ok(tally);
    }
    let rows = fetch(
        conn,
        "SELECT k.instance, k.kpi, k.value FROM kpi_facts k JOIN instances i ON i.id = k.instance",
        &cond,
    )
    .await?;
    for r in rows {
        let id: String = r.try_get(0)?;
        if let Some((desk, g)) = of.get(&id) {
            tally.value(desk, g, &r.try_get::<String, _>(1)?, r.try_get(2)?);
        }
    }
    let rows = fetch(
        conn,
        "SELECT v.instance, v.step, v.kind, v.visit, v.entered_at, v.claimed_at, v.left_at, v.due_at FROM step_visits v \
         JOIN instances i ON i.id = v.instance",
        &cond,
    )
    .await?;
    for r in rows {
        let id: String = r.try_get(0)?;
        let Some((desk, g)) = of.get(&id) else {
            continue;
        };
        let visit = VisitTimes {
            first: r.try_get::<i64, _>(3)? == 1,
            entered: r.try_get(4)?,
            claimed: r.try_get(5)?,
            left: r.try_get(6)?,
            due: r.try_get(7)?,
        };
        let (step, kind): (String, String) = (r.try_get(1)?, r.try_get(2)?);
        tally.visit(desk, g, &step, &kind, visit);
    }
    Ok(tally)
}

pub(crate) const DAY: i64 = 86_400_000;

/// Requests folded per transaction (each one a bound parameter of the deletion).
pub const FOLD_BATCH: i64 = 2_000;

/// Requests folded per transaction beside the commands ([`Engine::fold_some_indicators`](crate::Engine::fold_some_indicators)).
pub const FOLD_STEP: i64 = 200;

/// The first instant (UTC) of the month of `t`, in milliseconds.
pub(crate) fn month_start(t: i64) -> i64 {
    let d = Timestamp(t).to_datetime();
    match time::Date::from_calendar_date(d.year(), d.month(), 1) {
        Ok(first) => Timestamp::from_datetime(first.midnight().assume_utc()).0,
        Err(_) => t,
    }
}

/// The first instant of the month after the one starting at `start`.
pub(crate) fn next_month(start: i64) -> i64 {
    month_start(start + 32 * DAY)
}

/// The months wholly inside `[from, to)`: those starting in `[a, b)`.
pub(crate) fn whole_months(from: Option<Timestamp>, to: Option<Timestamp>) -> (i64, i64) {
    let a = from.map_or(i64::MIN, |f| {
        let m = month_start(f.0);
        if m == f.0 { m } else { next_month(m) }
    });
    let b = to.map_or(i64::MAX, |t| month_start(t.0));
    (a, b)
}

/// The first instant (UTC) of the day of `t`.
pub(crate) fn day_start(t: i64) -> i64 {
    t.div_euclid(DAY) * DAY
}

/// The days wholly inside `[from, to)`: those starting in `[a, b)`.
pub(crate) fn whole_days(from: Option<Timestamp>, to: Option<Timestamp>) -> (i64, i64) {
    let a = from.map_or(i64::MIN, |f| {
        let d = day_start(f.0);
        if d == f.0 { d } else { d + DAY }
    });
    (a, to.map_or(i64::MAX, |t| day_start(t.0)))
}

/// A stored part, read back.
pub(crate) fn stored_part(desk: &str, bytes: &[u8]) -> Result<Part, Error> {
    Part::decode(bytes)
        .map_err(|e| Error::Corrupt(format!("the indicators' rollup of `{desk}`: {e}")))
}

/// The label of a request's group in reports.
pub(crate) fn group_label(compare: Compare, revision: i64, ended: i64) -> String {
    let month = || {
        let d = Timestamp(ended).to_datetime();
        (d.year(), d.month() as u8)
    };
    match compare {
        Compare::Model => String::new(),
        Compare::Version => format!("revision {revision}"),
        Compare::Month => {
            let (y, m) = month();
            format!("{y}-{m:02}")
        }
        Compare::Quarter => {
            let (y, m) = month();
            format!("{y}-Q{}", (m - 1) / 3 + 1)
        }
    }
}

/// Where a part is stored: grain, revision, first instant, intake field and answer.
pub(crate) type RollupKey = (&'static str, i64, i64, String, String);

/// Adds a part to its stored rollup (read, merged, written back; the caller holds the
/// fold's lock).
pub(crate) async fn add_to_rollup(
    tx: &mut sqlx::Transaction<'static, Any>,
    desk: &str,
    (grain, revision, start, field, value): &RollupKey,
    part: &Part,
) -> Result<(), Error> {
    // The key's six columns, bound first in both statements.
    let keyed = |sql: &'static str| {
        sqlx::query(sql)
            .bind(*grain)
            .bind(*start)
            .bind(desk.to_owned())
            .bind(*revision)
            .bind(field.clone())
            .bind(value.clone())
    };
    let stored = keyed(
        "SELECT part FROM kpi_rollups WHERE grain = $1 AND start = $2 AND desk = $3 AND revision = $4 AND field = $5 AND value = $6",
    )
    .fetch_optional(&mut **tx)
    .await?;
    let mut whole = match stored {
        Some(r) => stored_part(desk, &r.try_get::<Vec<u8>, _>(0)?)?,
        None => Part::default(),
    };
    whole.merge(part);
    #[allow(clippy::cast_possible_wrap)]
    keyed(
        "INSERT INTO kpi_rollups (grain, start, desk, revision, field, value, requests, part) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (grain, start, desk, revision, field, value) DO UPDATE SET requests = excluded.requests, part = excluded.part",
    )
    .bind(whole.requests() as i64)
    .bind(whole.encode())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        let f = time::macros::format_description!("[year]-[month]-[day]");
        Timestamp::from_datetime(
            time::Date::parse(s, f)
                .unwrap_or_else(|_| unreachable!())
                .midnight()
                .assume_utc(),
        )
        .0
    }

    #[test]
    fn whole_months_of_a_period() {
        assert_eq!(month_start(at("2027-03-17") + 5), at("2027-03-01"));
        assert_eq!(next_month(at("2027-12-01")), at("2028-01-01"));
        assert_eq!(next_month(at("2027-01-01")), at("2027-02-01"));
        let m = |f: &str, t: &str| whole_months(Some(Timestamp(at(f))), Some(Timestamp(at(t))));
        assert_eq!(
            m("2027-01-01", "2027-04-01"),
            (at("2027-01-01"), at("2027-04-01"))
        );
        assert_eq!(
            m("2027-01-02", "2027-04-15"),
            (at("2027-02-01"), at("2027-04-01"))
        );
        // No whole month: the days from the daily parts.
        let (a, b) = m("2027-01-05", "2027-01-20");
        assert!(a >= b);
        let d = |f: i64, t: i64| whole_days(Some(Timestamp(f)), Some(Timestamp(t)));
        let jan5 = at("2027-01-05");
        assert_eq!(d(jan5, at("2027-01-20")), (jan5, at("2027-01-20")));
        assert_eq!(
            d(jan5 + 1, at("2027-01-20") + 5),
            (jan5 + DAY, at("2027-01-20"))
        );
        assert_eq!(whole_months(None, None), (i64::MIN, i64::MAX));
    }
}

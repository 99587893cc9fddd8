//! Where the indicators are read from: the stored parts (per month and per day, for all
//! requests and for those of each intake answer) of the requests already folded, and the
//! facts of the others: those ended since the last fold, those in the hours at the edges of
//! the period asked for, and all of them when the query filters on two intake answers or
//! more. Both are read in one snapshot, so a fold committing meanwhile is seen whole or not
//! at all, and every request counts once.

use std::collections::HashMap;

use crate::clock::Timestamp;
use crate::error::Error;
use crate::indicators::kpi::{Compare, Query};
use crate::indicators::tally::{Part, Tally, VisitTimes};
use crate::store::db::{Db, Row, V};

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

impl Scope<'_> {
    /// The condition on `instances i` and its arguments, numbered from `$1`. Each reads
    /// through one index: the end's (a period), the queue's (not folded), the key (ids).
    pub(crate) fn condition(&self) -> (String, Vec<V>) {
        match self {
            Scope::Ended { from, to, filters } | Scope::Pending { from, to, filters } => {
                // `+` keeps the database from reading the end's index (the whole period)
                // instead of the short queue.
                let mut sql = String::from(if matches!(self, Scope::Ended { .. }) {
                    "i.status <> 'running' AND i.ended_at >= $1 AND i.ended_at < $2"
                } else {
                    "i.id IN (SELECT instance FROM kpi_pending) AND +i.ended_at >= $1 AND +i.ended_at < $2"
                });
                let mut args = vec![V::Int(*from), V::Int(*to)];
                for (f, v) in filters.iter() {
                    let n = args.len();
                    sql.push_str(&format!(
                        " AND EXISTS (SELECT 1 FROM instance_fields f WHERE f.instance = i.id AND f.field = ${} AND f.value = ${})",
                        n + 1,
                        n + 2
                    ));
                    args.push(V::Text(f.clone()));
                    args.push(V::Text(v.clone()));
                }
                (sql, args)
            }
            Scope::Ids(ids) => {
                let marks: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
                (
                    format!("i.id IN ({})", marks.join(", ")),
                    ids.iter().map(|s| V::Text(s.clone())).collect(),
                )
            }
        }
    }
}

/// Runs a query over the facts of the requests in scope.
pub(crate) async fn fetch<D: Db>(
    db: &mut D,
    select: &str,
    (condition, args): &(String, Vec<V>),
) -> Result<Vec<Row>, Error> {
    db.rows(format!("{select} WHERE {condition}").into(), args)
        .await
}

/// The facts of the requests in scope, each under the group `group(id, revision, ended_at)`
/// gives it; `desks` (when not empty) keeps only those desks.
pub(crate) async fn read_facts<D: Db, G: Ord + Clone>(
    conn: &mut D,
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
        let desk = r.text(1)?;
        if !desks.is_empty() && !desks.contains(&desk) {
            continue;
        }
        let (started, ended) = (r.int(3)?, r.int(4)?);
        let id = r.text(0)?;
        let g = group(&id, r.int(2)?, ended);
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
        if let Some((desk, g)) = of.get(&r.text(0)?) {
            tally.value(desk, g, &r.text(1)?, r.real(2)?);
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
        let Some((desk, g)) = of.get(&r.text(0)?) else {
            continue;
        };
        let visit = VisitTimes {
            first: r.int(3)? == 1,
            entered: r.int(4)?,
            claimed: r.opt_int(5)?,
            left: r.opt_int(6)?,
            due: r.opt_int(7)?,
        };
        let (step, kind) = (r.text(1)?, r.text(2)?);
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
pub(crate) async fn add_to_rollup<D: Db>(
    db: &mut D,
    desk: &str,
    (grain, revision, start, field, value): &RollupKey,
    part: &Part,
) -> Result<(), Error> {
    // The key's six columns, bound first in both statements.
    let mut key = vec![
        V::Text((*grain).to_owned()),
        V::Int(*start),
        V::Text(desk.to_owned()),
        V::Int(*revision),
        V::Text(field.clone()),
        V::Text(value.clone()),
    ];
    let stored = db
        .row(
            "SELECT part FROM kpi_rollups WHERE grain = $1 AND start = $2 AND desk = $3 AND revision = $4 AND field = $5 AND value = $6"
                .into(),
            &key,
        )
        .await?;
    let mut whole = match stored {
        Some(r) => stored_part(desk, r.blob(0)?)?,
        None => Part::default(),
    };
    whole.merge(part);
    key.push(V::Int(i64::try_from(whole.requests()).unwrap_or(i64::MAX)));
    key.push(V::Blob(whole.encode()));
    db.exec(
        "INSERT INTO kpi_rollups (grain, start, desk, revision, field, value, requests, part) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (grain, start, desk, revision, field, value) DO UPDATE SET requests = excluded.requests, part = excluded.part"
            .into(),
        &key,
    )
    .await?;
    Ok(())
}

/// What the requests the query selects add up to, per desk and group: the stored parts of
/// the whole months and days of the period, and the facts of the rest. To be run in one
/// snapshot (`in_snapshot!`), so that a fold committing meanwhile counts once.
pub(crate) async fn tally<D: Db>(db: &mut D, q: &Query) -> Result<Tally, Error> {
    let (from, to) = (
        q.from.map_or(i64::MIN, |t| t.0),
        q.to.map_or(i64::MAX, |t| t.0),
    );
    // Whole months from the monthly parts, the other whole days from the daily ones, the
    // rest from the facts. The parts are kept for all requests and for those of each
    // intake answer: a query filtered on more than one answer reads facts only.
    let (field, value) = match q.filters.as_slice() {
        [] => (Some(""), Some("")),
        [(f, v)] => (Some(f.as_str()), Some(v.as_str())),
        _ => (None, None),
    };
    let ((ma, mb), (da, dz)) = if field.is_some() {
        let days = whole_days(q.from, q.to);
        // No whole day: all from the facts.
        let days = if days.0 < days.1 { days } else { (to, to) };
        (whole_months(q.from, q.to), days)
    } else {
        ((to, to), (to, to))
    };
    let mut tally = Tally::default();
    let rows = db
        .rows(
            "SELECT desk, revision, start, part FROM kpi_rollups \
             WHERE field = $5 AND value = $6 AND ((grain = 'month' AND start >= $1 AND start < $2) \
             OR (grain = 'day' AND start >= $3 AND start < $4 AND NOT (start >= $1 AND start < $2)))"
                .into(),
            &[
                V::Int(ma),
                V::Int(mb),
                V::Int(da),
                V::Int(dz),
                V::Text(field.unwrap_or_default().to_owned()),
                V::Text(value.unwrap_or_default().to_owned()),
            ],
        )
        .await?;
    for r in rows {
        let desk = r.text(0)?;
        if !q.desks.is_empty() && !q.desks.contains(&desk) {
            continue;
        }
        let part = stored_part(&desk, r.blob(3)?)?;
        let group = group_label(q.compare, r.int(1)?, r.int(2)?);
        tally.merge(&desk, &group, &part);
    }
    // The facts of the rest, in three disjoint parts: before the whole days, after them,
    // and the requests of the whole days not folded yet.
    let scopes = [
        Scope::Ended {
            from,
            to: da.min(to),
            filters: &q.filters,
        },
        Scope::Ended {
            from: dz.max(from),
            to,
            filters: &q.filters,
        },
        Scope::Pending {
            from: da,
            to: dz,
            filters: &q.filters,
        },
    ];
    for scope in &scopes {
        let (Scope::Ended { from, to, .. } | Scope::Pending { from, to, .. }) = scope else {
            continue;
        };
        if from >= to {
            continue;
        }
        let rest = read_facts(db, scope, &q.desks, |_, revision, ended| {
            group_label(q.compare, revision, ended)
        })
        .await?;
        for (desk, group, part) in rest.parts() {
            tally.merge(desk, group, part);
        }
    }
    Ok(tally)
}

/// Folds up to `limit` ended requests into the stored parts of their day and month; returns
/// how many. To be run in one write transaction: its first statement is the fold's lock, so
/// one fold runs at a time, whichever the node.
pub(crate) async fn fold<D: Db>(db: &mut D, limit: i64, now: i64) -> Result<usize, Error> {
    // The lock: a second node folding waits here until this fold commits.
    db.exec(
        "UPDATE kpi_fold SET folded_at = $1 WHERE id = 1".into(),
        &[V::Int(now)],
    )
    .await?;
    let ids: Vec<String> = db
        .rows(
            // Not the requests whose facts are derived again after an upgrade (until then).
            "SELECT p.instance FROM kpi_pending p WHERE NOT EXISTS \
             (SELECT 1 FROM facts_stale s WHERE s.instance = p.instance) ORDER BY p.instance LIMIT $1"
                .into(),
            &[V::Int(limit)],
        )
        .await?
        .iter()
        .map(|r| r.text(0))
        .collect::<Result<_, _>>()?;
    if ids.is_empty() {
        return Ok(0);
    }
    // Each request on its own, then added to its day's part and its month's, and to those
    // of each of its intake answers (so that a comparison filtered on one answer reads parts
    // too).
    let requests = read_facts(db, &Scope::Ids(&ids), &[], |id, revision, ended| {
        (id.to_owned(), revision, day_start(ended))
    })
    .await?;
    let ids_condition = Scope::Ids(&ids).condition();
    let mut answers: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for r in fetch(
        db,
        "SELECT f.instance, f.field, f.value FROM instance_fields f JOIN instances i ON i.id = f.instance",
        &ids_condition,
    )
    .await?
    {
        answers
            .entry(r.text(0)?)
            .or_default()
            .push((r.text(1)?, r.text(2)?));
    }
    let none = (String::new(), String::new());
    let mut parts: Tally<RollupKey> = Tally::default();
    for (desk, (id, revision, day), part) in requests.parts() {
        let month = month_start(*day);
        let intake = answers.get(id).map_or(&[][..], Vec::as_slice);
        for (field, value) in std::iter::once(&none).chain(intake) {
            let (f, v) = (field.clone(), value.clone());
            parts.merge(desk, &("day", *revision, *day, f.clone(), v.clone()), part);
            parts.merge(desk, &("month", *revision, month, f, v), part);
        }
    }
    for (desk, key, part) in parts.into_parts() {
        add_to_rollup(db, &desk, &key, &part).await?;
    }
    let marks: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
    let sql = format!(
        "DELETE FROM kpi_pending WHERE instance IN ({})",
        marks.join(", ")
    );
    let keys: Vec<V> = ids.iter().map(|id| V::Text(id.clone())).collect();
    let deleted = db.exec(sql.into(), &keys).await?;
    if deleted != ids.len() as u64 {
        // Cannot happen under the lock; refuse rather than count a request twice (the
        // transaction is rolled back with this error).
        return Err(Error::Conflict(
            "the indicators were folded by someone else meanwhile".into(),
        ));
    }
    Ok(ids.len())
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

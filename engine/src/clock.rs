//! Time, injected. The engine never reads the system clock itself: the shell passes `now` to
//! the core, taken from a [`Clock`]. Production uses [`SystemClock`]; tests and the simulator
//! use [`ManualClock`], which only moves when told to, so no test ever sleeps.

use std::sync::atomic::{AtomicI64, Ordering};

use guichet_definitions::duration::IsoDuration;
use serde::{Deserialize, Serialize};
use time::{Date, Duration, Month, OffsetDateTime};

/// An instant, in milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn from_datetime(dt: OffsetDateTime) -> Self {
        Timestamp((dt.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    /// As RFC 3339 text in UTC (`2026-12-03T11:40:51.123Z`), as the API writes instants.
    pub fn rfc3339(self) -> String {
        self.to_datetime()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    }

    /// This instant to the minute in Paris time, in the reader's way of writing it:
    /// `03/12/2026 14:05` in French, `2026-12-03 14:05` in English (and in the CLI).
    pub fn paris_minute(self, language: guichet_definitions::model::Language) -> String {
        let format = match language {
            guichet_definitions::model::Language::Fr => {
                time::macros::format_description!("[day]/[month]/[year] [hour]:[minute]")
            }
            guichet_definitions::model::Language::En => {
                time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]")
            }
        };
        self.in_paris().format(format).unwrap_or_default()
    }

    /// Serialises as [`Timestamp::rfc3339`] (`#[serde(serialize_with = ...)]`).
    pub fn serialize_rfc3339<S: serde::Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.rfc3339())
    }

    /// [`Timestamp::serialize_rfc3339`] for an optional instant (`null` when absent).
    pub fn serialize_rfc3339_opt<S: serde::Serializer>(
        t: &Option<Timestamp>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&t.rfc3339()),
            None => s.serialize_none(),
        }
    }

    pub fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// This instant in Paris (Europe/Paris: UTC+1, and UTC+2 in summer time, from the last
    /// Sunday of March to the last Sunday of October at 01:00 UTC, the EU rule since 1996),
    /// for the dates people read in pages and emails.
    pub fn in_paris(self) -> OffsetDateTime {
        let utc = self.to_datetime();
        let year = utc.year();
        let last_sunday_0100 = |month: Month| {
            let next = if month == Month::December {
                Date::from_calendar_date(year + 1, Month::January, 1)
            } else {
                Date::from_calendar_date(year, month.next(), 1)
            };
            let last = next.map_or(Date::MIN, |d| d - Duration::days(1));
            let back = i64::from(last.weekday().number_days_from_sunday());
            (last - Duration::days(back))
                .with_hms(1, 0, 0)
                .map_or(OffsetDateTime::UNIX_EPOCH, |d| d.assume_utc())
        };
        let summer =
            utc >= last_sunday_0100(Month::March) && utc < last_sunday_0100(Month::October);
        let offset = time::UtcOffset::from_hms(if summer { 2 } else { 1 }, 0, 0)
            .unwrap_or(time::UtcOffset::UTC);
        utc.to_offset(offset)
    }

    /// This instant plus a duration as written in a definition. Years and months move on the
    /// calendar (31 January + P1M is the last day of February); the rest is exact.
    pub fn plus(self, d: &IsoDuration) -> Timestamp {
        self.shift(d, 1)
    }

    /// This instant minus a duration (for reminders, counted back from a deadline).
    pub fn minus(self, d: &IsoDuration) -> Timestamp {
        self.shift(d, -1)
    }

    fn shift(self, d: &IsoDuration, sign: i64) -> Timestamp {
        let months = i64::from(d.years) * 12 + i64::from(d.months);
        let dt = add_months(self.to_datetime(), sign * months);
        let exact = Duration::weeks(i64::from(d.weeks))
            + Duration::days(i64::from(d.days))
            + Duration::hours(i64::from(d.hours))
            + Duration::minutes(i64::from(d.minutes))
            + Duration::seconds(i64::from(d.seconds));
        let dt = if sign > 0 {
            dt.saturating_add(exact)
        } else {
            dt.saturating_sub(exact)
        };
        let t = Timestamp::from_datetime(dt);
        match d.working_days {
            0 => t,
            n => t.working_days(sign * i64::from(n)),
        }
    }

    /// This instant `n` working days later (earlier when `n` is negative) on the French
    /// office calendar (Monday to Friday, French public holidays off), at the same time of
    /// day in Paris: "20 jours ouvrés" from a Friday 15:00 is a Friday 15:00 four weeks on,
    /// later by each holiday between.
    pub fn working_days(self, n: i64) -> Timestamp {
        let calendar = crate::calendar::Calendar::french_office();
        let here = self.in_paris();
        let mut date = here.date();
        let mut left = n.abs();
        while left > 0 {
            let next = if n > 0 {
                date.next_day()
            } else {
                date.previous_day()
            };
            let Some(next) = next else { break };
            date = next;
            if calendar.is_working_day(date) {
                left -= 1;
            }
        }
        let days = (date - here.date()).whole_days();
        let t = self.to_datetime().saturating_add(Duration::days(days));
        // The same wall-clock time across a change of summer time.
        let shift = here.offset().whole_seconds()
            - Timestamp::from_datetime(t)
                .in_paris()
                .offset()
                .whole_seconds();
        Timestamp::from_datetime(t.saturating_add(Duration::seconds(i64::from(shift))))
    }
}

fn add_months(dt: OffsetDateTime, months: i64) -> OffsetDateTime {
    if months == 0 {
        return dt;
    }
    let total = i64::from(dt.year()) * 12 + i64::from(dt.month() as u8) - 1 + months;
    let year = i32::try_from(total.div_euclid(12)).unwrap_or(dt.year());
    let month = Month::try_from((total.rem_euclid(12) + 1) as u8).unwrap_or(dt.month());
    let last = time::util::days_in_month(month, year);
    let day = dt.day().min(last);
    match Date::from_calendar_date(year, month, day) {
        Ok(date) => dt.replace_date(date),
        Err(_) => dt,
    }
}

/// Where the engine's shell gets `now` from.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_datetime(OffsetDateTime::now_utc())
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        ManualClock(AtomicI64::new(start.0))
    }

    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }

    pub fn advance(&self, d: &IsoDuration) -> Timestamp {
        let next = self.now().plus(d);
        self.set(next);
        next
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_days_skip_weekends_and_french_holidays_at_the_same_paris_time() {
        let at = |s: &str| {
            Timestamp::from_datetime(
                OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap(),
            )
        };
        let days = |n: u32| IsoDuration {
            working_days: n,
            ..IsoDuration::default()
        };
        // Friday 3 April 2026, 15:00 in Paris: Easter Monday (6 April) is off.
        let friday = at("2026-04-03T13:00:00Z");
        assert_eq!(friday.plus(&days(1)), at("2026-04-07T13:00:00Z"));
        // Twenty: Easter Monday and 1 May off, so Tuesday 5 May.
        assert_eq!(friday.plus(&days(20)), at("2026-05-05T13:00:00Z"));
        // Counted back for a reminder.
        assert_eq!(at("2026-04-07T13:00:00Z").minus(&days(1)), friday);
        // Across the change to winter time (25 October 2026): still 15:00 in Paris.
        let before = at("2026-10-23T13:00:00Z");
        assert_eq!(before.plus(&days(1)), at("2026-10-26T14:00:00Z"));
        // Started on a Saturday: the first working day is Monday.
        assert_eq!(
            at("2026-10-24T08:00:00Z").plus(&days(1)),
            at("2026-10-26T09:00:00Z")
        );
    }

    #[test]
    fn paris_time_follows_summer_time() {
        let at = |dt: OffsetDateTime| Timestamp::from_datetime(dt).in_paris();
        // Winter: UTC+1.
        let w = at(time::macros::datetime!(2027-01-15 12:00 UTC));
        assert_eq!((w.hour(), w.offset().whole_hours()), (13, 1));
        // 28 March 2027 is the last Sunday of March: summer time from 01:00 UTC.
        let before = at(time::macros::datetime!(2027-03-28 00:59 UTC));
        let after = at(time::macros::datetime!(2027-03-28 01:00 UTC));
        assert_eq!((before.hour(), before.minute()), (1, 59));
        assert_eq!(after.hour(), 3);
        // 31 October 2027 is the last Sunday of October: back to UTC+1 at 01:00 UTC.
        let summer = at(time::macros::datetime!(2027-10-31 00:30 UTC));
        let winter = at(time::macros::datetime!(2027-10-31 01:30 UTC));
        assert_eq!((summer.hour(), winter.hour()), (2, 2));
        assert_eq!(
            (summer.offset().whole_hours(), winter.offset().whole_hours()),
            (2, 1)
        );
        // Late December, the month arithmetic wraps into next year.
        assert_eq!(
            at(time::macros::datetime!(2027-12-31 23:30 UTC)).year(),
            2028
        );
    }
    use time::macros::datetime;

    fn ts(dt: OffsetDateTime) -> Timestamp {
        Timestamp::from_datetime(dt)
    }

    #[test]
    fn a_minute_is_written_as_its_reader_writes_it() {
        use guichet_definitions::model::Language;
        // 3 July 2027, 07:05 UTC: 09:05 in Paris (summer time).
        let t = Timestamp::from_datetime(time::macros::datetime!(2027-07-03 07:05 UTC));
        assert_eq!(t.paris_minute(Language::Fr), "03/07/2027 09:05");
        assert_eq!(t.paris_minute(Language::En), "2027-07-03 09:05");
    }

    #[test]
    fn calendar_months_clamp_to_the_end_of_the_month() {
        let d: IsoDuration = "P1M".parse().unwrap();
        assert_eq!(
            ts(datetime!(2027-01-31 10:00 UTC)).plus(&d),
            ts(datetime!(2027-02-28 10:00 UTC))
        );
        let y: IsoDuration = "P1Y".parse().unwrap();
        assert_eq!(
            ts(datetime!(2028-02-29 00:00 UTC)).plus(&y),
            ts(datetime!(2029-02-28 00:00 UTC))
        );
        assert_eq!(
            ts(datetime!(2027-01-15 00:00 UTC)).minus(&"P2M".parse().unwrap()),
            ts(datetime!(2026-11-15 00:00 UTC))
        );
    }

    #[test]
    fn exact_units_add_exactly() {
        let d: IsoDuration = "P1W2DT3H4M5S".parse().unwrap();
        let t = ts(datetime!(2027-03-01 00:00 UTC));
        assert_eq!(t.plus(&d), ts(datetime!(2027-03-10 03:04:05 UTC)));
        assert_eq!(t.plus(&d).minus(&d), t);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Timestamp(0));
        assert_eq!(c.now(), Timestamp(0));
        c.advance(&"PT1S".parse().unwrap());
        assert_eq!(c.now(), Timestamp(1000));
    }
}

//! Working calendars for the simulator: opening hours, working days and French public
//! holidays. Simulated work is counted in working time: a task of one working day takes the
//! hours of one open day, spread over as many calendar days as the calendar needs.
//!
//! Simulated instants are read as local time at the desk (the virtual clock has no time
//! zone): a desk open 09:00-17:00 works from 09:00 to 17:00 on the virtual clock's dates.

use time::{Date, Duration, Month, OffsetDateTime, Weekday};

const DAY_MS: i64 = 86_400_000;
const MINUTE_MS: i64 = 60_000;

/// When people work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Calendar {
    /// Round the clock, every day: a working day is 24 hours.
    Always,
    /// Open from `open` to `close` (minutes after midnight) on the given weekdays, closed on
    /// holidays.
    Business {
        open: u32,
        close: u32,
        /// Monday first.
        days: [bool; 7],
        /// Whether French public holidays are closed.
        french_holidays: bool,
    },
}

impl Calendar {
    /// The usual French office calendar: 09:00-17:00, Monday to Friday, public holidays off.
    pub fn french_office() -> Calendar {
        Calendar::Business {
            open: 9 * 60,
            close: 17 * 60,
            days: [true, true, true, true, true, false, false],
            french_holidays: true,
        }
    }

    /// The length of one working day, in milliseconds.
    pub fn day_ms(&self) -> i64 {
        match self {
            Calendar::Always => DAY_MS,
            Calendar::Business { open, close, .. } => i64::from(close - open) * MINUTE_MS,
        }
    }

    /// Whether the desk opens on that date.
    pub fn is_working_day(&self, date: Date) -> bool {
        match self {
            Calendar::Always => true,
            Calendar::Business {
                days,
                french_holidays,
                ..
            } => {
                days[usize::from(date.weekday().number_days_from_monday())]
                    && !(*french_holidays && is_french_holiday(date))
            }
        }
    }

    /// The working hours of the day holding `t`, as instants, when the desk opens that day.
    fn hours_of_day(&self, t: i64) -> Option<(i64, i64)> {
        let midnight = t.div_euclid(DAY_MS) * DAY_MS;
        match self {
            Calendar::Always => Some((midnight, midnight + DAY_MS)),
            Calendar::Business { open, close, .. } => self.is_working_day(date_of(t)).then(|| {
                (
                    midnight + i64::from(*open) * MINUTE_MS,
                    midnight + i64::from(*close) * MINUTE_MS,
                )
            }),
        }
    }

    /// The instant at which `work` milliseconds of working time started at `start` are done.
    pub fn add_work(&self, start: i64, work: i64) -> i64 {
        if work <= 0 {
            return start;
        }
        let mut t = start;
        let mut left = work;
        loop {
            if let Some((open, close)) = self.hours_of_day(t) {
                let from = t.max(open);
                if from < close {
                    if left <= close - from {
                        return from + left;
                    }
                    left -= close - from;
                }
            }
            t = (t.div_euclid(DAY_MS) + 1) * DAY_MS;
        }
    }

    /// Working time between two instants, in milliseconds.
    pub fn working_between(&self, a: i64, b: i64) -> i64 {
        let mut total = 0;
        let mut t = a;
        while t < b {
            let next_midnight = (t.div_euclid(DAY_MS) + 1) * DAY_MS;
            if let Some((open, close)) = self.hours_of_day(t) {
                let (from, to) = (t.max(open), b.min(close));
                total += (to - from).max(0);
            }
            t = next_midnight;
        }
        total
    }
}

fn date_of(t: i64) -> Date {
    (OffsetDateTime::UNIX_EPOCH + Duration::milliseconds(t)).date()
}

/// Easter Sunday of a year (the anonymous Gregorian algorithm).
pub fn easter(year: i32) -> Date {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    let month = if month == 3 {
        Month::March
    } else {
        Month::April
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let day = day as u8;
    Date::from_calendar_date(year, month, day).unwrap_or(Date::MIN)
}

/// The eleven public holidays of metropolitan France (Alsace-Moselle adds two more, not
/// counted here).
pub fn french_holidays(year: i32) -> Vec<Date> {
    let fixed = [
        (Month::January, 1),
        (Month::May, 1),
        (Month::May, 8),
        (Month::July, 14),
        (Month::August, 15),
        (Month::November, 1),
        (Month::November, 11),
        (Month::December, 25),
    ];
    let e = easter(year);
    let mut out: Vec<Date> = fixed
        .iter()
        .filter_map(|(m, d)| Date::from_calendar_date(year, *m, *d).ok())
        .collect();
    // Easter Monday, Ascension Thursday, Whit Monday.
    out.extend([1, 39, 50].map(|n| e + Duration::days(n)));
    out.sort();
    out
}

fn is_french_holiday(date: Date) -> bool {
    french_holidays(date.year()).contains(&date)
}

/// Parses a weekday written in English or French, full or three letters.
pub fn weekday(s: &str) -> Option<Weekday> {
    Some(match s.to_lowercase().as_str() {
        "mon" | "monday" | "lun" | "lundi" => Weekday::Monday,
        "tue" | "tuesday" | "mar" | "mardi" => Weekday::Tuesday,
        "wed" | "wednesday" | "mer" | "mercredi" => Weekday::Wednesday,
        "thu" | "thursday" | "jeu" | "jeudi" => Weekday::Thursday,
        "fri" | "friday" | "ven" | "vendredi" => Weekday::Friday,
        "sat" | "saturday" | "sam" | "samedi" => Weekday::Saturday,
        "sun" | "sunday" | "dim" | "dimanche" => Weekday::Sunday,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    fn ms(dt: OffsetDateTime) -> i64 {
        i64::try_from(dt.unix_timestamp_nanos() / 1_000_000).unwrap_or_default()
    }

    #[test]
    fn easter_dates_are_known_ones() {
        assert_eq!(easter(2024), date!(2024 - 03 - 31));
        assert_eq!(easter(2025), date!(2025 - 04 - 20));
        assert_eq!(easter(2026), date!(2026 - 04 - 05));
        assert_eq!(easter(2027), date!(2027 - 03 - 28));
        assert_eq!(easter(2038), date!(2038 - 04 - 25));
    }

    #[test]
    fn french_holidays_of_2027() {
        let h = french_holidays(2027);
        assert_eq!(h.len(), 11);
        for d in [
            date!(2027 - 03 - 29), // Easter Monday
            date!(2027 - 05 - 06), // Ascension
            date!(2027 - 05 - 17), // Whit Monday
            date!(2027 - 07 - 14),
            date!(2027 - 12 - 25),
        ] {
            assert!(h.contains(&d), "{d}");
        }
    }

    #[test]
    fn work_spreads_over_open_hours_and_skips_weekends_and_holidays() {
        let cal = Calendar::french_office();
        let day = cal.day_ms();
        // Friday 16:00 plus two working hours: Monday 10:00.
        let fri = ms(datetime!(2027-01-08 16:00 UTC));
        assert_eq!(
            cal.add_work(fri, 2 * 3_600_000),
            ms(datetime!(2027-01-11 10:00 UTC))
        );
        // Submitted on a Saturday night, one working day: done on Monday at 17:00.
        let sat = ms(datetime!(2027-01-09 23:00 UTC));
        assert_eq!(cal.add_work(sat, day), ms(datetime!(2027-01-11 17:00 UTC)));
        // Thursday 6 May 2027 is Ascension: one day from Wednesday 17:00 ends Friday 17:00.
        let wed = ms(datetime!(2027-05-05 17:00 UTC));
        assert_eq!(cal.add_work(wed, day), ms(datetime!(2027-05-07 17:00 UTC)));
        // Working time over a whole week of January: five days of eight hours.
        let mon = ms(datetime!(2027-01-11 00:00 UTC));
        assert_eq!(cal.working_between(mon, mon + 7 * DAY_MS), 5 * day);
        assert_eq!(Calendar::Always.add_work(fri, DAY_MS), fri + DAY_MS);
    }
}

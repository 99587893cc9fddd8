//! ISO 8601 durations (`P15D`, `PT48H`, `P1M2W`), as written for deadlines, reminders,
//! escalations and timeouts, and working days (`"20 working days"`, `"20 jours ouvrés"`):
//! counted on the French office calendar (weekends and French public holidays off) by the
//! engine, at the same time of day.
//!
//! Calendar units (years, months) are kept as written: the engine adds them to a date on the
//! calendar, so "P1M" from 31 January is the end of February, as a person expects. For
//! comparisons made at load time (is the reminder before the deadline?) a month counts as 30
//! days and a year as 365, which is only used to warn.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// A duration as written in a definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub struct IsoDuration {
    pub years: u32,
    pub months: u32,
    pub weeks: u32,
    pub days: u32,
    pub hours: u32,
    pub minutes: u32,
    pub seconds: u32,
    /// Working days (`"20 working days"`): written alone, never with ISO units.
    #[serde(skip_serializing_if = "is_zero")]
    pub working_days: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Why a duration did not parse; the message says what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// The largest value accepted for one component: about 27 years in days, enough for any desk
/// and small enough that no later arithmetic overflows.
const MAX_COMPONENT: u32 = 10_000;

impl IsoDuration {
    /// An approximate length in seconds (30-day months, 365-day years), for comparisons only.
    pub fn approx_seconds(&self) -> u64 {
        // Five working days take about a week.
        let days = u64::from(self.working_days) * 7 / 5
            + u64::from(self.years) * 365
            + u64::from(self.months) * 30
            + u64::from(self.weeks) * 7
            + u64::from(self.days);
        days * 86_400
            + u64::from(self.hours) * 3_600
            + u64::from(self.minutes) * 60
            + u64::from(self.seconds)
    }

    pub fn is_zero(&self) -> bool {
        self.approx_seconds() == 0
    }
}

impl FromStr for IsoDuration {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        let expected = "write it as ISO 8601, e.g. \"P15D\" (15 days), \"P2W\" (2 weeks), \
                        \"PT48H\" (48 hours) or \"P1M\" (1 month), or in working days: \
                        \"20 working days\" (\"20 jours ouvrés\")";
        if let Some((number, unit)) = s.trim().split_once(' ')
            && matches!(
                unit.trim(),
                "working days"
                    | "working day"
                    | "jours ouvrés"
                    | "jour ouvré"
                    | "jours ouvres"
                    | "jour ouvre"
            )
        {
            let n: u32 = number
                .parse()
                .ok()
                .filter(|v| (1..=MAX_COMPONENT).contains(v))
                .ok_or_else(|| {
                    ParseError(format!(
                        "\"{number}\" is not a number of working days from 1 to {MAX_COMPONENT}"
                    ))
                })?;
            return Ok(IsoDuration {
                working_days: n,
                ..IsoDuration::default()
            });
        }
        let rest = s
            .strip_prefix('P')
            .ok_or_else(|| ParseError(format!("a duration starts with \"P\"; {expected}")))?;
        if rest.is_empty() || rest == "T" {
            return Err(ParseError(format!("\"{s}\" has no amount; {expected}")));
        }
        let mut d = IsoDuration::default();
        let mut in_time = false;
        let mut number = String::new();
        // Units must come in this order; `last` is the rank of the previous unit.
        let mut last = 0u8;
        for c in rest.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            if c == 'T' {
                if in_time || !number.is_empty() {
                    return Err(ParseError(format!(
                        "misplaced \"T\" in \"{s}\"; {expected}"
                    )));
                }
                in_time = true;
                continue;
            }
            if number.is_empty() {
                return Err(ParseError(format!(
                    "\"{c}\" in \"{s}\" has no number before it; {expected}"
                )));
            }
            let value: u32 = number
                .parse()
                .ok()
                .filter(|v| *v <= MAX_COMPONENT)
                .ok_or_else(|| {
                    ParseError(format!("{number} is too large (at most {MAX_COMPONENT})"))
                })?;
            number.clear();
            let (rank, slot) = match (in_time, c) {
                (false, 'Y') => (1, &mut d.years),
                (false, 'M') => (2, &mut d.months),
                (false, 'W') => (3, &mut d.weeks),
                (false, 'D') => (4, &mut d.days),
                (true, 'H') => (5, &mut d.hours),
                (true, 'M') => (6, &mut d.minutes),
                (true, 'S') => (7, &mut d.seconds),
                (false, 'H' | 'S') => {
                    return Err(ParseError(format!(
                        "hours and seconds come after \"T\" (\"PT{value}{c}\"); {expected}"
                    )));
                }
                _ => {
                    return Err(ParseError(format!(
                        "unknown unit \"{c}\" in \"{s}\"; {expected}"
                    )));
                }
            };
            if rank <= last {
                return Err(ParseError(format!(
                    "units of \"{s}\" are repeated or out of order (Y, M, W, D, then T, H, M, S)"
                )));
            }
            last = rank;
            *slot = value;
        }
        if !number.is_empty() {
            return Err(ParseError(format!(
                "\"{s}\" ends with a number but no unit; {expected}"
            )));
        }
        if in_time && last < 5 {
            return Err(ParseError(format!(
                "\"{s}\" has \"T\" but no time after it"
            )));
        }
        Ok(d)
    }
}

impl fmt::Display for IsoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.working_days > 0 {
            let s = if self.working_days == 1 { "" } else { "s" };
            return write!(f, "{} working day{s}", self.working_days);
        }
        f.write_str("P")?;
        for (v, u) in [
            (self.years, 'Y'),
            (self.months, 'M'),
            (self.weeks, 'W'),
            (self.days, 'D'),
        ] {
            if v > 0 {
                write!(f, "{v}{u}")?;
            }
        }
        if self.hours + self.minutes + self.seconds > 0 {
            f.write_str("T")?;
            for (v, u) in [(self.hours, 'H'), (self.minutes, 'M'), (self.seconds, 'S')] {
                if v > 0 {
                    write!(f, "{v}{u}")?;
                }
            }
        }
        if self.is_zero() {
            f.write_str("0D")?;
        }
        Ok(())
    }
}

/// Durations are compared (reminder before deadline) with this helper.
pub(crate) fn longer(a: &IsoDuration, b: &IsoDuration) -> bool {
    a.approx_seconds() >= b.approx_seconds()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_common_forms() {
        let d: IsoDuration = "P15D".parse().unwrap();
        assert_eq!(d.days, 15);
        let d: IsoDuration = "P1Y2M3W4DT5H6M7S".parse().unwrap();
        assert_eq!(
            (
                d.years, d.months, d.weeks, d.days, d.hours, d.minutes, d.seconds
            ),
            (1, 2, 3, 4, 5, 6, 7)
        );
        let d: IsoDuration = "PT48H".parse().unwrap();
        assert_eq!(d.approx_seconds(), 48 * 3600);
        assert_eq!("P1M".parse::<IsoDuration>().unwrap().months, 1);
        assert_eq!("PT1M".parse::<IsoDuration>().unwrap().minutes, 1);
    }

    #[test]
    fn rejects_bad_forms_with_a_reason() {
        for bad in [
            "",
            "15D",
            "P",
            "PT",
            "P15",
            "PD",
            "P1H",
            "P1D1D",
            "P1D2Y",
            "P1.5D",
            "P-1D",
            "P99999999999D",
            "PT1D",
            "P1DT",
            "P1X",
            "p1d",
        ] {
            let err = bad.parse::<IsoDuration>().unwrap_err();
            assert!(!err.0.is_empty(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn display_round_trips(y in 0u32..5, mo in 0u32..13, w in 0u32..10, d in 0u32..400,
                               h in 0u32..48, mi in 0u32..120, s in 0u32..120) {
            let dur = IsoDuration { years: y, months: mo, weeks: w, days: d, hours: h, minutes: mi, seconds: s, working_days: 0 };
            prop_assume!(!dur.is_zero());
            let back: IsoDuration = dur.to_string().parse().unwrap();
            prop_assert_eq!(back, dur);
        }

        #[test]
        fn working_days_round_trip(n in 1u32..10_000) {
            let dur = IsoDuration { working_days: n, ..IsoDuration::default() };
            let back: IsoDuration = dur.to_string().parse().unwrap();
            prop_assert_eq!(back, dur);
            let french: IsoDuration = format!("{n} jours ouvrés").parse().unwrap();
            prop_assert_eq!(french, dur);
        }

        #[test]
        fn never_panics(s in "\\PC{0,20}") {
            let _ = s.parse::<IsoDuration>();
        }
    }
}

//! `Day`: a UTC calendar day, the time unit of partitioning and retention.

use std::fmt;

use time::{Date, Month};

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// The earliest timestamp the store accepts (1900-01-01T00:00:00Z): tantivy keeps dates as
/// nanoseconds in an `i64`, which only spans 1678..2262.
pub const TIMESTAMP_MS_MIN: i64 = -2_208_988_800_000;

/// The first timestamp the store refuses (2200-01-01T00:00:00Z), for the same reason.
pub const TIMESTAMP_MS_END: i64 = 7_258_118_400_000;

/// The Julian day number of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;

/// A UTC calendar day, counted in days since 1970-01-01. Displayed and parsed as `YYYY-MM-DD`,
/// which is also the partition's directory name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(i32);

impl Day {
    /// The day that contains `timestamp_ms` (milliseconds since the Unix epoch, UTC).
    pub fn from_timestamp_ms(timestamp_ms: i64) -> Day {
        let days = timestamp_ms.div_euclid(DAY_MS);
        // Timestamps are validated against [TIMESTAMP_MS_MIN, TIMESTAMP_MS_END) before they get
        // here; clamping keeps the conversion total for any i64 anyway.
        Day(days.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
    }

    /// The day with this number of days since 1970-01-01.
    pub fn from_days_since_epoch(days: i32) -> Day {
        Day(days)
    }

    /// The number of days since 1970-01-01.
    pub fn days_since_epoch(self) -> i32 {
        self.0
    }

    /// The day of a calendar date, if it exists.
    pub fn from_ymd(year: i32, month: u8, day: u8) -> Option<Day> {
        let month = Month::try_from(month).ok()?;
        let date = Date::from_calendar_date(year, month, day).ok()?;
        Some(Day(date.to_julian_day() - UNIX_EPOCH_JULIAN_DAY))
    }

    /// Parses `YYYY-MM-DD` (exactly that shape: four-digit year, two-digit month and day).
    pub fn parse(text: &str) -> Option<Day> {
        let bytes = text.as_bytes();
        if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
            return None;
        }
        let digits = |range: std::ops::Range<usize>| -> Option<u32> {
            let part = &text[range];
            if !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        };
        let year = i32::try_from(digits(0..4)?).ok()?;
        let month = u8::try_from(digits(5..7)?).ok()?;
        let day = u8::try_from(digits(8..10)?).ok()?;
        Day::from_ymd(year, month, day)
    }

    /// The first millisecond of the day.
    pub fn start_ms(self) -> i64 {
        i64::from(self.0) * DAY_MS
    }

    /// The first millisecond of the next day (the day's exclusive end).
    pub fn end_ms(self) -> i64 {
        self.start_ms() + DAY_MS
    }

    /// The day `days` days later (earlier when negative).
    pub fn plus_days(self, days: i32) -> Day {
        Day(self.0.saturating_add(days))
    }

    fn date(self) -> Option<Date> {
        Date::from_julian_day(self.0.checked_add(UNIX_EPOCH_JULIAN_DAY)?).ok()
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.date() {
            Some(date) => write!(
                f,
                "{:04}-{:02}-{:02}",
                date.year(),
                u8::from(date.month()),
                date.day()
            ),
            // Out of the calendar's range: cannot come from a validated timestamp.
            None => write!(f, "day{}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_negative_timestamps_floor_to_their_day() {
        assert_eq!(Day::from_timestamp_ms(0).to_string(), "1970-01-01");
        assert_eq!(Day::from_timestamp_ms(DAY_MS - 1).to_string(), "1970-01-01");
        assert_eq!(Day::from_timestamp_ms(DAY_MS).to_string(), "1970-01-02");
        assert_eq!(Day::from_timestamp_ms(-1).to_string(), "1969-12-31");
        assert_eq!(
            Day::from_timestamp_ms(1_767_225_600_000).to_string(),
            "2026-01-01"
        );
    }

    #[test]
    fn parse_accepts_only_the_directory_shape() {
        assert_eq!(Day::parse("2026-01-01"), Day::from_ymd(2026, 1, 1));
        assert_eq!(Day::parse("2026-02-30"), None);
        assert_eq!(Day::parse("2026-1-01"), None);
        assert_eq!(Day::parse("+026-01-01"), None);
        assert_eq!(Day::parse("2026-01-01x"), None);
        assert_eq!(Day::parse(".."), None);
    }

    #[test]
    fn bounds_are_the_documented_dates() {
        assert_eq!(
            Day::from_timestamp_ms(TIMESTAMP_MS_MIN).to_string(),
            "1900-01-01"
        );
        assert_eq!(
            Day::from_timestamp_ms(TIMESTAMP_MS_END).to_string(),
            "2200-01-01"
        );
    }

    proptest::proptest! {
        #[test]
        fn display_then_parse_is_identity(ms in TIMESTAMP_MS_MIN..TIMESTAMP_MS_END) {
            let day = Day::from_timestamp_ms(ms);
            proptest::prop_assert_eq!(Day::parse(&day.to_string()), Some(day));
            proptest::prop_assert!(day.start_ms() <= ms && ms < day.end_ms());
        }
    }
}

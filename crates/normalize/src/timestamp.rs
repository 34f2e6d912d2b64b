//! Dates: reading RFC 3339 / ISO 8601 strings and epoch milliseconds, and writing the one
//! stored form, RFC 3339 in UTC with milliseconds (`2026-11-22T10:00:00.123Z`).
//!
//! Accepted strings (anything else is refused with a reason):
//!
//! - `YYYY-MM-DD`, midnight UTC;
//! - `YYYY-MM-DD` then `T`, `t` or a space, then `HH:MM` or `HH:MM:SS`, then optionally a
//!   fraction of a second (`.` or `,` and 1 to 9 digits), then optionally a zone: `Z`, `z`,
//!   `+HH:MM`, `+HHMM` or `+HH` (or `-`). Without a zone the time is UTC, as in Elasticsearch;
//! - an optional `-` and digits only: epoch milliseconds (so `"2026"` is 2.026 s after the
//!   epoch, not a year).
//!
//! Years 0000 to 9999 only (what RFC 3339 can write); no leap seconds (`:60`). Hand-written
//! rather than `time`'s parsers: it accepts the space form and missing zones in one pass and
//! allocates nothing; the tests check it against `time`.
//!
//! The stored form keeps every digit that carries information: milliseconds always, then
//! micro- or nanoseconds only when they are not zero, so no precision is lost.

/// 0000-01-01T00:00:00Z, in seconds since the epoch.
const SECONDS_MIN: i64 = -62_167_219_200;
/// 9999-12-31T23:59:59Z, in seconds since the epoch.
const SECONDS_MAX: i64 = 253_402_300_799;
/// The earliest instant in epoch milliseconds.
pub(crate) const MILLIS_MIN: i64 = SECONDS_MIN * 1000;
/// The latest instant in epoch milliseconds.
pub(crate) const MILLIS_MAX: i64 = SECONDS_MAX * 1000 + 999;

const SECONDS_PER_DAY: i64 = 86_400;

pub(crate) const NOT_A_DATE: &str =
    "not an RFC 3339 date (like 2026-11-22T10:00:00.123Z) nor epoch milliseconds";
pub(crate) const OUT_OF_RANGE: &str = "a date outside the years 0000 to 9999";
const NOT_ON_THE_CALENDAR: &str = "a date or time of day that does not exist";
const TOO_PRECISE: &str = "more than 9 fractional digits (finer than nanoseconds)";

/// An instant between the years 0000 and 9999, to the nanosecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Instant {
    /// Seconds since the epoch, in `SECONDS_MIN..=SECONDS_MAX`.
    seconds: i64,
    /// Nanoseconds into the second, below 1e9.
    nanos: u32,
}

impl Instant {
    /// The instant `millis` milliseconds after the epoch, if within the years 0000 to 9999.
    pub(crate) fn from_millis(millis: i64) -> Option<Instant> {
        if !(MILLIS_MIN..=MILLIS_MAX).contains(&millis) {
            return None;
        }
        let nanos = millis.rem_euclid(1000) as u32 * 1_000_000;
        Some(Instant {
            seconds: millis.div_euclid(1000),
            nanos,
        })
    }

    /// Like [`Instant::from_millis`], clamping to the years 0000 to 9999.
    pub(crate) fn from_millis_clamped(millis: i64) -> Instant {
        let millis = millis.clamp(MILLIS_MIN, MILLIS_MAX);
        Instant {
            seconds: millis.div_euclid(1000),
            nanos: millis.rem_euclid(1000) as u32 * 1_000_000,
        }
    }

    /// Milliseconds since the epoch, rounded down (towards the past).
    pub(crate) fn millis(self) -> i64 {
        self.seconds * 1000 + i64::from(self.nanos / 1_000_000)
    }

    /// The stored form: `YYYY-MM-DDTHH:MM:SS.mmmZ`, with 6 or 9 fractional digits when the
    /// sub-millisecond part is not zero.
    pub(crate) fn format(self) -> String {
        let days = self.seconds.div_euclid(SECONDS_PER_DAY);
        let second_of_day = self.seconds.rem_euclid(SECONDS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let mut out = String::with_capacity(30);
        push_digits(&mut out, year as u64, 4);
        out.push('-');
        push_digits(&mut out, u64::from(month), 2);
        out.push('-');
        push_digits(&mut out, u64::from(day), 2);
        out.push('T');
        push_digits(&mut out, (second_of_day / 3600) as u64, 2);
        out.push(':');
        push_digits(&mut out, (second_of_day / 60 % 60) as u64, 2);
        out.push(':');
        push_digits(&mut out, (second_of_day % 60) as u64, 2);
        out.push('.');
        if self.nanos.is_multiple_of(1_000_000) {
            push_digits(&mut out, u64::from(self.nanos / 1_000_000), 3);
        } else if self.nanos.is_multiple_of(1000) {
            push_digits(&mut out, u64::from(self.nanos / 1000), 6);
        } else {
            push_digits(&mut out, u64::from(self.nanos), 9);
        }
        out.push('Z');
        out
    }
}

/// Reads a date string (module docs); the error is the reason, for `_ignored`.
pub(crate) fn parse(text: &str) -> Result<Instant, &'static str> {
    let bytes = text.as_bytes();
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
        let millis = text.parse::<i64>().map_err(|_| OUT_OF_RANGE)?;
        return Instant::from_millis(millis).ok_or(OUT_OF_RANGE);
    }
    parse_date_time(bytes)
}

fn parse_date_time(bytes: &[u8]) -> Result<Instant, &'static str> {
    let mut cursor = Cursor { bytes, at: 0 };
    let year = cursor.number(4).ok_or(NOT_A_DATE)?;
    cursor.expect(b'-').ok_or(NOT_A_DATE)?;
    let month = cursor.number(2).ok_or(NOT_A_DATE)?;
    cursor.expect(b'-').ok_or(NOT_A_DATE)?;
    let day = cursor.number(2).ok_or(NOT_A_DATE)?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err(NOT_ON_THE_CALENDAR);
    }
    let (mut hour, mut minute, mut second, mut nanos, mut offset_seconds) = (0, 0, 0, 0, 0);
    if !cursor.done() {
        if !matches!(cursor.next(), Some(b'T' | b't' | b' ')) {
            return Err(NOT_A_DATE);
        }
        hour = cursor.number(2).ok_or(NOT_A_DATE)?;
        cursor.expect(b':').ok_or(NOT_A_DATE)?;
        minute = cursor.number(2).ok_or(NOT_A_DATE)?;
        if cursor.peek() == Some(b':') {
            cursor.at += 1;
            second = cursor.number(2).ok_or(NOT_A_DATE)?;
            if matches!(cursor.peek(), Some(b'.' | b',')) {
                cursor.at += 1;
                nanos = cursor.fraction()?;
            }
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(NOT_ON_THE_CALENDAR);
        }
        offset_seconds = cursor.zone()?;
        if !cursor.done() {
            return Err(NOT_A_DATE);
        }
    }
    let days = days_from_civil(i64::from(year), month, day);
    let seconds = days * SECONDS_PER_DAY
        + i64::from(hour) * 3600
        + i64::from(minute) * 60
        + i64::from(second)
        - offset_seconds;
    if !(SECONDS_MIN..=SECONDS_MAX).contains(&seconds) {
        return Err(OUT_OF_RANGE);
    }
    Ok(Instant { seconds, nanos })
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn done(&self) -> bool {
        self.at == self.bytes.len()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    /// Exactly `width` ASCII digits.
    fn number(&mut self, width: usize) -> Option<u32> {
        let digits = self.bytes.get(self.at..self.at + width)?;
        let mut value = 0;
        for &digit in digits {
            if !digit.is_ascii_digit() {
                return None;
            }
            value = value * 10 + u32::from(digit - b'0');
        }
        self.at += width;
        Some(value)
    }

    /// 1 to 9 digits after the decimal separator, as nanoseconds.
    fn fraction(&mut self) -> Result<u32, &'static str> {
        let start = self.at;
        let mut nanos = 0;
        while let Some(digit) = self.peek().filter(u8::is_ascii_digit) {
            if self.at - start == 9 {
                return Err(TOO_PRECISE);
            }
            nanos = nanos * 10 + u32::from(digit - b'0');
            self.at += 1;
        }
        let count = self.at - start;
        if count == 0 {
            return Err(NOT_A_DATE);
        }
        Ok(nanos * 10u32.pow(9 - count as u32))
    }

    /// An optional zone, as seconds east of UTC.
    fn zone(&mut self) -> Result<i64, &'static str> {
        let sign = match self.peek() {
            None => return Ok(0),
            Some(b'Z' | b'z') => {
                self.at += 1;
                return Ok(0);
            }
            Some(b'+') => 1,
            Some(b'-') => -1,
            Some(_) => return Err(NOT_A_DATE),
        };
        self.at += 1;
        let hours = self.number(2).ok_or(NOT_A_DATE)?;
        let minutes = if self.done() {
            0
        } else {
            if self.peek() == Some(b':') {
                self.at += 1;
            }
            self.number(2).ok_or(NOT_A_DATE)?
        };
        if hours > 23 || minutes > 59 {
            return Err(NOT_ON_THE_CALENDAR);
        }
        Ok(sign * i64::from(hours * 3600 + minutes * 60))
    }
}

fn is_leap_year(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Appends `value` in decimal, zero-padded to `width` digits.
fn push_digits(out: &mut String, value: u64, width: usize) {
    let mut buffer = [b'0'; 20];
    let mut value = value;
    let mut at = buffer.len();
    while value > 0 {
        at -= 1;
        buffer[at] = b'0' + (value % 10) as u8;
        value /= 10;
    }
    let start = at.min(buffer.len() - width);
    for &digit in &buffer[start..] {
        out.push(char::from(digit));
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    use super::*;

    fn millis(text: &str) -> Result<i64, &'static str> {
        parse(text).map(Instant::millis)
    }

    fn stored(text: &str) -> String {
        parse(text).unwrap().format()
    }

    #[test]
    fn reads_rfc_3339_with_and_without_fractions_and_zones() {
        let expected = 1_795_341_600_123; // 2026-11-22T10:00:00.123Z
        for text in [
            "2026-11-22T10:00:00.123Z",
            "2026-11-22t10:00:00.123z",
            "2026-11-22 10:00:00.123Z",
            "2026-11-22T10:00:00,123Z",
            "2026-11-22T12:00:00.123+02:00",
            "2026-11-22T12:00:00.123+0200",
            "2026-11-22T12:00:00.123+02",
            "2026-11-22T05:30:00.123-04:30",
            "2026-11-22T10:00:00.123",
            "2026-11-22T10:00:00.123456789Z",
            "1795341600123",
        ] {
            assert_eq!(millis(text), Ok(expected), "{text}");
        }
        assert_eq!(millis("2026-11-22T10:00:00Z"), Ok(expected - 123));
        assert_eq!(millis("2026-11-22T10:00Z"), Ok(expected - 123));
        assert_eq!(millis("2026-11-22 10:00"), Ok(expected - 123));
        assert_eq!(millis("2026-11-22"), Ok(expected - 123 - 10 * 3_600_000));
        assert_eq!(millis("-1"), Ok(-1));
        assert_eq!(millis("0"), Ok(0));
    }

    #[test]
    fn stored_form_is_utc_with_milliseconds_and_keeps_finer_digits() {
        assert_eq!(
            stored("2026-11-22T12:00:00+02:00"),
            "2026-11-22T10:00:00.000Z"
        );
        assert_eq!(stored("2026-11-22T10:00:00.5Z"), "2026-11-22T10:00:00.500Z");
        assert_eq!(
            stored("2026-11-22T10:00:00.1234Z"),
            "2026-11-22T10:00:00.123400Z"
        );
        assert_eq!(
            stored("2026-11-22T10:00:00.123456789Z"),
            "2026-11-22T10:00:00.123456789Z"
        );
        assert_eq!(stored("-1"), "1969-12-31T23:59:59.999Z");
        assert_eq!(stored("0000-01-01T00:00:00Z"), "0000-01-01T00:00:00.000Z");
        assert_eq!(
            stored("9999-12-31T23:59:59.999999999Z"),
            "9999-12-31T23:59:59.999999999Z"
        );
        assert_eq!(
            parse("1969-12-31T23:59:59.9999Z").unwrap().millis(),
            -1,
            "sub-millisecond instants before the epoch round down"
        );
    }

    #[test]
    fn refuses_what_is_not_a_date_with_a_reason() {
        for (text, reason) in [
            ("", NOT_A_DATE),
            ("-", NOT_A_DATE),
            ("yesterday", NOT_A_DATE),
            ("2026-11-22T", NOT_A_DATE),
            ("2026-11-22T10", NOT_A_DATE),
            ("2026-11-22T10:00:00.", NOT_A_DATE),
            ("2026-11-22T10:00:00Zjunk", NOT_A_DATE),
            ("2026-11-22T10:00:00+2", NOT_A_DATE),
            ("26-11-22", NOT_A_DATE),
            ("2026/11/22", NOT_A_DATE),
            (" 2026-11-22", NOT_A_DATE),
            ("2026-02-29", NOT_ON_THE_CALENDAR),
            ("2026-13-01", NOT_ON_THE_CALENDAR),
            ("2026-11-22T24:00:00Z", NOT_ON_THE_CALENDAR),
            ("2026-11-22T23:59:60Z", NOT_ON_THE_CALENDAR),
            ("2026-11-22T10:00:00+24:00", NOT_ON_THE_CALENDAR),
            ("2026-11-22T10:00:00.1234567891Z", TOO_PRECISE),
            ("0000-01-01T00:00:00+01:00", OUT_OF_RANGE),
            ("9999-12-31T23:59:59-01:00", OUT_OF_RANGE),
            ("253402300800000", OUT_OF_RANGE),
            ("99999999999999999999", OUT_OF_RANGE),
        ] {
            assert_eq!(millis(text), Err(reason), "{text}");
        }
        assert_eq!(millis("2024-02-29"), Ok(1_709_164_800_000));
        assert_eq!(millis("2000-02-29"), Ok(951_782_400_000));
        assert_eq!(millis("1900-02-29"), Err(NOT_ON_THE_CALENDAR));
    }

    #[test]
    fn epoch_millis_bounds() {
        assert!(Instant::from_millis(MILLIS_MIN).is_some());
        assert!(Instant::from_millis(MILLIS_MAX).is_some());
        assert!(Instant::from_millis(MILLIS_MIN - 1).is_none());
        assert!(Instant::from_millis(MILLIS_MAX + 1).is_none());
        assert_eq!(Instant::from_millis_clamped(i64::MAX).millis(), MILLIS_MAX);
        assert_eq!(Instant::from_millis_clamped(i64::MIN).millis(), MILLIS_MIN);
    }

    proptest! {
        #[test]
        fn format_agrees_with_time_and_round_trips(
            millis in MILLIS_MIN..=MILLIS_MAX,
            sub_millis in prop_oneof![Just(0u32), 0u32..1_000_000],
        ) {
            let mut instant = Instant::from_millis(millis).unwrap();
            instant.nanos += sub_millis;
            let text = instant.format();
            let reference = OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(instant.seconds) * 1_000_000_000 + i128::from(instant.nanos),
            )
            .unwrap();
            prop_assert_eq!(OffsetDateTime::parse(&text, &Rfc3339).unwrap(), reference);
            prop_assert_eq!(parse(&text), Ok(instant));
            prop_assert_eq!(parse(&text).unwrap().millis(), millis);
            prop_assert_eq!(parse(&millis.to_string()).unwrap().millis(), millis);
        }

        #[test]
        fn parse_agrees_with_time_on_offsets(
            seconds in 0i64..253_402_300_799 - 86_400,
            nanos in 0u32..1_000_000_000,
            offset_minutes in -1439i32..=1439,
        ) {
            let instant = OffsetDateTime::from_unix_timestamp(seconds).unwrap()
                .replace_nanosecond(nanos).unwrap()
                .to_offset(time::UtcOffset::from_whole_seconds(offset_minutes * 60).unwrap());
            let text = instant.format(&Rfc3339).unwrap();
            if instant.year() >= 0 {
                let parsed = parse(&text).unwrap();
                prop_assert_eq!(parsed.seconds, seconds);
                prop_assert_eq!(parsed.nanos, nanos);
            }
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,40}") {
            let _ = parse(&text);
        }
    }
}

//! Times in queries: absolute dates as ingest reads them, and Elasticsearch date math
//! relative to now (`now`, `now-15m`, `now-1d/d`).

/// Milliseconds per unit of date math. Months and years are calendar-free approximations
/// (30 and 365 days), which is what relative ranges in log searches need.
fn unit_ms(unit: &str) -> Option<i64> {
    Some(match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" | "H" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        "M" => 30 * 86_400_000,
        "y" => 365 * 86_400_000,
        _ => return None,
    })
}

/// Reads a time: date math from `now_ms` (`now`, `now-15m`, `now+1h-5m`, `now/d`), or an
/// absolute date (RFC 3339, a day, epoch milliseconds). The error says what is wrong.
pub fn parse_time(text: &str, now_ms: i64) -> Result<i64, String> {
    let text = text.trim();
    match text.strip_prefix("now") {
        Some(math) => date_math(math, now_ms).map_err(|problem| {
            format!("`{text}` is not valid date math ({problem}); examples: now, now-15m, now-1d/d")
        }),
        None => caravan_normalize::parse_timestamp(text)
            .map_err(|reason| format!("`{text}` is not a date: {reason}")),
    }
}

/// Parses a relative duration (`15m`, `1h`, `2d`) into milliseconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let number: i64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (examples: 30s, 15m, 1h, 7d)"))?;
    let unit = unit_ms(unit)
        .ok_or_else(|| format!("`{text}` has no known unit (ms, s, m, h, d, w, M, y)"))?;
    number
        .checked_mul(unit)
        .ok_or_else(|| format!("`{text}` is too long a duration"))
}

/// Histogram intervals a person reads easily, smallest first.
const NICE_INTERVALS_MS: [i64; 20] = [
    1,
    10,
    100,
    1_000,
    5_000,
    10_000,
    30_000,
    60_000,
    5 * 60_000,
    10 * 60_000,
    30 * 60_000,
    3_600_000,
    3 * 3_600_000,
    6 * 3_600_000,
    12 * 3_600_000,
    86_400_000,
    7 * 86_400_000,
    30 * 86_400_000,
    90 * 86_400_000,
    365 * 86_400_000,
];

/// The smallest easily read interval that cuts `span_ms` into at most `buckets` buckets
/// (Kibana's automatic interval).
pub fn auto_interval(span_ms: i64, buckets: u32) -> i64 {
    let buckets = i64::from(buckets.max(1));
    let wanted = (span_ms.max(1) + buckets - 1) / buckets;
    NICE_INTERVALS_MS
        .into_iter()
        .find(|interval| *interval >= wanted)
        .unwrap_or_else(|| (wanted + 86_399_999) / 86_400_000 * 86_400_000)
}

fn date_math(mut math: &str, now_ms: i64) -> Result<i64, String> {
    let mut at = now_ms;
    while !math.is_empty() {
        let sign = math.as_bytes()[0];
        let rest = &math[1..];
        match sign {
            b'+' | b'-' => {
                let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                if digits == 0 {
                    return Err(format!("expected a number after `{}`", sign as char));
                }
                let unit_len = unit_prefix_len(&rest[digits..]);
                let amount = parse_duration(&rest[..digits + unit_len])?;
                at = if sign == b'+' {
                    at.checked_add(amount)
                } else {
                    at.checked_sub(amount)
                }
                .ok_or("out of range")?;
                math = &rest[digits + unit_len..];
            }
            b'/' => {
                let unit_len = unit_prefix_len(rest);
                let unit = unit_ms(&rest[..unit_len])
                    .ok_or_else(|| format!("unknown rounding unit `{rest}`"))?;
                at = at.div_euclid(unit) * unit;
                math = &rest[unit_len..];
            }
            other => return Err(format!("unexpected `{}`", other as char)),
        }
    }
    Ok(at)
}

/// Length of the unit at the start of `text` (`ms` before `m`).
fn unit_prefix_len(text: &str) -> usize {
    if text.starts_with("ms") {
        2
    } else if text.chars().next().is_some_and(|c| "smhHdwMy".contains(c)) {
        1
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_341_600_123; // 2026-11-22T10:00:00.123Z

    #[test]
    fn date_math_from_now() {
        assert_eq!(parse_time("now", NOW), Ok(NOW));
        assert_eq!(parse_time("now-15m", NOW), Ok(NOW - 900_000));
        assert_eq!(parse_time("now+1h-30s", NOW), Ok(NOW + 3_600_000 - 30_000));
        assert_eq!(parse_time("now-500ms", NOW), Ok(NOW - 500));
        assert_eq!(parse_time("now/d", NOW), Ok(1_795_305_600_000));
        assert_eq!(
            parse_time("now-1d/d", NOW),
            Ok(1_795_305_600_000 - 86_400_000)
        );
    }

    #[test]
    fn absolute_dates() {
        assert_eq!(
            parse_time("2026-11-22T10:00:00Z", NOW),
            Ok(1_795_341_600_000)
        );
        assert_eq!(parse_time("2026-11-22", NOW), Ok(1_795_305_600_000));
        assert_eq!(parse_time("1795341600000", NOW), Ok(1_795_341_600_000));
    }

    #[test]
    fn automatic_intervals_are_round_and_bounded() {
        assert_eq!(auto_interval(3_600_000, 60), 60_000);
        assert_eq!(auto_interval(86_400_000, 50), 30 * 60_000);
        assert_eq!(auto_interval(15 * 60_000, 100), 10_000);
        assert_eq!(auto_interval(7 * 86_400_000, 50), 6 * 3_600_000);
        assert_eq!(auto_interval(0, 50), 1);
        for (span, buckets) in [(123_456_789, 37), (999, 1), (86_400_000 * 3, 200)] {
            assert!(span / auto_interval(span, buckets) <= i64::from(buckets));
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let error = parse_time("now-15x", NOW).unwrap_err();
        assert!(
            error.contains("now-15x") && error.contains("unit"),
            "{error}"
        );
        let error = parse_time("now-", NOW).unwrap_err();
        assert!(error.contains("expected a number"), "{error}");
        let error = parse_time("yesterday", NOW).unwrap_err();
        assert!(error.contains("not a date"), "{error}");
        assert!(parse_duration("15").is_err());
        assert_eq!(parse_duration("15m"), Ok(900_000));
    }
}

//! Coercing one JSON value to a key's type, losslessly or not at all (the crate docs list the
//! rules). A refusal carries the reason stored in the `_ignored` record.

use caravan_schema::{FieldDef, FieldType};
use serde_json::{Number, Value};

use crate::raw::Raw;
use crate::timestamp::{self, Instant};
use crate::{IgnoredKind, TypedValue};

/// 2^53: every integer up to this magnitude is exact as a double, none above all are.
const EXACT_INTEGER_MAX: u64 = 1 << 53;

/// A value that fits its key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Coerced {
    /// What the stored document holds.
    pub(crate) stored: Value,
    /// What to index: `None` for null and for binary values.
    pub(crate) typed: Option<TypedValue>,
    /// Whether `stored` differs from the value as sent (type or text).
    pub(crate) changed: bool,
}

/// A value that does not fit its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejected {
    pub(crate) kind: IgnoredKind,
    pub(crate) reason: String,
}

/// Coerces `raw` to the type of `def`, which must be a value type (not object, map or
/// struct). Null is kept as null and not indexed, whatever the type.
pub(crate) fn coerce(raw: &Raw<'_>, def: &FieldDef) -> Result<Coerced, Rejected> {
    let field_type = def.field_type;
    match raw {
        Raw::Null => return Ok(kept(Value::Null, None)),
        Raw::Array(_) => return Err(malformed(field_type, "an array inside an array")),
        Raw::Object(_) => return Err(malformed(field_type, "an object")),
        Raw::Bool(_) | Raw::Number(_) | Raw::String(_) => {}
    }
    match field_type {
        FieldType::Keyword | FieldType::Text => string(raw, def),
        FieldType::Long => long(raw),
        FieldType::Double => double(raw),
        FieldType::Boolean => boolean(raw),
        FieldType::Date => date(raw).map(|(_, coerced)| coerced),
        FieldType::Binary => binary(raw),
        FieldType::Object | FieldType::Map | FieldType::Struct => {
            Err(malformed(field_type, raw.kind()))
        }
    }
}

/// Coerces `raw` to a date: the instant and the stored form. Unlike [`coerce`], null is
/// refused: `@timestamp` needs an instant.
pub(crate) fn date(raw: &Raw<'_>) -> Result<(Instant, Coerced), Rejected> {
    let (instant, sent) = match raw {
        Raw::String(text) => {
            let instant = timestamp::parse(text).map_err(|reason| {
                malformed(FieldType::Date, format!("a string that is {reason}"))
            })?;
            (instant, Some(text.as_ref()))
        }
        Raw::Number(number) => {
            let millis = exact_integer(number).map_err(|problem| {
                malformed(FieldType::Date, format!("{problem} as epoch milliseconds"))
            })?;
            let instant = Instant::from_millis(millis).ok_or_else(|| {
                malformed(
                    FieldType::Date,
                    format!("epoch milliseconds for {}", timestamp::OUT_OF_RANGE),
                )
            })?;
            (instant, None)
        }
        other => return Err(malformed(FieldType::Date, other.kind())),
    };
    let text = instant.format();
    let changed = sent != Some(text.as_str());
    let coerced = Coerced {
        stored: Value::String(text),
        typed: Some(TypedValue::Date(instant.millis())),
        changed,
    };
    Ok((instant, coerced))
}

fn string(raw: &Raw<'_>, def: &FieldDef) -> Result<Coerced, Rejected> {
    let (text, changed) = match raw {
        Raw::String(text) => (text.clone().into_owned(), false),
        Raw::Number(number) => (number.to_string(), true),
        Raw::Bool(value) => (value.to_string(), true),
        other => return Err(malformed(def.field_type, other.kind())),
    };
    let (text, changed) = match enum_value(def, &text)? {
        Some(declared) => (declared.to_owned(), true),
        None => (text, changed),
    };
    let typed = if def.field_type == FieldType::Text {
        TypedValue::Text(text.clone())
    } else {
        TypedValue::Keyword(text.clone())
    };
    Ok(Coerced {
        stored: Value::String(text),
        typed: Some(typed),
        changed,
    })
}

/// For an enum key: `Ok(None)` if `text` is a declared value as written, `Ok(Some(declared))`
/// if it matches one ignoring ASCII case, an error listing the values otherwise. Always
/// `Ok(None)` for other keys.
fn enum_value<'d>(def: &'d FieldDef, text: &str) -> Result<Option<&'d str>, Rejected> {
    if def.enum_values.is_empty() || def.enum_values.iter().any(|value| value == text) {
        return Ok(None);
    }
    match def
        .enum_values
        .iter()
        .find(|value| value.eq_ignore_ascii_case(text))
    {
        Some(declared) => Ok(Some(declared)),
        None => Err(Rejected {
            kind: IgnoredKind::NotAllowed,
            reason: format!("expected one of {} (any case)", def.enum_values.join(", ")),
        }),
    }
}

fn long(raw: &Raw<'_>) -> Result<Coerced, Rejected> {
    match raw {
        Raw::Number(number) => {
            if let Some(value) = number.as_i64() {
                return Ok(kept(
                    Value::Number(number.clone()),
                    Some(TypedValue::Long(value)),
                ));
            }
            if number.is_u64() {
                return Err(malformed(
                    FieldType::Long,
                    "a number above 9223372036854775807",
                ));
            }
            let value =
                exact_integer(number).map_err(|problem| malformed(FieldType::Long, problem))?;
            Ok(changed(
                Value::Number(value.into()),
                TypedValue::Long(value),
            ))
        }
        Raw::String(text) => match text.parse::<i64>() {
            Ok(value) => Ok(changed(
                Value::Number(value.into()),
                TypedValue::Long(value),
            )),
            Err(_) if is_integer_text(text) => Err(malformed(
                FieldType::Long,
                "a string of an integer out of the long range",
            )),
            Err(_) => Err(malformed(
                FieldType::Long,
                "a string that is not an integer",
            )),
        },
        other => Err(malformed(FieldType::Long, other.kind())),
    }
}

fn double(raw: &Raw<'_>) -> Result<Coerced, Rejected> {
    match raw {
        Raw::Number(number) => {
            if number.is_f64() {
                // Finite: serde_json refuses anything else.
                let value = number.as_f64().unwrap_or_default();
                return Ok(kept(
                    Value::Number(number.clone()),
                    Some(TypedValue::Double(value)),
                ));
            }
            let value = exact_double(number).ok_or_else(|| {
                malformed(
                    FieldType::Double,
                    "an integer beyond ±2^53, which a double cannot hold exactly",
                )
            })?;
            Ok(kept(
                Value::Number(number.clone()),
                Some(TypedValue::Double(value)),
            ))
        }
        Raw::String(text) => {
            if is_integer_text(text) {
                let exact = text
                    .parse::<i64>()
                    .ok()
                    .filter(|value| value.unsigned_abs() <= EXACT_INTEGER_MAX);
                let Some(value) = exact else {
                    return Err(malformed(
                        FieldType::Double,
                        "a string of an integer beyond ±2^53, which a double cannot hold exactly",
                    ));
                };
                let value = value as f64;
                return Ok(changed(Value::from(value), TypedValue::Double(value)));
            }
            let number = text
                .parse::<f64>()
                .ok()
                .filter(|value| value.is_finite())
                .and_then(Number::from_f64)
                .ok_or_else(|| malformed(FieldType::Double, "a string that is not a number"))?;
            let value = number.as_f64().unwrap_or_default();
            Ok(changed(Value::Number(number), TypedValue::Double(value)))
        }
        other => Err(malformed(FieldType::Double, other.kind())),
    }
}

fn boolean(raw: &Raw<'_>) -> Result<Coerced, Rejected> {
    match raw {
        Raw::Bool(value) => Ok(kept(Value::Bool(*value), Some(TypedValue::Boolean(*value)))),
        Raw::String(text) if text == "true" || text == "false" => {
            let value = text == "true";
            Ok(changed(Value::Bool(value), TypedValue::Boolean(value)))
        }
        Raw::String(_) => Err(malformed(
            FieldType::Boolean,
            "a string other than \"true\" or \"false\"",
        )),
        other => Err(malformed(FieldType::Boolean, other.kind())),
    }
}

fn binary(raw: &Raw<'_>) -> Result<Coerced, Rejected> {
    match raw {
        Raw::String(text) if is_base64(text) => {
            Ok(kept(Value::String(text.clone().into_owned()), None))
        }
        Raw::String(_) => Err(malformed(FieldType::Binary, "a string that is not base64")),
        other => Err(malformed(FieldType::Binary, other.kind())),
    }
}

fn kept(stored: Value, typed: Option<TypedValue>) -> Coerced {
    Coerced {
        stored,
        typed,
        changed: false,
    }
}

fn changed(stored: Value, typed: TypedValue) -> Coerced {
    Coerced {
        stored,
        typed: Some(typed),
        changed: true,
    }
}

fn malformed(expected: FieldType, got: impl std::fmt::Display) -> Rejected {
    Rejected {
        kind: IgnoredKind::Malformed,
        reason: format!("expected {expected}, got {got}"),
    }
}

/// A JSON number as an exact `i64`: integers in range, and decimals with no fraction within
/// ±2^53 (beyond, the decimal text may already have been rounded by the parser).
fn exact_integer(number: &Number) -> Result<i64, &'static str> {
    if let Some(value) = number.as_i64() {
        return Ok(value);
    }
    if number.is_u64() {
        return Err("a number above 9223372036854775807");
    }
    let value = number.as_f64().unwrap_or(f64::NAN);
    if value.fract() != 0.0 {
        return Err("a number with a fraction");
    }
    if value.abs() > EXACT_INTEGER_MAX as f64 {
        return Err("a decimal number beyond ±2^53, which may not be exact");
    }
    Ok(value as i64)
}

/// An integer JSON number as an exact `f64`, if within ±2^53.
fn exact_double(number: &Number) -> Option<f64> {
    if let Some(value) = number.as_i64() {
        return (value.unsigned_abs() <= EXACT_INTEGER_MAX).then_some(value as f64);
    }
    number
        .as_u64()
        .filter(|&value| value <= EXACT_INTEGER_MAX)
        .map(|value| value as f64)
}

/// An optional sign and one or more ASCII digits.
fn is_integer_text(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit())
}

/// Standard or URL-safe base64 (the alphabets proto3 JSON accepts), padded or not.
fn is_base64(text: &str) -> bool {
    let data = text.trim_end_matches('=');
    let padding = text.len() - data.len();
    let alphabet =
        |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'-' | b'_');
    data.bytes().all(alphabet)
        && data.len() % 4 != 1
        && (padding == 0 || (padding <= 2 && text.len().is_multiple_of(4)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn def(field_type: FieldType) -> FieldDef {
        FieldDef {
            key: "k".to_owned(),
            field_type,
            aliases: Vec::new(),
            repeated: false,
            indexed: true,
            default_field: false,
            ignore_above: None,
            enum_values: Vec::new(),
            map_value: None,
        }
    }

    fn raw(value: &Value) -> Raw<'_> {
        match value {
            Value::Null => Raw::Null,
            Value::Bool(value) => Raw::Bool(*value),
            Value::Number(number) => Raw::Number(number.clone()),
            Value::String(text) => Raw::String(text.as_str().into()),
            Value::Array(items) => Raw::Array(items.iter().map(raw).collect()),
            Value::Object(map) => Raw::Object(
                map.iter()
                    .map(|(name, value)| (name.as_str().into(), raw(value)))
                    .collect(),
            ),
        }
    }

    /// Coerces `value` and returns (stored, typed, changed) or the reason.
    fn check(def: &FieldDef, value: Value) -> Result<(Value, Option<TypedValue>, bool), String> {
        coerce(&raw(&value), def)
            .map(|c| (c.stored, c.typed, c.changed))
            .map_err(|r| r.reason)
    }

    #[test]
    fn long_takes_integers_integer_strings_and_whole_decimals() {
        let long = def(FieldType::Long);
        assert_eq!(
            check(&long, json!(123)),
            Ok((json!(123), Some(TypedValue::Long(123)), false))
        );
        assert_eq!(
            check(&long, json!("123")),
            Ok((json!(123), Some(TypedValue::Long(123)), true))
        );
        assert_eq!(
            check(&long, json!("-5")),
            Ok((json!(-5), Some(TypedValue::Long(-5)), true))
        );
        assert_eq!(
            check(&long, json!(12.0)),
            Ok((json!(12), Some(TypedValue::Long(12)), true))
        );
        assert_eq!(
            check(&long, json!(i64::MIN)),
            Ok((json!(i64::MIN), Some(TypedValue::Long(i64::MIN)), false))
        );
        for (value, reason) in [
            (
                json!("1.5"),
                "expected long, got a string that is not an integer",
            ),
            (
                json!("12abc"),
                "expected long, got a string that is not an integer",
            ),
            (
                json!(" 12"),
                "expected long, got a string that is not an integer",
            ),
            (
                json!(""),
                "expected long, got a string that is not an integer",
            ),
            (
                json!("9223372036854775808"),
                "expected long, got a string of an integer out of the long range",
            ),
            (json!(1.5), "expected long, got a number with a fraction"),
            (
                json!(1e300),
                "expected long, got a decimal number beyond ±2^53, which may not be exact",
            ),
            (
                json!(u64::MAX),
                "expected long, got a number above 9223372036854775807",
            ),
            (json!(true), "expected long, got a boolean"),
            (json!({"a": 1}), "expected long, got an object"),
            (json!([1]), "expected long, got an array inside an array"),
        ] {
            assert_eq!(
                check(&long, value.clone()),
                Err(reason.to_owned()),
                "{value}"
            );
        }
    }

    #[test]
    fn double_takes_any_exact_number_and_numeric_strings() {
        let double = def(FieldType::Double);
        assert_eq!(
            check(&double, json!(1.5)),
            Ok((json!(1.5), Some(TypedValue::Double(1.5)), false))
        );
        // Integers stay as sent: the stored text does not change.
        assert_eq!(
            check(&double, json!(5)),
            Ok((json!(5), Some(TypedValue::Double(5.0)), false))
        );
        assert_eq!(
            check(&double, json!("1.50")),
            Ok((json!(1.5), Some(TypedValue::Double(1.5)), true))
        );
        assert_eq!(
            check(&double, json!("-2e3")),
            Ok((json!(-2000.0), Some(TypedValue::Double(-2000.0)), true))
        );
        assert_eq!(
            check(&double, json!("7")),
            Ok((json!(7.0), Some(TypedValue::Double(7.0)), true))
        );
        for (value, reason) in [
            (
                json!("NaN"),
                "expected double, got a string that is not a number",
            ),
            (
                json!("inf"),
                "expected double, got a string that is not a number",
            ),
            (
                json!("1e400"),
                "expected double, got a string that is not a number",
            ),
            (
                json!("abc"),
                "expected double, got a string that is not a number",
            ),
            (
                json!(9_007_199_254_740_993_i64),
                "expected double, got an integer beyond ±2^53, which a double cannot hold exactly",
            ),
            (
                json!("9007199254740993"),
                "expected double, got a string of an integer beyond ±2^53, which a double cannot hold exactly",
            ),
            (json!(false), "expected double, got a boolean"),
        ] {
            assert_eq!(
                check(&double, value.clone()),
                Err(reason.to_owned()),
                "{value}"
            );
        }
    }

    #[test]
    fn keyword_and_text_take_strings_numbers_and_booleans_as_text() {
        let keyword = def(FieldType::Keyword);
        let kw = |s: &str| Some(TypedValue::Keyword(s.to_owned()));
        assert_eq!(
            check(&keyword, json!("abc")),
            Ok((json!("abc"), kw("abc"), false))
        );
        assert_eq!(
            check(&keyword, json!(123)),
            Ok((json!("123"), kw("123"), true))
        );
        assert_eq!(
            check(&keyword, json!(-1.5)),
            Ok((json!("-1.5"), kw("-1.5"), true))
        );
        assert_eq!(
            check(&keyword, json!(12.0)),
            Ok((json!("12.0"), kw("12.0"), true))
        );
        assert_eq!(
            check(&keyword, json!(true)),
            Ok((json!("true"), kw("true"), true))
        );
        assert_eq!(check(&keyword, json!(null)), Ok((json!(null), None, false)));
        assert_eq!(
            check(&keyword, json!({})),
            Err("expected keyword, got an object".to_owned())
        );
        let text = def(FieldType::Text);
        assert_eq!(
            check(&text, json!(42)),
            Ok((json!("42"), Some(TypedValue::Text("42".to_owned())), true))
        );
    }

    #[test]
    fn enums_take_declared_values_in_any_case() {
        let level = FieldDef {
            enum_values: vec!["INFO".to_owned(), "ERROR".to_owned()],
            ..def(FieldType::Keyword)
        };
        let kw = |s: &str| Some(TypedValue::Keyword(s.to_owned()));
        assert_eq!(
            check(&level, json!("ERROR")),
            Ok((json!("ERROR"), kw("ERROR"), false))
        );
        assert_eq!(
            check(&level, json!("error")),
            Ok((json!("ERROR"), kw("ERROR"), true))
        );
        assert_eq!(
            check(&level, json!("Info")),
            Ok((json!("INFO"), kw("INFO"), true))
        );
        let rejected = coerce(&Raw::String("verbose".into()), &level).unwrap_err();
        assert_eq!(rejected.kind, IgnoredKind::NotAllowed);
        assert_eq!(rejected.reason, "expected one of INFO, ERROR (any case)");
        assert_eq!(
            check(&level, json!(3)),
            Err("expected one of INFO, ERROR (any case)".to_owned())
        );
    }

    #[test]
    fn boolean_takes_true_false_and_their_strings_only() {
        let boolean = def(FieldType::Boolean);
        let b = |v| Some(TypedValue::Boolean(v));
        assert_eq!(
            check(&boolean, json!(true)),
            Ok((json!(true), b(true), false))
        );
        assert_eq!(
            check(&boolean, json!("false")),
            Ok((json!(false), b(false), true))
        );
        for value in [
            json!("1"),
            json!("0"),
            json!("TRUE"),
            json!("yes"),
            json!(""),
        ] {
            assert_eq!(
                check(&boolean, value),
                Err("expected boolean, got a string other than \"true\" or \"false\"".to_owned())
            );
        }
        assert_eq!(
            check(&boolean, json!(1)),
            Err("expected boolean, got a number".to_owned())
        );
    }

    #[test]
    fn date_takes_rfc_3339_and_epoch_millis_and_stores_one_form() {
        let date = def(FieldType::Date);
        let d = |ms| Some(TypedValue::Date(ms));
        let stored = json!("2026-11-22T10:00:00.123Z");
        assert_eq!(
            check(&date, stored.clone()),
            Ok((stored.clone(), d(1_795_341_600_123), false))
        );
        assert_eq!(
            check(&date, json!("2026-11-22T11:00:00.123+01:00")),
            Ok((stored.clone(), d(1_795_341_600_123), true))
        );
        assert_eq!(
            check(&date, json!(1_795_341_600_123_i64)),
            Ok((stored.clone(), d(1_795_341_600_123), true))
        );
        assert_eq!(
            check(&date, json!("1795341600123")),
            Ok((stored.clone(), d(1_795_341_600_123), true))
        );
        assert_eq!(
            check(&date, json!(1_795_341_600_123.0)),
            Ok((stored, d(1_795_341_600_123), true))
        );
        for (value, reason) in [
            (
                json!("tomorrow"),
                "expected date, got a string that is not an RFC 3339 date (like 2026-11-22T10:00:00.123Z) nor epoch milliseconds",
            ),
            (
                json!(1.5),
                "expected date, got a number with a fraction as epoch milliseconds",
            ),
            (
                json!(i64::MAX),
                "expected date, got epoch milliseconds for a date outside the years 0000 to 9999",
            ),
            (json!(true), "expected date, got a boolean"),
        ] {
            assert_eq!(
                check(&date, value.clone()),
                Err(reason.to_owned()),
                "{value}"
            );
        }
        assert!(date_null_is_refused());
    }

    fn date_null_is_refused() -> bool {
        super::date(&Raw::Null).is_err()
    }

    #[test]
    fn binary_takes_base64_and_is_never_indexed() {
        let binary = def(FieldType::Binary);
        for text in ["", "aGk=", "aGk", "aGVsbG8=", "-_-_", "ab+/"] {
            assert_eq!(
                check(&binary, json!(text)),
                Ok((json!(text), None, false)),
                "{text}"
            );
        }
        for text in ["a", "aGk==", "a===", "not base64!", "aG=k"] {
            assert_eq!(
                check(&binary, json!(text)),
                Err("expected binary, got a string that is not base64".to_owned()),
                "{text}"
            );
        }
    }
}

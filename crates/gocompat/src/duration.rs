//! Durations as Go's `time` package reads and writes them.
//!
//! BuildKit reads `HEALTHCHECK --interval` (and its siblings) with `time.ParseDuration`, and
//! buildx reads `prune --filter until=…` and `--keep-duration` the same way; the image history
//! of a HEALTHCHECK shows durations as `Duration.String` prints them. [`parse`] and [`format()`]
//! are those two, exactly: the grammar is `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` (or `0` alone), with
//! the units `ns`, `us` (or `µs`, U+00B5, or `μs`, U+03BC), `ms`, `s`, `m` and `h`. There is no
//! day unit (`1d` is refused, as by buildx), and values are nanoseconds in an `i64`, so the
//! largest duration is 2562047h47m16.854775807s.
//!
//! Callers decide what a sign means for them: a prune filter refuses negative durations, a
//! HEALTHCHECK flag refuses anything below a millisecond except 0.

/// A text that is not a Go duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {text:?}: {problem}")]
pub struct DurationError {
    /// The text as given.
    pub text: String,
    /// What is wrong with it.
    pub problem: Problem,
}

/// What makes a text no duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// Not numbers followed by units.
    #[error("expected numbers with units, such as 300ms, 1.5h or 2h45m")]
    Syntax,
    /// A number without a unit (`24`; only `0` may stand alone).
    #[error("missing unit (ns, us, ms, s, m or h)")]
    MissingUnit,
    /// A unit Go does not know (`d`, `w`, `sec`).
    #[error("unknown unit {0:?} (valid units are ns, us, µs, ms, s, m and h)")]
    UnknownUnit(String),
    /// More than Go's `Duration` (an `i64` of nanoseconds) holds.
    #[error("out of range (at most 2562047h47m16.854775807s either way)")]
    Overflow,
}

/// Nanoseconds in each unit Go accepts.
const UNITS: [(&str, u64); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// 2^63: the magnitude of `i64::MIN`, one more than the largest positive duration.
const LIMIT: u64 = 1 << 63;

/// Parses a duration as Go's `time.ParseDuration` does, returning nanoseconds.
///
/// Fractions are allowed on every number (`1.5h`, `.5s`, `5.s`), digits beyond what 63 bits hold
/// are ignored, and a fraction is scaled in floating point as Go does, so that
/// `0.3333333333333333333h` is exactly 20 minutes. No whitespace is allowed anywhere.
pub fn parse(text: &str) -> Result<i64, DurationError> {
    let fail = |problem| DurationError {
        text: text.to_owned(),
        problem,
    };
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(fail(Problem::Syntax));
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let (nanos, after) = component(rest).map_err(fail)?;
        total = total
            .checked_add(nanos)
            .filter(|&t| t <= LIMIT)
            .ok_or_else(|| fail(Problem::Overflow))?;
        rest = after;
    }
    match (negative, total) {
        (true, LIMIT) => Ok(i64::MIN),
        // Below the limit, so the conversion cannot fail.
        (true, t) => Ok(-i64::try_from(t).unwrap_or(i64::MAX)),
        (false, t) => i64::try_from(t).map_err(|_| fail(Problem::Overflow)),
    }
}

/// Reads one `number unit` component from the start of `text`: its nanoseconds (at most 2^63)
/// and the rest of the text.
fn component(text: &str) -> Result<(u64, &str), Problem> {
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let whole_len = digits(text);
    let whole = leading_int(&text[..whole_len])?;
    let mut rest = &text[whole_len..];
    let mut fraction = (0u64, 1f64, false);
    if let Some(after_dot) = rest.strip_prefix('.') {
        let len = digits(after_dot);
        fraction = leading_fraction(&after_dot[..len]);
        rest = &after_dot[len..];
    }
    if whole_len == 0 && !fraction.2 {
        // No digits at all: `.s`, `-.`, or a unit alone.
        return Err(Problem::Syntax);
    }
    let unit_len = rest
        .find(|c: char| c == '.' || c.is_ascii_digit())
        .unwrap_or(rest.len());
    if unit_len == 0 {
        return Err(Problem::MissingUnit);
    }
    let unit = &rest[..unit_len];
    let scale = UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|&(_, scale)| scale)
        .ok_or_else(|| Problem::UnknownUnit(unit.to_owned()))?;
    if whole > LIMIT / scale {
        return Err(Problem::Overflow);
    }
    let mut nanos = whole * scale;
    let (value, divisor, _) = fraction;
    if value > 0 {
        // Go computes this in float64, which is what makes 0.333…h exactly 20 minutes; the
        // product is at most one hour of nanoseconds, well within f64's exact range.
        nanos += (value as f64 * (scale as f64 / divisor)) as u64;
        if nanos > LIMIT {
            return Err(Problem::Overflow);
        }
    }
    Ok((nanos, &rest[unit_len..]))
}

/// The value of a run of decimal digits, refusing more than 2^63.
fn leading_int(digits: &str) -> Result<u64, Problem> {
    let mut value: u64 = 0;
    for d in digits.bytes() {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .filter(|&v| v <= LIMIT)
            .ok_or(Problem::Overflow)?;
    }
    Ok(value)
}

/// The digits after a decimal point as (value, 10^digits used, any digits at all). Digits that
/// no longer fit are ignored rather than refused, as Go ignores them.
fn leading_fraction(digits: &str) -> (u64, f64, bool) {
    let (mut value, mut divisor) = (0u64, 1f64);
    for d in digits.bytes() {
        match value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
        {
            Some(next) if next <= LIMIT && value <= (LIMIT - 1) / 10 => {
                value = next;
                divisor *= 10.0;
            }
            _ => break,
        }
    }
    (value, divisor, !digits.is_empty())
}

/// Formats nanoseconds as Go's `Duration.String` does: `0s`, `1.5µs`, `300ms`, `1.5s`,
/// `2h45m0s`, with `-` for negative durations. Below a second the largest unit that keeps the
/// whole part non-zero is used; from a second on, hours and minutes lead once they are non-zero.
pub fn format(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n == 0 {
        return "0s".to_owned();
    }
    if n < 1_000 {
        return format!("{sign}{n}ns");
    }
    if n < 1_000_000 {
        return format!("{sign}{}µs", decimal(n, 3));
    }
    if n < 1_000_000_000 {
        return format!("{sign}{}ms", decimal(n, 6));
    }
    let seconds = decimal(n % 60_000_000_000, 9);
    let minutes = n / 60_000_000_000 % 60;
    let hours = n / 3_600_000_000_000;
    match (hours, minutes) {
        (0, 0) => format!("{sign}{seconds}s"),
        (0, m) => format!("{sign}{m}m{seconds}s"),
        (h, m) => format!("{sign}{h}h{m}m{seconds}s"),
    }
}

/// `value / 10^places` in decimal, without trailing zeros in the fraction (or a bare dot).
fn decimal(value: u64, places: u32) -> String {
    let unit = 10u64.pow(places);
    let (whole, fraction) = (value / unit, value % unit);
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:0width$}", width = places as usize);
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: i64 = 1;
    const US: i64 = 1_000;
    const MS: i64 = 1_000_000;
    const S: i64 = 1_000_000_000;
    const M: i64 = 60 * S;
    const H: i64 = 60 * M;

    #[test]
    fn parses_go_examples() {
        // The cases of Go's time package tests (parseDurationTests) and its documentation.
        let cases: &[(&str, i64)] = &[
            ("0", 0),
            ("5s", 5 * S),
            ("30s", 30 * S),
            ("1478s", 1478 * S),
            ("-5s", -5 * S),
            ("+5s", 5 * S),
            ("-0", 0),
            ("+0", 0),
            ("5.0s", 5 * S),
            ("5.6s", 5 * S + 600 * MS),
            ("5.s", 5 * S),
            (".5s", 500 * MS),
            ("1.0s", S),
            ("1.00s", S),
            ("1.004s", S + 4 * MS),
            ("1.0040s", S + 4 * MS),
            ("100.00100s", 100 * S + MS),
            ("10ns", 10 * NS),
            ("11us", 11 * US),
            ("12µs", 12 * US),
            ("12μs", 12 * US),
            ("13ms", 13 * MS),
            ("14s", 14 * S),
            ("15m", 15 * M),
            ("16h", 16 * H),
            ("3h30m", 3 * H + 30 * M),
            ("10.5s4m", 4 * M + 10 * S + 500 * MS),
            ("-2m3.4s", -(2 * M + 3 * S + 400 * MS)),
            ("1h2m3s4ms5us6ns", H + 2 * M + 3 * S + 4 * MS + 5 * US + 6 * NS),
            ("39h9m14.425s", 39 * H + 9 * M + 14 * S + 425 * MS),
            ("52763797000ns", 52_763_797_000),
            ("0.3333333333333333333h", 20 * M),
            ("9007199254740993ns", (1 << 53) + 1),
            ("9223372036854775807ns", i64::MAX),
            ("9223372036854775.807us", i64::MAX),
            ("9223372036s854ms775us807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("-9223372036854775.808us", i64::MIN),
            ("-9223372036s854ms775us808ns", i64::MIN),
            ("-2562047h47m16.854775808s", i64::MIN),
            ("0.100000000000000000000h", 6 * M),
            ("0.830103483285477580700h", 49 * M + 48 * S + 372_539_827),
            ("10h", 10 * H),
            ("1h10m10s", H + 10 * M + 10 * S),
            ("1µs", US),
            ("1us", US),
            ("24h", 24 * H),
            ("1.5h", 90 * M),
        ];
        for &(text, want) in cases {
            assert_eq!(parse(text), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn refuses_what_go_refuses() {
        let cases: &[(&str, Problem)] = &[
            ("", Problem::Syntax),
            ("3", Problem::MissingUnit),
            ("24", Problem::MissingUnit),
            ("-", Problem::Syntax),
            ("s", Problem::Syntax),
            (".", Problem::Syntax),
            ("-.", Problem::Syntax),
            (".s", Problem::Syntax),
            ("+.s", Problem::Syntax),
            ("1d", Problem::UnknownUnit("d".into())),
            ("1h-5m", Problem::UnknownUnit("h-".into())),
            ("1.2.3s", Problem::MissingUnit),
            ("5 s", Problem::UnknownUnit(" s".into())),
            (" 5s", Problem::Syntax),
            ("\u{FFFD}", Problem::Syntax),
            ("9223372036854775810ns", Problem::Overflow),
            ("9223372036854775808ns", Problem::Overflow),
            ("-9223372036854775809ns", Problem::Overflow),
            ("9223372036854776us", Problem::Overflow),
            ("3000000h", Problem::Overflow),
            ("9223372036854775.808us", Problem::Overflow),
            ("9223372036854ms775us808ns", Problem::Overflow),
        ];
        for (text, problem) in cases {
            let err = parse(text).expect_err(text);
            assert_eq!(&err.problem, problem, "{text:?}");
            assert_eq!(err.text, *text);
        }
        assert_eq!(
            parse("1d").unwrap_err().to_string(),
            "invalid duration \"1d\": unknown unit \"d\" (valid units are ns, us, µs, ms, s, m and h)"
        );
    }

    #[test]
    fn formats_like_go() {
        // Go's durationTests (Duration.String) and the documentation's examples.
        let cases: &[(i64, &str)] = &[
            (0, "0s"),
            (NS, "1ns"),
            (1100 * NS, "1.1µs"),
            (2200 * US, "2.2ms"),
            (3300 * MS, "3.3s"),
            (4 * M + 5 * S, "4m5s"),
            (4 * M + 5001 * MS, "4m5.001s"),
            (5 * H + 6 * M + 7001 * MS, "5h6m7.001s"),
            (8 * M + NS, "8m0.000000001s"),
            (i64::MAX, "2562047h47m16.854775807s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
            (10 * H, "10h0m0s"),
            (H + 10 * M + 10 * S, "1h10m10s"),
            (US, "1µs"),
            (-1500 * MS, "-1.5s"),
            (90 * S, "1m30s"),
            (500 * MS, "500ms"),
            (999_999_999, "999.999999ms"),
        ];
        for &(nanos, want) in cases {
            assert_eq!(format(nanos), want, "{nanos}");
        }
    }

    #[test]
    fn formatted_durations_parse_back() {
        for nanos in [
            0,
            1,
            999,
            1_500,
            2_200_000,
            3 * S,
            61 * S,
            25 * H + 1,
            i64::MAX,
            i64::MIN,
        ] {
            assert_eq!(parse(&format(nanos)), Ok(nanos), "{nanos}");
        }
    }
}

//! RFC 3339 formatting of Unix times, as image configs spell them.

/// Latest time with a four-digit year: 9999-12-31T23:59:59Z.
const MAX_SECS: i64 = 253_402_300_799;

/// Formats Unix seconds as RFC 3339 in UTC with whole seconds: `2026-11-28T00:39:13Z`.
///
/// Times outside the years 1970 to 9999 are clamped to that range, because RFC 3339 has no
/// spelling for years beyond four digits and image tools reject times before the epoch.
pub fn rfc3339(secs: i64) -> String {
    let secs = secs.clamp(0, MAX_SECS);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (for non-negative counts).
///
/// Works in 400-year eras starting on March 1st, so the leap day is the last day of a year and
/// the month lengths from March on follow a simple pattern (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn formats_known_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(86_399), "1970-01-01T23:59:59Z");
        // Leap days: 2024-02-29 and the century leap year 2000.
        assert_eq!(rfc3339(1_709_164_800), "2024-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(rfc3339(1_709_251_200), "2024-03-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(978_220_800), "2000-12-31T00:00:00Z");
        assert_eq!(rfc3339(1_798_675_200), "2026-12-31T00:00:00Z");
    }

    #[test]
    fn clamps_out_of_range_times() {
        assert_eq!(rfc3339(-1), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(i64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(253_402_300_799), "9999-12-31T23:59:59Z");
    }
}

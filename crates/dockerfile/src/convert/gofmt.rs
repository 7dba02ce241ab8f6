//! Go's formatting of the values BuildKit writes into history entries (`%q` of strings,
//! slices, runes and its health-check struct, `time.Duration.String()`), so kiln's history
//! reads the same.

use oci::HealthConfig;

use crate::parser;

/// Go's `%q` of a string slice: `["a" "b"]`.
pub(super) fn go_quote_list(list: &[String]) -> String {
    let quoted: Vec<String> = list.iter().map(|s| parser::go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// Go's `%q` of BuildKit's health check struct, as it appears in history:
/// `&{["CMD-SHELL" "x"] "30s" "5s" "0s" "0s" '\x03'}`.
pub(super) fn go_health(h: &HealthConfig) -> String {
    let retries = u32::try_from(h.retries)
        .ok()
        .and_then(char::from_u32)
        .unwrap_or('\0');
    format!(
        "&{{{} {} {} {} {} {}}}",
        go_quote_list(h.test.as_deref().unwrap_or(&[])),
        parser::go_quote(&gocompat::duration::format(h.interval)),
        parser::go_quote(&gocompat::duration::format(h.timeout)),
        parser::go_quote(&gocompat::duration::format(h.start_period)),
        parser::go_quote(&gocompat::duration::format(h.start_interval)),
        go_rune(retries),
    )
}

/// Go's `%q` of a rune.
fn go_rune(c: char) -> String {
    let inner = parser::go_quote(&c.to_string());
    let inner = &inner[1..inner.len() - 1];
    let inner = if inner == "\\\"" {
        "\""
    } else if inner == "'" {
        "\\'"
    } else {
        inner
    };
    format!("'{inner}'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_formatting() {
        assert_eq!(go_rune('\u{3}'), r"'\x03'");
        let h = HealthConfig {
            test: Some(vec!["CMD-SHELL".into(), "true".into()]),
            interval: 5_000_000_000,
            timeout: 3_000_000_000,
            retries: 3,
            ..HealthConfig::default()
        };
        assert_eq!(
            go_health(&h),
            r#"&{["CMD-SHELL" "true"] "5s" "3s" "0s" "0s" '\x03'}"#
        );
    }
}

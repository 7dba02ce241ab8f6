//! Sizes as Docker's tools write them (go-units), for flags and Dockerfile options that BuildKit
//! reads with the same library, so that kiln accepts exactly what they accept.

/// Parses a size as Docker does for `--keep-storage`, `--shm-size` and tmpfs sizes (go-units'
/// `RAMInBytes`): plain bytes,
/// or a number (fractions allowed) with a unit `k`, `m`, `g`, `t` or `p`, optionally followed by
/// `i` and/or `b`, in any case. Every unit is binary: `2GB` = `2GiB` = 2 × 1024³ bytes.
pub fn ram_in_bytes(text: &str) -> Option<u64> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let mut chars = unit.chars();
    let shift = match chars.next() {
        None | Some('b') if unit.len() <= 1 => 0,
        Some('k') => 10,
        Some('m') => 20,
        Some('g') => 30,
        Some('t') => 40,
        Some('p') => 50,
        _ => return None,
    };
    if shift > 0 && !matches!(chars.as_str(), "" | "i" | "b" | "ib") {
        return None;
    }
    if number.is_empty()
        || number.starts_with('.')
        || number.ends_with('.')
        || number.matches('.').count() > 1
    {
        return None;
    }
    if !number.contains('.') {
        let whole: u64 = number.parse().ok()?;
        return whole.checked_mul(1u64 << shift);
    }
    let value: f64 = number.parse().ok()?;
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return None;
    }
    Some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::ram_in_bytes;

    #[test]
    fn sizes_parse_like_docker() {
        let cases = [
            ("0", 0),
            ("1", 1),
            ("123b", 123),
            ("2GB", 2 << 30),
            ("2gib", 2 << 30),
            ("512MiB", 512 << 20),
            ("64m", 64 << 20),
            ("1.5g", 3 << 29),
            ("10 k", 10 << 10),
            ("1t", 1 << 40),
        ];
        for (text, want) in cases {
            assert_eq!(ram_in_bytes(text), Some(want), "{text:?}");
        }
        for bad in [
            "",
            "GB",
            "-1",
            "1.2.3",
            "1x",
            "1gbb",
            ".5g",
            "5.g",
            "1i",
            "99999999999999999999p",
        ] {
            assert_eq!(ram_in_bytes(bad), None, "{bad:?}");
        }
    }
}

//! Early validation of `COPY --chmod` values, so a bad mode is reported at its Dockerfile line.
//!
//! The grammar is the one `store::fileop::parse_mode_str` applies (chmod(1) with BSD
//! `setmode(3)` semantics, as BuildKit uses through `dchapes/mode`); this crate cannot depend on
//! `store`, so the grammar is repeated here, and both are tested against the same table of
//! accepted and refused strings. Accepted:
//! - an octal number no larger than `7777` (any number of leading zeros);
//! - clauses separated by `,`, each `[ugoa]*` followed by one or more actions
//!   `[-+=][rwxXstugo]*` (`u=rwX,go=rX`, `u=g-w`, `+t`, `a-s`).
//!
//! Nothing is applied here.

/// Checks that `mode` is a valid `--chmod` value; the error says what is wrong.
pub fn validate_symbolic_mode(mode: &str) -> Result<(), String> {
    let bad = |reason: &str| Err(format!("invalid chmod value {mode:?}: {reason}"));
    let bytes = mode.as_bytes();
    let Some(&first) = bytes.first() else {
        return bad("empty mode");
    };
    if first.is_ascii_digit() {
        let mut value: u32 = 0;
        for &d in bytes {
            if !(b'0'..=b'7').contains(&d) {
                return bad("octal mode has a non-octal digit");
            }
            value = value * 8 + u32::from(d - b'0');
            if value > 0o7777 {
                return bad("octal mode is larger than 7777");
            }
        }
        return Ok(());
    }
    for clause in mode.split(',') {
        let rest = clause.trim_start_matches(['u', 'g', 'o', 'a']);
        if rest.is_empty() {
            return bad("a clause needs an operator (+, - or =)");
        }
        let mut chars = rest.chars();
        while let Some(op) = chars.next() {
            if !matches!(op, '+' | '-' | '=') {
                return bad("expected an operator (+, - or =)");
            }
            // Permissions up to the next operator.
            let perms: String = chars
                .clone()
                .take_while(|c| !matches!(c, '+' | '-' | '='))
                .collect();
            if let Some(c) = perms.chars().find(|c| !"rwxXstugo".contains(*c)) {
                return bad(if c.is_ascii_alphanumeric() {
                    "unknown permission letter"
                } else {
                    "unexpected character"
                });
            }
            for _ in 0..perms.chars().count() {
                chars.next();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same table as `store::fileop::mode`'s tests: accepted, then refused strings.
    const ACCEPTED: &[&str] = &[
        "=",
        "+",
        "-",
        "+t",
        "-t",
        "u+r",
        "u+X",
        "u+s",
        "g+X",
        "o+s",
        "0421",
        "07421",
        "0000644",
        "+X",
        "+s",
        "-r",
        "-X",
        "u=rw",
        "u=",
        "=rw",
        "u=g",
        "u=g-w",
        "u+go",
        "a=r,ug=rw,u+x",
        "o+r,g+w,a+t,g-s,u+og",
        "644",
        "go-w",
        "=rw,+X",
        "u=rwx,go=u-w",
        "go=",
        "go=u-w",
        "+rt",
        "u=rwX,go=rX",
        "a+rwxXstugo",
    ];
    const REFUSED: &[&str] = &[
        "", ",", "q+r", "017777", "9", "8", "z", "u", "go", "u+r,", "u+rq", "+r,,g+w", "u+r g+w", "+r;",
        "0o755",
    ];

    #[test]
    fn grammar_table() {
        for mode in ACCEPTED {
            assert_eq!(validate_symbolic_mode(mode), Ok(()), "{mode:?}");
        }
        for mode in REFUSED {
            let err = validate_symbolic_mode(mode).expect_err(mode);
            assert!(err.contains("invalid chmod value"), "{err}");
        }
    }
}

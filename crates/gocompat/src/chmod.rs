//! Symbolic modes (`COPY --chmod=u=rwX,go=rX`): chmod(1) syntax with BSD `setmode(3)`
//! semantics, as BuildKit applies them through `dchapes/mode` with a umask of 0.
//!
//! Grammar: an octal number up to `7777` (any number of leading zeros), or clauses separated by
//! `,`, each `[ugoa]*` followed by one or more `[-+=][rwxXstugo]*` actions:
//! - No `ugoa` means `a` (the umask is 0). `u`, `g`, `o` cover the class's `rwx` bits, `u` and
//!   `g` also setuid and setgid; `a` is all three.
//! - `+` adds, `-` removes, `=` first clears the covered bits (all but sticky when no class is
//!   named) and then adds.
//! - `r`, `w`, `x` as usual; `X` adds execute when the entry is a directory or already had any
//!   execute bit before the whole mode string was applied, and only with `+`: dchapes/mode
//!   ignores it after `-` and `=`, so `u=rwX` is `u=rw` (use `u=rw,a+X`); `s` is setuid/setgid
//!   (ignored for `o` alone); `t` is the sticky bit (ignored for `o` alone, and a quirk kept from
//!   BSD: when no class is named, `t` limits the action to the sticky bit, so `+rt` only adds
//!   sticky).
//! - `u`, `g`, `o` as the permission copy that class's current `rwx` bits (`g=u`, `go-w`, `u+g`).
//!
//! [`parse`] reads a mode string once (the frontend validates `COPY --chmod` with it, so a bad
//! mode is reported at its Dockerfile line); [`ModeSet::apply`] applies it to each copied entry
//! against that entry's own source mode (the file operations never change a symlink's mode).

const SUID: u32 = 0o4000;
const SGID: u32 = 0o2000;
const STICKY: u32 = 0o1000;
const RWXU: u32 = 0o700;
const RWXG: u32 = 0o070;
const RWXO: u32 = 0o007;
/// Everything `=` without a class clears: all bits but sticky.
const STANDARD: u32 = SUID | SGID | RWXU | RWXG | RWXO;
/// The umask is 0, so the mask of permitted bits is everything.
const MASK: u32 = 0o7777;

/// A parsed mode string: changes to apply to a file's permission bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeSet {
    cmds: Vec<Cmd>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Add(u32),
    Remove(u32),
    /// Add when the entry is a directory or had an execute bit.
    AddIfExec(u32),
    /// Copy the `rwx` bits of class `from` (shift 6, 3 or 0) to the target classes.
    Copy {
        from: u32,
        targets: [bool; 3],
        bits: u32,
        clear: bool,
        set: bool,
    },
}

/// A mode string that is neither octal nor symbolic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid mode {mode:?}: {reason}")]
pub struct ModeError {
    /// The mode string as given.
    pub mode: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Parses a mode string (octal or symbolic, see the module docs).
pub fn parse(text: &str) -> Result<ModeSet, ModeError> {
    parse_clauses(text).map_err(|reason| ModeError {
        mode: text.to_owned(),
        reason,
    })
}

fn parse_clauses(text: &str) -> Result<ModeSet, &'static str> {
    let s = text.as_bytes();
    let first = *s.first().ok_or("empty mode")?;
    if first.is_ascii_digit() {
        let mut value: u32 = 0;
        for &d in s {
            if !(b'0'..=b'7').contains(&d) {
                return Err("octal mode has a non-octal digit");
            }
            value = value * 8 + u32::from(d - b'0');
            if value > 0o7777 {
                return Err("octal mode is larger than 7777");
            }
        }
        return Ok(ModeSet {
            cmds: vec![Cmd::Remove(STANDARD | STICKY), Cmd::Add(value)],
        });
    }
    let mut set = ModeSet { cmds: Vec::new() };
    let mut i = 0;
    loop {
        let mut who = 0;
        while let Some(&c) = s.get(i) {
            who |= match c {
                b'a' => STANDARD,
                b'u' => SUID | RWXU,
                b'g' => SGID | RWXG,
                b'o' => RWXO,
                _ => break,
            };
            i += 1;
        }
        let mut equal_done = false;
        // One or more actions sharing `who`.
        loop {
            let op = *s.get(i).ok_or("missing operator (+, - or =)")?;
            if !matches!(op, b'+' | b'-' | b'=') {
                return Err("expected an operator (+, - or =)");
            }
            i += 1;
            if op == b'=' {
                equal_done = false;
            }
            who &= !STICKY;
            let (mut perm, mut perm_x) = (0, 0);
            loop {
                let c = s.get(i).copied();
                match c {
                    Some(b'r') => perm |= 0o444,
                    Some(b'w') => perm |= 0o222,
                    Some(b'x') => perm |= 0o111,
                    Some(b'X') => {
                        if op == b'+' {
                            perm_x = 0o111;
                        }
                    }
                    Some(b's') => {
                        if who == 0 || who & !RWXO != 0 {
                            perm |= SUID | SGID;
                        }
                    }
                    Some(b't') => {
                        if who == 0 || who & !RWXO != 0 {
                            who |= STICKY;
                            perm |= STICKY;
                        }
                    }
                    Some(class @ (b'u' | b'g' | b'o')) => {
                        if perm != 0 {
                            set.add(op, who, perm);
                            perm = 0;
                        }
                        if op == b'=' {
                            equal_done = true;
                        }
                        if perm_x != 0 {
                            set.add(b'X', who, perm_x);
                            perm_x = 0;
                        }
                        set.add_copy(class, who, op);
                    }
                    _ => {
                        if perm != 0 || (op == b'=' && !equal_done) {
                            if op == b'=' {
                                equal_done = true;
                            }
                            set.add(op, who, perm);
                        }
                        if perm_x != 0 {
                            set.add(b'X', who, perm_x);
                        }
                        break;
                    }
                }
                i += 1;
            }
            match s.get(i) {
                None => return Ok(set),
                Some(b',') => {
                    i += 1;
                    if i == s.len() {
                        return Err("empty clause after \",\"");
                    }
                    break;
                }
                // Another action for the same classes (`u=g-w`).
                Some(_) => {}
            }
        }
    }
}

impl ModeSet {
    fn add(&mut self, op: u8, who: u32, perm: u32) {
        let scope = if who != 0 { who } else { MASK };
        match op {
            b'=' => {
                self.cmds.push(Cmd::Remove(if who != 0 { who } else { STANDARD }));
                self.cmds.push(Cmd::Add(scope & perm));
            }
            b'+' => self.cmds.push(Cmd::Add(scope & perm)),
            b'-' => self.cmds.push(Cmd::Remove(scope & perm)),
            _ => self.cmds.push(Cmd::AddIfExec(scope & perm)),
        }
    }

    fn add_copy(&mut self, class: u8, who: u32, op: u8) {
        let from = match class {
            b'u' => 6,
            b'g' => 3,
            _ => 0,
        };
        let (targets, bits) = if who != 0 {
            ([who & 0o400 != 0, who & 0o040 != 0, who & 0o004 != 0], !0)
        } else {
            ([true; 3], MASK)
        };
        self.cmds.push(Cmd::Copy {
            from,
            targets,
            bits,
            clear: op != b'+',
            set: op != b'-',
        });
    }

    /// The permission bits (with setuid, setgid and sticky) after applying the set to `mode`
    /// (other bits of `mode` are ignored); `is_dir` is for `X`.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let original = mode & 0o7777;
        let mut new = original;
        for cmd in &self.cmds {
            match *cmd {
                Cmd::Add(bits) => new |= bits,
                Cmd::Remove(bits) => new &= !bits,
                Cmd::AddIfExec(bits) => {
                    if is_dir || original & 0o111 != 0 {
                        new |= bits;
                    }
                }
                Cmd::Copy {
                    from,
                    targets,
                    bits,
                    clear,
                    set,
                } => {
                    let value = (new >> from) & 0o7;
                    for (target, shift) in targets.iter().zip([6u32, 3, 0]) {
                        if !*target {
                            continue;
                        }
                        if clear {
                            let cleared = if set { 0o7 } else { value };
                            new &= !((cleared << shift) & bits);
                        }
                        if set {
                            new |= (value << shift) & bits;
                        }
                    }
                }
            }
        }
        new & 0o7777
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (start mode, is directory, mode string, result), after dchapes/mode's table (umask 0).
    const APPLY: &[(u32, bool, &str, u32)] = &[
        (0o777, false, "=", 0o000),
        (0o777, false, "+", 0o777),
        (0o421, false, "-", 0o421),
        (0o421, false, "+t", 0o1421),
        (0o1421, false, "-t", 0o421),
        (0o000, false, "u+r", 0o400),
        (0o000, false, "u+X", 0o000),
        (0o001, false, "u+X", 0o101),
        (0o000, true, "u+X", 0o100),
        (0o000, false, "u+s", 0o4000),
        (0o100, false, "g+X", 0o110),
        (0o000, false, "g+s", 0o2000),
        (0o000, false, "o+s", 0o000),
        (0o000, false, "0421", 0o421),
        (0o000, false, "07421", 0o7421),
        (0o010, false, "+X", 0o111),
        (0o000, true, "+X", 0o111),
        (0o000, false, "+s", 0o6000),
        (0o777, false, "-r", 0o333),
        (0o777, true, "-X", 0o777),
        (0o6777, false, "-s", 0o777),
        (0o777, false, "u=rw", 0o677),
        (0o777, false, "u=", 0o077),
        (0o777, false, "=rw", 0o666),
        (0o742, false, "u=g", 0o442),
        (0o722, false, "u=g-w", 0o022),
        (0o772, false, "u=g-w", 0o572),
        (0o021, false, "u+go", 0o321),
        (0o777, false, "a=r,ug=rw,u+x", 0o764),
        (0o000, false, "o+r,g+w,a+t,g-s,u+og", 0o1624),
        (0o2100, false, "o+r,g+w,a+t,g-s,u+og", 0o1724),
        (0o6000, true, "o+r,g+w,a+t,g-s,u+og", 0o5624),
        (0o777, false, "644", 0o644),
        (0o777, false, "go-w", 0o755),
        (0o666, false, "=rw,+X", 0o666),
        (0o766, false, "=rw,+X", 0o777),
        (0o000, false, "u=rwx,go=u-w", 0o755),
        (0o777, false, "go=", 0o700),
        (0o370, false, "go=u-w", 0o311),
        (0o000, false, "+rt", 0o1000),
    ];

    #[test]
    fn applies_like_setmode() {
        for &(start, dir, text, want) in APPLY {
            let set = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(set.apply(start, dir), want, "{text} on {start:o} (dir: {dir})");
        }
    }

    /// Strings the grammar accepts and refuses (the frontend's validation and the file
    /// operations both call [`parse`], so they cannot disagree).
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
            assert!(parse(mode).is_ok(), "{mode:?} was refused");
        }
        for mode in REFUSED {
            let err = parse(mode).expect_err(mode);
            assert_eq!(err.mode, *mode);
            assert!(err.to_string().starts_with("invalid mode"), "{err}");
        }
    }
}

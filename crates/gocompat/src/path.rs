//! Lexical path cleaning as Go's `path.Clean` does it, for the slash-separated paths of image
//! layers, Dockerfiles and `.dockerignore` patterns (BuildKit and Docker clean paths this way,
//! so kiln must agree with them byte for byte).

/// Go's `path.Clean`: `.` and empty elements dropped, `..` removing the element before it (kept
/// at the start of a relative path, dropped at the root), no trailing slash, and `.` for an empty
/// result.
pub fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn cleans_like_go() {
        // Cases from Go's path.Clean documentation and tests.
        let cases = [
            ("", "."),
            (".", "."),
            ("/", "/"),
            ("//", "/"),
            ("abc", "abc"),
            ("abc/def/", "abc/def"),
            ("a/b/c/./../../g", "a/g"),
            ("/../x", "/x"),
            ("../../abc", "../../abc"),
            ("abc/../..", ".."),
            ("abc/./../def", "def"),
            ("/abc/def/../../..", "/"),
            ("a//b", "a/b"),
            ("./", "."),
            ("!./foo", "!./foo"),
            ("../a/../b", "../b"),
        ];
        for (input, want) in cases {
            assert_eq!(clean(input), want, "{input:?}");
        }
    }
}

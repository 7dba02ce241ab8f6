//! Paths as the Dockerfile frontend cleans and joins them.

/// Lexically cleans a path into an absolute one: no `.`, `..` or repeated slashes.
pub fn clean_path(path: &str) -> String {
    gocompat::path::clean(&format!("/{path}"))
}

/// Resolves a COPY destination against the working directory, keeping a trailing `/` (which
/// says the destination is a directory); `.` and the empty destination mean the directory.
pub(super) fn path_relative_to_workdir(workdir: &str, dest: &str) -> String {
    let dest = if dest.is_empty() || dest == "." {
        "./"
    } else {
        dest
    };
    let joined = if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!("{workdir}/{dest}")
    };
    let mut cleaned = clean_path(&joined);
    let wants_dir = dest.ends_with('/') || dest.ends_with("/.");
    if wants_dir && !cleaned.ends_with('/') {
        cleaned.push('/');
    }
    cleaned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(clean_path("/a/./b/../c//d"), "/a/c/d");
        assert_eq!(clean_path("/../x"), "/x");
        assert_eq!(path_relative_to_workdir("/app", "sub/"), "/app/sub/");
        assert_eq!(path_relative_to_workdir("/app", "."), "/app/");
        assert_eq!(path_relative_to_workdir("/app", ""), "/app/");
        assert_eq!(path_relative_to_workdir("/app", "/abs"), "/abs");
        assert_eq!(path_relative_to_workdir("/app", "f"), "/app/f");
    }
}

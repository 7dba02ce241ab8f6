//! How sources report what they are doing: status lines for the step that runs them.

/// Where a source sends its status lines (`pulling sha256:… 1.23MB`, `downloading …`). The
/// engine forwards them to the step's progress; any `Fn(String)` closure is one.
pub trait Progress: Sync {
    /// Reports one status line.
    fn status(&self, line: String);
}

impl<F: Fn(String) + Sync> Progress for F {
    fn status(&self, line: String) {
        self(line)
    }
}

/// `1.2MB`-style sizes, as BuildKit prints them in progress output.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.2}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn sizes_are_human() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_234_567), "1.23MB");
    }

    #[test]
    fn closures_report_status_lines() {
        let lines = Mutex::new(Vec::new());
        let progress = |line: String| lines.lock().unwrap().push(line);
        let dynamic: &dyn Progress = &progress;
        dynamic.status("one".into());
        assert_eq!(*lines.lock().unwrap(), ["one"]);
    }
}

//! [`FakeExecutor`]: an executor that runs nothing, for unprivileged tests of other crates.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use crate::{Error, ExecSpec, Executor, ExitStatus, OutputSink, Result, Stream};

/// Records the specs it is asked to run instead of running them.
///
/// Run number `n` (counting from 1) writes the file `/fake-run-<n>` into the root filesystem,
/// containing the arguments one per line, echoes the arguments joined by spaces and a newline
/// to stdout, and returns the configured exit code (0 by default).
#[derive(Debug, Default)]
pub struct FakeExecutor {
    runs: Mutex<Vec<ExecSpec>>,
    exit_code: i32,
}

impl FakeExecutor {
    /// A fake whose runs all succeed.
    pub fn new() -> FakeExecutor {
        FakeExecutor::default()
    }

    /// A fake whose runs all exit with `code`.
    pub fn with_exit_code(code: i32) -> FakeExecutor {
        FakeExecutor {
            exit_code: code,
            ..FakeExecutor::default()
        }
    }

    /// The specs run so far, in order.
    pub fn runs(&self) -> Vec<ExecSpec> {
        self.runs.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Executor for FakeExecutor {
    async fn run(&self, rootfs: &Path, spec: &ExecSpec, output: &dyn OutputSink) -> Result<ExitStatus> {
        let n = {
            let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
            runs.push(spec.clone());
            runs.len()
        };
        let path = rootfs.join(format!("fake-run-{n}"));
        let content: String = spec.args.iter().map(|a| format!("{a}\n")).collect();
        std::fs::write(&path, content).map_err(|source| Error::WriteRootfs { path, source })?;
        output.write(Stream::Stdout, format!("{}\n", spec.args.join(" ")).as_bytes());
        Ok(ExitStatus {
            code: self.exit_code,
            signal: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect(Mutex<Vec<u8>>);
    impl OutputSink for Collect {
        fn write(&self, _: Stream, data: &[u8]) {
            self.0.lock().unwrap().extend_from_slice(data);
        }
    }

    #[tokio::test]
    async fn records_runs_and_writes_files() {
        let root = tempfile::tempdir().unwrap();
        let fake = FakeExecutor::with_exit_code(2);
        let sink = Collect::default();
        let spec = ExecSpec {
            args: vec!["echo".into(), "hi".into()],
            ..ExecSpec::default()
        };
        let status = fake.run(root.path(), &spec, &sink).await.unwrap();
        assert_eq!(
            status,
            ExitStatus {
                code: 2,
                signal: None
            }
        );
        fake.run(root.path(), &spec, &sink).await.unwrap();
        assert_eq!(fake.runs(), [spec.clone(), spec]);
        assert_eq!(
            std::fs::read_to_string(root.path().join("fake-run-2")).unwrap(),
            "echo\nhi\n"
        );
        assert_eq!(*sink.0.lock().unwrap(), b"echo hi\necho hi\n");
    }
}

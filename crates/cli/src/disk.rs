//! `kiln du` and `kiln prune`, shaped like `buildctl du` / `buildctl prune`, and the report of
//! the automatic garbage collection after `kiln build`.
//!
//! Both open the state directory without the build machinery (`engine::StateDir`), taking its
//! lock, so they wait for a running build of another process and never run during one.
//!
//! `kiln du` (table, the default): one row per snapshot, cache mount or stored build log,
//! largest first:
//! ```text
//! ID             RECLAIMABLE  SIZE     LAST ACCESSED
//! 12             true         12.29MB  2 minutes ago
//! 3              true         4.1MB*   3 days ago
//! mhv2k1x3a7f2q  false        1.2MB    2 minutes ago
//! Other content:  4 blobs, 10.5kB
//! Shared:         4.1MB
//! Private:        12.29MB
//! Reclaimable:    16.4MB
//! Total:          16.4MB
//! ```
//! Sizes are decimal (`kB` = 1000 bytes, four significant digits, as BuildKit prints them); a
//! `*` after a size marks a shared record (a parent of other snapshots, or reached from more
//! than one cache record); other content is blobs that are no snapshot's layer blob (image
//! manifests and configs, downloads). A build log is named by its build id (as `kiln logs`
//! shows it); the newest one is not reclaimable (see `kiln prune`). With filters, the rows and
//! totals cover the matching
//! records only. `--verbose` prints every field of every record instead of a row: ID, Parent,
//! Type, Description, Created at, Last used, Usage count, Size, Shared, In use, Reclaimable,
//! Blob.
//!
//! `kiln du --format json` prints one JSON object:
//! - `records`: array of objects with `id` (number; for a build log, its build id as a
//!   string), `parent` (number or null), `type` (`"regular"`: a build result; `"layer"`: a
//!   pulled image layer; `"exec.cachemount"`: a `RUN --mount=type=cache` directory, whose
//!   parent is the snapshot it was seeded from; `"build.log"`: a stored build log),
//!   `description`, `size` (bytes: layer directory plus the layer blob counted for it, the
//!   cache mount's directory, or the log file), `created` and `last_used`
//!   (Unix seconds; `last_used` is `created` when never reused), `usage_count`, `in_use`,
//!   `shared`, `reclaimable` (booleans) and `blob` (digest of the counted layer blob, or null);
//! - `other_content`: `{ "blobs": count, "size": bytes }`;
//! - `total`, `reclaimable`, `shared`, `private`: bytes.
//!
//! `kiln prune` removes build results and unused cache mounts; with `--all` also pulled layers
//! and build logs, all but the newest (which `kiln logs` shows; one still being written is kept
//! too); `--keep-storage` (and the automatic GC) counts logs and removes the least recently
//! written like any record, `--all` or not. It prints the removed records as `kiln du` does
//! (rows, or `--verbose` blocks), then
//! the removed other content and `Total: <bytes freed>`; with `--format json`, one object with
//! `removed` (records as above, before removal), `other_content`, `blobs_removed` and
//! `reclaimed` (bytes).

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use engine::{DiskUsage, GcOutcome, OtherContent, PruneOptions, PruneReport, UsageRecord};
use serde_json::json;

use crate::args::{Cli, DuArgs, Format, PruneArgs};
use crate::render::CliError;
use crate::setup::open_state_dir;

fn failed(cli: &Cli, what: &str, e: impl std::error::Error + Send + Sync + 'static) -> CliError {
    CliError::failed(format!("failed to {what} {}", cli.root.display()), e)
}

/// `kiln du`.
pub(crate) async fn du(cli: &Cli, args: &DuArgs) -> Result<ExitCode, CliError> {
    let usage = match crate::remote::Remote::of(cli)? {
        Some(remote) => crate::remote::disk_usage(&remote, &args.records.filters).await?,
        None => open_state_dir(cli)
            .await?
            .disk_usage(&args.records.filters)
            .map_err(|e| failed(cli, "measure", e))?,
    };
    let now = now();
    let text = match args.records.format {
        Format::Json => format!("{:#}\n", usage_json(&usage)),
        Format::Table => {
            let mut out = if args.records.verbose {
                usage.records.iter().map(|r| verbose(r, now)).collect()
            } else {
                table(&usage.records, now)
            };
            out.push_str(&summary(&usage));
            out
        }
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// `kiln prune`.
pub(crate) async fn prune(cli: &Cli, args: &PruneArgs) -> Result<ExitCode, CliError> {
    let options = PruneOptions {
        all: args.all,
        keep_duration: args.keep_duration,
        keep_storage: args.keep_storage,
        filters: args.records.filters.clone(),
    };
    let report = match crate::remote::Remote::of(cli)? {
        Some(remote) => crate::remote::prune(&remote, &options).await?,
        None => open_state_dir(cli)
            .await?
            .prune(&options)
            .map_err(|e| failed(cli, "prune", e))?,
    };
    let now = now();
    let text = match args.records.format {
        Format::Json => format!("{:#}\n", prune_json(&report)),
        Format::Table => {
            let mut out = if args.records.verbose {
                report.removed.iter().map(|r| verbose(r, now)).collect()
            } else if report.removed.is_empty() {
                String::new()
            } else {
                table(&report.removed, now)
            };
            if report.other.blobs > 0 {
                out.push_str(&line("Other content:", &other(&report.other)));
            }
            out.push_str(&line("Total:", &human_size(report.reclaimed)));
            out
        }
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// Says what the automatic garbage collection after a build did, when it matters: a warning
/// (through `warn`) when it failed, a note with `debug` on when it removed something.
pub(crate) fn report_gc(outcome: &GcOutcome, debug: bool, warn: impl Fn(&str)) {
    match outcome {
        GcOutcome::Failed(message) => warn(&format!("garbage collection after the build failed: {message}")),
        GcOutcome::Collected(report) if report.reclaimed > 0 && debug => {
            eprintln!(
                "kiln: garbage collection removed {} records and {} blobs, freed {}",
                report.removed.len(),
                report.blobs_removed,
                human_size(report.reclaimed)
            );
        }
        GcOutcome::Collected(_) | GcOutcome::Skipped => {}
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Rows like `buildctl du`: ID, RECLAIMABLE, SIZE (`*` = shared), LAST ACCESSED.
fn table(records: &[UsageRecord], now: i64) -> String {
    let rows: Vec<[String; 4]> = records
        .iter()
        .map(|r| {
            [
                r.id.to_string(),
                r.reclaimable().to_string(),
                format!("{}{}", human_size(r.size), if r.shared { "*" } else { "" }),
                ago(now - r.last_used),
            ]
        })
        .collect();
    let header = ["ID", "RECLAIMABLE", "SIZE", "LAST ACCESSED"].map(String::from);
    let mut widths = [0; 3];
    for row in rows.iter().chain([&header]) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in [&header].into_iter().chain(&rows) {
        out.push_str(&format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {}\n",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
        ));
    }
    out
}

/// Every field of one record, `Key:  value` per line, then a blank line.
fn verbose(r: &UsageRecord, now: i64) -> String {
    let mut out = line("ID:", &r.id.to_string());
    if let Some(parent) = r.parent {
        out.push_str(&line("Parent:", &parent.to_string()));
    }
    out.push_str(&line("Type:", r.kind.as_str()));
    out.push_str(&line("Description:", &r.description));
    out.push_str(&line("Created at:", &oci::time::rfc3339(r.created)));
    out.push_str(&line(
        "Last used:",
        &format!("{} ({})", oci::time::rfc3339(r.last_used), ago(now - r.last_used)),
    ));
    out.push_str(&line("Usage count:", &r.usage_count.to_string()));
    out.push_str(&line("Size:", &human_size(r.size)));
    out.push_str(&line("Shared:", &r.shared.to_string()));
    out.push_str(&line("In use:", &r.in_use.to_string()));
    out.push_str(&line("Reclaimable:", &r.reclaimable().to_string()));
    if let Some(blob) = &r.blob {
        out.push_str(&line("Blob:", &blob.to_string()));
    }
    out.push('\n');
    out
}

fn summary(usage: &DiskUsage) -> String {
    let mut out = String::new();
    if usage.other.blobs > 0 {
        out.push_str(&line("Other content:", &other(&usage.other)));
    }
    out.push_str(&line("Shared:", &human_size(usage.shared)));
    out.push_str(&line("Private:", &human_size(usage.private)));
    out.push_str(&line("Reclaimable:", &human_size(usage.reclaimable)));
    out.push_str(&line("Total:", &human_size(usage.total)));
    out
}

fn line(key: &str, value: &str) -> String {
    format!("{key:<15} {value}\n")
}

fn other(content: &OtherContent) -> String {
    let plural = if content.blobs == 1 { "" } else { "s" };
    format!("{} blob{plural}, {}", content.blobs, human_size(content.size))
}

fn record_json(r: &UsageRecord) -> serde_json::Value {
    json!({
        "id": match r.id.snapshot() {
            Some(id) => json!(id.0),
            None => json!(r.id.to_string()),
        },
        "parent": r.parent.map(|p| p.0),
        "type": r.kind.as_str(),
        "description": r.description,
        "size": r.size,
        "created": r.created,
        "last_used": r.last_used,
        "usage_count": r.usage_count,
        "in_use": r.in_use,
        "shared": r.shared,
        "reclaimable": r.reclaimable(),
        "blob": r.blob.as_ref().map(ToString::to_string),
    })
}

fn other_json(content: &OtherContent) -> serde_json::Value {
    json!({ "blobs": content.blobs, "size": content.size })
}

fn usage_json(usage: &DiskUsage) -> serde_json::Value {
    json!({
        "records": usage.records.iter().map(record_json).collect::<Vec<_>>(),
        "other_content": other_json(&usage.other),
        "total": usage.total,
        "reclaimable": usage.reclaimable,
        "shared": usage.shared,
        "private": usage.private,
    })
}

fn prune_json(report: &PruneReport) -> serde_json::Value {
    json!({
        "removed": report.removed.iter().map(record_json).collect::<Vec<_>>(),
        "other_content": other_json(&report.other),
        "blobs_removed": report.blobs_removed,
        "reclaimed": report.reclaimed,
    })
}

/// Decimal sizes with four significant digits (`8.224kB`, `811.7MB`, `318MB`), as BuildKit
/// prints them.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    let whole_digits = if value < 10.0 {
        1
    } else if value < 100.0 {
        2
    } else {
        3
    };
    let text = format!("{value:.prec$}", prec = 4 - whole_digits);
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    format!("{text}{}", UNITS[unit])
}

/// How long ago, in words (`2 minutes ago`, `About an hour ago`, `3 days ago`).
fn ago(seconds: i64) -> String {
    let s = seconds.max(0);
    let hours = (s as f64 / 3600.0).round() as i64;
    let text = match s {
        0 => "Less than a second".to_string(),
        1 => "1 second".to_string(),
        2..60 => format!("{s} seconds"),
        60..120 => "About a minute".to_string(),
        120..3600 => format!("{} minutes", s / 60),
        _ if hours <= 1 => "About an hour".to_string(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 14 => format!("{} days", hours / 24),
        _ if hours < 24 * 60 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours / 24 / 365),
    };
    format!("{text} ago")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_like_buildkit() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(8_224), "8.224kB");
        assert_eq!(human_size(811_700_000), "811.7MB");
        assert_eq!(human_size(318_000_000), "318MB");
        assert_eq!(human_size(1_704_000_000), "1.704GB");
        assert_eq!(human_size(10_360_000_000), "10.36GB");
        assert_eq!(human_size(1_000_000), "1MB");
    }

    #[test]
    fn ages_read_like_docker() {
        assert_eq!(ago(0), "Less than a second ago");
        assert_eq!(ago(-5), "Less than a second ago");
        assert_eq!(ago(1), "1 second ago");
        assert_eq!(ago(59), "59 seconds ago");
        assert_eq!(ago(90), "About a minute ago");
        assert_eq!(ago(36 * 60), "36 minutes ago");
        assert_eq!(ago(3600), "About an hour ago");
        assert_eq!(ago(43 * 3600), "43 hours ago");
        assert_eq!(ago(13 * 86_400), "13 days ago");
        assert_eq!(ago(15 * 86_400), "2 weeks ago");
        assert_eq!(ago(90 * 86_400), "3 months ago");
        assert_eq!(ago(800 * 86_400), "2 years ago");
    }

    fn record(id: u64, size: u64, shared: bool) -> UsageRecord {
        UsageRecord {
            id: engine::SnapshotId(id).into(),
            parent: None,
            kind: engine::RecordKind::Regular,
            description: "exec make".into(),
            size,
            created: 1_000,
            last_used: 1_000,
            usage_count: 0,
            in_use: false,
            shared,
            blob: None,
        }
    }

    #[test]
    fn tables_align_columns() {
        let text = table(&[record(12, 12_290_000, false), record(3, 4_100, true)], 1_120);
        assert_eq!(
            text,
            "ID  RECLAIMABLE  SIZE     LAST ACCESSED\n\
             12  true         12.29MB  2 minutes ago\n\
             3   true         4.1kB*   2 minutes ago\n"
        );
        let json = record_json(&record(3, 4_100, true));
        assert_eq!(json["id"], 3);
        assert_eq!(json["type"], "regular");
        assert_eq!(json["parent"], serde_json::Value::Null);
        assert_eq!(json["reclaimable"], true);
    }
}

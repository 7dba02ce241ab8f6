//! Talking to daemons (`--addr`, `KILN_HOST`): which ones, channels to them, and the commands
//! other than `build` through them (`du`, `prune`, `logs`, `history`, `debug ping`). With
//! several addresses, those commands use the first one (`--addr` picks another); builds are
//! routed over all of them (`remote_build`).

use api::pb;
use api::pb::control_client::ControlClient;
use api::{Address, TlsFiles};
use engine::{DiskUsage, OtherContent, PruneReport, RecordId, SnapshotId, UsageRecord};
use tonic::transport::Channel;

use crate::args::Cli;
use crate::render::CliError;

/// The daemons a command talks to.
pub(crate) struct Remote {
    /// In the order given.
    pub(crate) addresses: Vec<Address>,
    pub(crate) tls: TlsFiles,
}

impl Remote {
    /// The daemons of `--addr` / `KILN_HOST`; `None` when no daemon is named.
    pub(crate) fn of(cli: &Cli) -> Result<Option<Remote>, CliError> {
        if cli.host.is_empty() {
            return Ok(None);
        }
        let mut addresses = Vec::new();
        for text in &cli.host {
            for address in Address::parse_list(text).map_err(|e| CliError::Usage(e.to_string()))? {
                if !addresses.contains(&address) {
                    addresses.push(address);
                }
            }
        }
        Ok(Some(Remote {
            addresses,
            tls: TlsFiles {
                ca: cli.tlscacert.clone(),
                cert: cli.tlscert.clone(),
                key: cli.tlskey.clone(),
            },
        }))
    }

    /// A client of `address`.
    pub(crate) fn client(&self, address: &Address) -> Result<ControlClient<Channel>, CliError> {
        let channel =
            api::connect(address, &self.tls).map_err(|e| CliError::failed(format!("daemon {address}"), e))?;
        Ok(ControlClient::new(channel)
            .max_decoding_message_size(api::MAX_MESSAGE)
            .max_encoding_message_size(api::MAX_MESSAGE))
    }

    /// The client of the first address.
    fn first(&self) -> Result<(ControlClient<Channel>, &Address), CliError> {
        let address = &self.addresses[0];
        Ok((self.client(address)?, address))
    }
}

/// A failed call, named by its daemon.
pub(crate) fn call_failed(address: &Address, status: tonic::Status) -> CliError {
    CliError::Failed(anyhow::anyhow!("daemon {address}: {}", status_text(&status)))
}

/// What a status says, for people: unreachable daemons say so.
pub(crate) fn status_text(status: &tonic::Status) -> String {
    use std::error::Error as _;
    let mut text = status.message().to_string();
    let mut cause = status.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    match status.code() {
        tonic::Code::Unavailable => format!("unreachable ({text})"),
        _ => text,
    }
}

/// `kiln debug ping`: asks every daemon; fails if one does not answer.
pub(crate) async fn ping(remote: &Remote) -> Result<std::process::ExitCode, CliError> {
    let mut failed = 0;
    for address in &remote.addresses {
        let answer = match remote.client(address) {
            Ok(mut client) => client.ping(pb::PingRequest {}).await.map_err(|s| status_text(&s)),
            Err(e) => Err(crate::render::text(&e)),
        };
        match answer {
            Ok(r) => {
                let r = r.into_inner();
                println!(
                    "{address}: kiln {}, state directory {}, {} builds running, up {}s",
                    r.version, r.root, r.running_builds, r.uptime_seconds
                );
            }
            Err(e) => {
                failed += 1;
                eprintln!("ERROR: {address}: {e}");
            }
        }
    }
    Ok(if failed == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

fn record(r: pb::UsageRecord) -> UsageRecord {
    UsageRecord {
        id: match r.id.parse::<u64>() {
            Ok(n) => RecordId::Snapshot(SnapshotId(n)),
            Err(_) => RecordId::Log(r.id),
        },
        parent: r.parent.map(SnapshotId),
        kind: r.kind.parse().unwrap_or(engine::RecordKind::Regular),
        description: r.description,
        size: r.size,
        created: r.created,
        last_used: r.last_used,
        usage_count: r.usage_count,
        in_use: r.in_use,
        shared: r.shared,
        blob: r.blob.parse().ok(),
    }
}

/// `kiln du` through a daemon.
pub(crate) async fn disk_usage(remote: &Remote, filters: &[engine::Filter]) -> Result<DiskUsage, CliError> {
    let (mut client, address) = remote.first()?;
    let request = pb::DiskUsageRequest {
        filters: filters.iter().map(ToString::to_string).collect(),
    };
    let u = client
        .disk_usage(request)
        .await
        .map_err(|s| call_failed(address, s))?
        .into_inner();
    Ok(DiskUsage {
        records: u.records.into_iter().map(record).collect(),
        other: OtherContent {
            blobs: u.other_blobs,
            size: u.other_size,
        },
        total: u.total,
        reclaimable: u.reclaimable,
        shared: u.shared,
        private: u.private,
    })
}

/// `kiln prune` through a daemon.
pub(crate) async fn prune(remote: &Remote, options: &engine::PruneOptions) -> Result<PruneReport, CliError> {
    let (mut client, address) = remote.first()?;
    let request = pb::PruneRequest {
        all: options.all,
        keep_storage: options.keep_storage,
        keep_duration_seconds: options.keep_duration.map(|d| d.as_secs()),
        filters: options.filters.iter().map(ToString::to_string).collect(),
    };
    let r = client
        .prune(request)
        .await
        .map_err(|s| call_failed(address, s))?
        .into_inner();
    Ok(PruneReport {
        removed: r.removed.into_iter().map(record).collect(),
        blobs_removed: r.blobs_removed,
        blob_bytes: r.blob_bytes,
        other: OtherContent {
            blobs: r.other_blobs,
            size: r.other_size,
        },
        reclaimed: r.reclaimed,
    })
}

/// A stored log through a daemon: its build id and its JSON lines.
pub(crate) async fn log(remote: &Remote, build: Option<&str>) -> Result<(String, Vec<u8>), CliError> {
    let (mut client, address) = remote.first()?;
    let request = pb::LogsRequest {
        build: build.unwrap_or_default().to_string(),
    };
    let mut stream = client
        .logs(request)
        .await
        .map_err(|s| call_failed(address, s))?
        .into_inner();
    let (mut id, mut data) = (String::new(), Vec::new());
    while let Some(chunk) = stream.message().await.map_err(|s| call_failed(address, s))? {
        if id.is_empty() {
            id = chunk.build_id;
        }
        data.extend_from_slice(&chunk.data);
    }
    Ok((id, data))
}

/// Past builds through a daemon.
pub(crate) async fn history(remote: &Remote, limit: u32) -> Result<Vec<engine::HistoryEntry>, CliError> {
    let (mut client, address) = remote.first()?;
    let entries = client
        .history(pb::HistoryRequest { limit })
        .await
        .map_err(|s| call_failed(address, s))?
        .into_inner()
        .entries;
    Ok(entries
        .into_iter()
        .map(|e| engine::HistoryEntry {
            status: match e.status.as_str() {
                "completed" => engine::BuildStatus::Completed,
                "failed" => engine::BuildStatus::Failed,
                _ => engine::BuildStatus::Unfinished,
            },
            duration: (e.status != "unfinished").then_some(e.duration_seconds),
            error: Some(e.error).filter(|e| !e.is_empty()),
            id: e.id,
            started: e.started,
            context: e.context,
            dockerfile: e.dockerfile,
            target: e.target,
            steps: e.steps,
            cached: e.cached,
        })
        .collect())
}

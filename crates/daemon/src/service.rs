//! The `Control` service: ping, builds (see [`crate::session`]), disk usage, prune, logs and
//! history.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use api::pb;
use engine::Filter;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::state::Daemon;

fn filters(texts: &[String]) -> Result<Vec<Filter>, Status> {
    texts
        .iter()
        .map(|t| {
            t.parse::<Filter>()
                .map_err(|e| Status::invalid_argument(e.to_string()))
        })
        .collect()
}

fn internal(e: impl std::error::Error + 'static) -> Status {
    Status::internal(oci::error_chain(&e))
}

type Streamed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl pb::control_server::Control for Daemon {
    async fn ping(
        self: Arc<Self>,
        _: Request<pb::PingRequest>,
    ) -> Result<Response<pb::PingResponse>, Status> {
        Ok(Response::new(pb::PingResponse {
            version: env!("CARGO_PKG_VERSION").to_string(),
            root: self.engine.root().display().to_string(),
            running_builds: self.running_builds() as u32,
            uptime_seconds: self.started.elapsed().as_secs(),
        }))
    }

    type BuildStream = Streamed<pb::ServerMessage>;

    async fn build(
        self: Arc<Self>,
        request: Request<Streaming<pb::ClientMessage>>,
    ) -> Result<Response<Self::BuildStream>, Status> {
        let stream = crate::session::start(self, request.into_inner()).await?;
        Ok(Response::new(Box::pin(stream)))
    }

    async fn disk_usage(
        self: Arc<Self>,
        request: Request<pb::DiskUsageRequest>,
    ) -> Result<Response<pb::DiskUsageResponse>, Status> {
        let usage = self
            .engine
            .disk_usage(filters(&request.get_ref().filters)?)
            .await
            .map_err(internal)?;
        Ok(Response::new(crate::convert::usage_to_pb(&usage)))
    }

    async fn prune(
        self: Arc<Self>,
        request: Request<pb::PruneRequest>,
    ) -> Result<Response<pb::PruneResponse>, Status> {
        let request = request.into_inner();
        let options = engine::PruneOptions {
            all: request.all,
            keep_duration: request.keep_duration_seconds.map(Duration::from_secs),
            keep_storage: request.keep_storage,
            filters: filters(&request.filters)?,
        };
        let all = options.all;
        let report = self.engine.prune(options).await.map_err(internal)?;
        let mut answer = crate::convert::prune_to_pb(&report);
        // The daemon's copies of clients' directories go with everything else.
        if all {
            let daemon = self.clone();
            let (_, bytes) = tokio::task::spawn_blocking(move || daemon.mirrors.prune(daemon.engine.root()))
                .await
                .map_err(internal)?;
            answer.reclaimed += bytes;
        }
        Ok(Response::new(answer))
    }

    type LogsStream = Streamed<pb::LogsChunk>;

    async fn logs(
        self: Arc<Self>,
        request: Request<pb::LogsRequest>,
    ) -> Result<Response<Self::LogsStream>, Status> {
        let prefix = Some(request.get_ref().build.as_str()).filter(|p| !p.is_empty());
        let log = engine::logs::find(self.engine.root(), prefix)
            .map_err(|e| Status::not_found(oci::error_chain(&e)))?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut file = match std::fs::File::open(&log.path) {
                Ok(f) => f,
                Err(e) => {
                    let _ = tx.blocking_send(Err(Status::internal(format!(
                        "failed to read the log of {}: {e}",
                        log.id
                    ))));
                    return;
                }
            };
            let mut first = true;
            let mut buf = vec![0; api::DATA_CHUNK];
            loop {
                let n = match file.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(Status::internal(format!(
                            "failed to read the log of {}: {e}",
                            log.id
                        ))));
                        return;
                    }
                };
                let chunk = pb::LogsChunk {
                    build_id: if first { log.id.clone() } else { String::new() },
                    data: buf[..n].to_vec(),
                };
                first = false;
                if tx.blocking_send(Ok(chunk)).is_err() {
                    return;
                }
            }
            if first {
                let _ = tx.blocking_send(Ok(pb::LogsChunk {
                    build_id: log.id.clone(),
                    data: Vec::new(),
                }));
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn history(
        self: Arc<Self>,
        request: Request<pb::HistoryRequest>,
    ) -> Result<Response<pb::HistoryResponse>, Status> {
        let limit = match request.get_ref().limit {
            0 => usize::MAX,
            n => n as usize,
        };
        let root = self.engine.root().to_path_buf();
        let entries = tokio::task::spawn_blocking(move || engine::history(&root, limit))
            .await
            .map_err(internal)?
            .map_err(internal)?;
        Ok(Response::new(pb::HistoryResponse {
            entries: entries.iter().map(crate::convert::history_to_pb).collect(),
        }))
    }
}

//! HTTP source ops: LLB's `http://` and `https://` sources, downloaded by
//! [`sources::http`].
//!
//! The source op's identifier is the URL; attributes name the file (`http.filename`), its
//! permission bits (`http.perm`, read as Go's `strconv.ParseInt(s, 0, …)` reads them, as
//! BuildKit does) and optionally the expected content digest (`http.checksum`). The cache key
//! follows BuildKit: with a checksum it is derived from it without any network access; without
//! one the file is downloaded while computing the key (revalidated against this engine's earlier
//! download of the URL), and the key covers its digest and `Last-Modified`. Downloads that
//! secrets authenticate are salted with those secrets' values (see [`super::source`]).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use llb::pb;
use oci::Digest;
use solver::{BoxFuture, CacheMap, Context, Op, OpError};
use sources::Secrets;
use sources::http::{Download, Fetched, HttpContext, HttpError, HttpSource, redact};

use super::{Session, op_error};
use crate::{Inner, Ref};

/// An HTTP source op.
pub(super) struct HttpOp {
    inner: Arc<Inner>,
    download: Download,
    /// The download made while computing the cache key, used by `exec`.
    resolved: Mutex<Option<Fetched>>,
}

impl HttpOp {
    /// Reads the source op's URL and attributes.
    pub(super) fn new(inner: &Arc<Inner>, source: &pb::SourceOp) -> Result<HttpOp, HttpError> {
        let url = source.identifier.clone();
        let checksum = source
            .attrs
            .get(llb::attr::HTTP_CHECKSUM)
            .map(|c| {
                c.parse::<Digest>().map_err(|e| HttpError::InvalidChecksum {
                    url: redact(&url),
                    source: e,
                })
            })
            .transpose()?;
        let perm = match source.attrs.get(llb::attr::HTTP_PERM) {
            None => None,
            Some(text) => Some(parse_perm(text).ok_or_else(|| HttpError::Invalid {
                url: redact(&url),
                reason: format!("invalid permissions {text:?}"),
            })?),
        };
        let download = Download::new(HttpSource {
            url,
            filename: source.attrs.get(llb::attr::HTTP_FILENAME).cloned(),
            perm,
            checksum,
        })?;
        Ok(HttpOp {
            inner: inner.clone(),
            download,
            resolved: Mutex::new(None),
        })
    }

    /// The names of the secrets that may authenticate this URL: what its salt depends on.
    pub(super) fn secret_names(&self) -> BTreeSet<String> {
        self.download.secret_names()
    }

    /// The cache key of the file `digest` with mtime `last_modified`, as this op saves it.
    fn cache_key(&self, digest: &Digest, last_modified: Option<&str>) -> Digest {
        let text = format!(
            "http\nfilename={}\nperm={:o}\nuid=0\ngid=0\nchecksum={digest}\nlast-modified={}\n",
            self.download.filename(),
            self.download.perm(),
            last_modified.unwrap_or("")
        );
        Digest::of(text.as_bytes())
    }
}

/// Runs `work` with what a download needs from this engine and the build waiting for it.
async fn with_context<T>(
    inner: &Inner,
    ctx: &Context<Session>,
    work: impl AsyncFnOnce(HttpContext<'_>) -> Result<T, HttpError>,
) -> Result<T, OpError> {
    let secrets: Arc<dyn Secrets> = Session::of(ctx).map_err(op_error)?;
    let progress = |line| ctx.status(line);
    let cx = HttpContext {
        state: &inner.http,
        store: &inner.store,
        secrets: &secrets,
        progress: &progress,
    };
    work(cx).await.map_err(op_error)
}

impl Op<Ref, Session> for HttpOp {
    fn resource(&self) -> solver::Resource {
        // Mostly waiting: on a server.
        solver::Resource::External
    }

    fn cache_map<'a>(&'a self, ctx: &'a Context<Session>) -> BoxFuture<'a, Result<CacheMap<Ref>, OpError>> {
        Box::pin(async move {
            let (digest, content) = match self.download.checksum() {
                // A pinned download is identified by its checksum: no network needed.
                Some(checksum) => (self.cache_key(checksum, None), checksum.to_string()),
                None => {
                    let fetched =
                        with_context(&self.inner, ctx, async |cx| self.download.resolve(cx).await).await?;
                    let key = self.cache_key(&fetched.digest, fetched.last_modified.as_deref());
                    let content = fetched.digest.to_string();
                    *self.resolved.lock().unwrap_or_else(|e| e.into_inner()) = Some(fetched);
                    (key, content)
                }
            };
            Ok(CacheMap::of_fact(digest, "downloaded content", content))
        })
    }

    fn exec<'a>(
        &'a self,
        ctx: &'a Context<Session>,
        _inputs: Vec<Ref>,
    ) -> BoxFuture<'a, Result<Vec<Ref>, OpError>> {
        Box::pin(async move {
            let resolved = self.resolved.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let fetched = match resolved {
                Some(f) => f,
                None => with_context(&self.inner, ctx, async |cx| self.download.fetch(cx).await).await?,
            };
            let id = self
                .download
                .snapshot(&self.inner.store, &fetched)
                .await
                .map_err(op_error)?;
            Ok(vec![Ref::Snapshot(id)])
        })
    }
}

/// Permission bits as Go's `strconv.ParseInt(s, 0, …)` reads them: decimal, or octal with a
/// leading `0`/`0o`, or hexadecimal with `0x`. Only the permission, setuid, setgid and sticky
/// bits may be set.
fn parse_perm(text: &str) -> Option<u32> {
    let text = text.trim();
    let value = if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        u32::from_str_radix(hex, 16).ok()?
    } else if let Some(octal) = text.strip_prefix("0o").or_else(|| text.strip_prefix("0O")) {
        u32::from_str_radix(octal, 8).ok()?
    } else if text.len() > 1 && text.starts_with('0') {
        u32::from_str_radix(&text[1..], 8).ok()?
    } else {
        text.parse().ok()?
    };
    (value <= 0o7777).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_parse_like_go() {
        assert_eq!(parse_perm("420"), Some(0o644));
        assert_eq!(parse_perm("0755"), Some(0o755));
        assert_eq!(parse_perm("0o700"), Some(0o700));
        assert_eq!(parse_perm("0x1ed"), Some(0o755));
        assert_eq!(parse_perm("0"), Some(0));
        assert_eq!(parse_perm("99999"), None);
        assert_eq!(parse_perm("rw"), None);
    }
}

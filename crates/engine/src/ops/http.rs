//! HTTP(S) sources (`ADD https://…`): one downloaded file in a snapshot of its own.
//!
//! The source op's identifier is the URL; attributes name the file (`http.filename`, default the
//! last path segment of the URL or `__unnamed__`), its permission bits (`http.perm`, default
//! 0600) and optionally the expected content digest (`http.checksum`). The result holds exactly
//! `/<filename>`, owned by 0:0, with its mtime from the `Last-Modified` header (the epoch when
//! there is none), as BuildKit makes it.
//!
//! Cache keys follow BuildKit: with a checksum the key is derived from it without any network
//! access (the download happens only on a miss, and is verified); without one the file is
//! downloaded while computing the key (into the content store) and the key covers its digest and
//! `Last-Modified`. Downloads are remembered per URL (ETag, `Last-Modified`, digest) for the
//! life of the engine, so the next build revalidates with `If-None-Match`/`If-Modified-Since`
//! and a `304 Not Modified` reuses the stored blob without transferring it again.
//!
//! Authentication comes from the build's secrets, as BuildKit's: `HTTP_AUTH_HEADER_<host>` is
//! sent as the `Authorization` header as it is, `HTTP_AUTH_TOKEN_<host>` as `Bearer <token>`
//! (it wins when both are given); `<host>` is the URL's host without its port. A missing secret
//! means no header. Secrets are read for each request and are never part of a cache key, a
//! message or the progress output; the header is marked sensitive, and the HTTP client drops it
//! when a redirect leaves the host.
//!
//! Not done: remembering validators across processes (the store has no table for them yet),
//! `Content-Disposition` file names, user-defined request headers, and size limits (downloads
//! are streamed to disk, never held in memory).

use std::collections::BTreeMap;
use std::fs::{self, FileTimes, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use llb::pb;
use oci::Digest;
use reqwest::header::{
    AUTHORIZATION, ETAG, HeaderMap, HeaderValue, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
};
use solver::{BoxFuture, CacheMap, Context, Op, OpError};
use store::{SnapshotId, Store};

use super::{Session, join_error, op_error};
use crate::{Inner, Ref};

/// The file name used when neither the attributes nor the URL give one, as BuildKit's.
const UNNAMED: &str = "__unnamed__";
/// Permission bits of the downloaded file when `http.perm` is absent, as BuildKit's.
const DEFAULT_PERM: u32 = 0o600;

/// Errors of HTTP sources. URLs in messages have their credentials redacted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    /// The source op is malformed.
    #[error("invalid http source {url}: {reason}")]
    Invalid { url: String, reason: String },
    /// The HTTP client could not be built.
    #[error("failed to set up the http client: {0}")]
    Client(registry::Error),
    /// The request failed before a response arrived, or the body could not be read.
    #[error("failed to download {url}: {message}")]
    Request { url: String, message: String },
    /// The server answered with an error status.
    #[error("invalid response status {status} for {url}")]
    Status { url: String, status: u16 },
    /// The content does not have the digest the build pinned.
    #[error("digest mismatch for {url}: expected {expected}, got {actual}")]
    DigestMismatch {
        url: String,
        expected: Digest,
        actual: Digest,
    },
    /// The download could not be stored.
    #[error("failed to store the download of {url}: {source}")]
    Store { url: String, source: store::Error },
    /// An authentication secret could not be read or used.
    #[error("failed to authenticate to {url}: {message}")]
    Auth { url: String, message: String },
    /// The result file could not be written.
    #[error("failed to {action} {path} for {url}: {source}")]
    Write {
        url: String,
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// What one engine remembers about HTTP sources: the client and the validators of earlier
/// downloads, keyed by the URL's identity (URL, file name and permissions).
#[derive(Default)]
pub(crate) struct HttpState {
    client: OnceLock<reqwest::Client>,
    memo: Mutex<BTreeMap<Digest, Memo>>,
}

/// What an earlier download returned.
#[derive(Clone, Debug)]
struct Memo {
    etag: Option<String>,
    last_modified: Option<String>,
    digest: Digest,
}

impl HttpState {
    fn client(&self) -> Result<reqwest::Client, HttpError> {
        if let Some(client) = self.client.get() {
            return Ok(client.clone());
        }
        let client = registry::http_client(&format!("kiln/{}", env!("CARGO_PKG_VERSION")))
            .map_err(HttpError::Client)?;
        // Another task may have won the race; either client will do.
        Ok(self.client.get_or_init(|| client).clone())
    }

    fn remembered(&self, key: &Digest) -> Option<Memo> {
        self.memo
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    fn remember(&self, key: Digest, memo: Memo) {
        self.memo
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, memo);
    }
}

/// A downloaded file: its blob in the content store and its `Last-Modified` header.
#[derive(Clone, Debug)]
struct Fetched {
    digest: Digest,
    last_modified: Option<String>,
}

/// An HTTP source op.
pub(super) struct HttpOp {
    inner: Arc<Inner>,
    /// The build's session: where authentication secrets come from.
    session: Arc<Session>,
    url: String,
    /// The URL's host without port or brackets, as BuildKit names auth secrets.
    host: String,
    filename: String,
    perm: u32,
    checksum: Option<Digest>,
    /// The download made while computing the cache key, used by `exec`.
    resolved: Mutex<Option<Fetched>>,
}

impl HttpOp {
    /// Reads the source op's URL and attributes.
    pub(super) fn new(
        inner: &Arc<Inner>,
        session: &Arc<Session>,
        source: &pb::SourceOp,
    ) -> Result<HttpOp, HttpError> {
        let url = source.identifier.clone();
        let invalid = |reason: String| HttpError::Invalid {
            url: redact(&url),
            reason,
        };
        let parsed = reqwest::Url::parse(&url).map_err(|e| invalid(e.to_string()))?;
        let checksum = source
            .attrs
            .get(llb::attr::HTTP_CHECKSUM)
            .map(|c| c.parse::<Digest>().map_err(|e| invalid(e.to_string())))
            .transpose()?;
        let perm = match source.attrs.get(llb::attr::HTTP_PERM) {
            None => DEFAULT_PERM,
            Some(text) => match parse_perm(text) {
                Some(0) => DEFAULT_PERM,
                Some(p) => p,
                None => return Err(invalid(format!("invalid permissions {text:?}"))),
            },
        };
        let filename = match source.attrs.get(llb::attr::HTTP_FILENAME) {
            Some(name) if !name.is_empty() => safe_file_name(name),
            _ => safe_file_name(&percent_decode(parsed.path())),
        };
        let host = parsed
            .host_str()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Ok(HttpOp {
            inner: inner.clone(),
            session: session.clone(),
            url,
            host,
            filename,
            perm,
            checksum,
            resolved: Mutex::new(None),
        })
    }

    /// Identifies the download's destination, as BuildKit's URL hash: the same URL saved under
    /// another name or mode is another download.
    fn memo_key(&self) -> Digest {
        Digest::of(format!("{}\0{}\0{:o}", self.url, self.filename, self.perm).as_bytes())
    }

    /// The `Authorization` header the build's secrets give this URL's host, if any.
    fn authorization(&self) -> Result<Option<HeaderValue>, HttpError> {
        let names = [
            (format!("HTTP_AUTH_HEADER_{}", self.host), ""),
            (format!("HTTP_AUTH_TOKEN_{}", self.host), "Bearer "),
        ];
        let mut found = None;
        for (name, prefix) in names {
            let value = super::secrets::value(&self.session, &name).map_err(|e| HttpError::Auth {
                url: redact(&self.url),
                message: e.to_string(),
            })?;
            let Some(value) = value else { continue };
            let mut bytes = prefix.as_bytes().to_vec();
            bytes.extend_from_slice(&value);
            let mut header = HeaderValue::from_bytes(&bytes).map_err(|_| HttpError::Auth {
                url: redact(&self.url),
                message: format!("secret {name} is not a valid HTTP header value"),
            })?;
            header.set_sensitive(true);
            found = Some(header);
        }
        Ok(found)
    }

    /// Downloads the URL into the content store, revalidating an earlier download when
    /// `conditional`. Verifies the checksum when there is one.
    async fn fetch(&self, ctx: &Context, conditional: bool) -> Result<Fetched, HttpError> {
        let shown = redact(&self.url);
        let store = &self.inner.store;
        let key = self.memo_key();
        let memo = self
            .inner
            .http
            .remembered(&key)
            .filter(|m| conditional && store.content().contains(&m.digest));
        let request_error = |e: reqwest::Error| HttpError::Request {
            url: shown.clone(),
            message: error_chain(&e),
        };
        let mut request = self.inner.http.client()?.get(&self.url);
        if let Some(authorization) = self.authorization()? {
            request = request.header(AUTHORIZATION, authorization);
        }
        if let Some(memo) = &memo {
            if let Some(etag) = &memo.etag {
                request = request.header(IF_NONE_MATCH, etag);
            }
            if let Some(last_modified) = &memo.last_modified {
                request = request.header(IF_MODIFIED_SINCE, last_modified);
            }
        }
        ctx.status(format!("downloading {shown}"));
        let mut response = request.send().await.map_err(request_error)?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_MODIFIED
            && let Some(memo) = memo
        {
            ctx.status(format!("{shown} not modified"));
            return Ok(Fetched {
                digest: memo.digest,
                last_modified: memo.last_modified,
            });
        }
        if !status.is_success() {
            return Err(HttpError::Status {
                url: shown,
                status: status.as_u16(),
            });
        }
        let etag = header(response.headers(), ETAG.as_str());
        let last_modified = header(response.headers(), LAST_MODIFIED.as_str());
        let store_error = |source| HttpError::Store {
            url: shown.clone(),
            source,
        };
        let mut ingest = store.content().ingest().map_err(store_error)?;
        while let Some(chunk) = response.chunk().await.map_err(request_error)? {
            ingest.write_all(&chunk).map_err(|e| HttpError::Request {
                url: shown.clone(),
                message: format!("failed to write to the content store: {e}"),
            })?;
        }
        ctx.status(format!(
            "downloaded {}",
            crate::pull::human_size(ingest.written())
        ));
        let expected = self.checksum.clone();
        let digest = tokio::task::spawn_blocking(move || ingest.commit(expected.as_ref()))
            .await
            .map_err(|e| HttpError::Request {
                url: shown.clone(),
                message: format!("internal task failed: {e}"),
            })?
            .map_err(|e| match e {
                store::Error::DigestMismatch { expected, actual } => HttpError::DigestMismatch {
                    url: shown.clone(),
                    expected,
                    actual,
                },
                other => store_error(other),
            })?;
        if etag.is_some() || last_modified.is_some() {
            self.inner.http.remember(
                key,
                Memo {
                    etag,
                    last_modified: last_modified.clone(),
                    digest: digest.clone(),
                },
            );
        }
        Ok(Fetched {
            digest,
            last_modified,
        })
    }

    /// The cache key of the file `digest` with mtime `last_modified`, as this op saves it.
    fn cache_key(&self, digest: &Digest, last_modified: Option<&str>) -> Digest {
        let text = format!(
            "http\nfilename={}\nperm={:o}\nuid=0\ngid=0\nchecksum={digest}\nlast-modified={}\n",
            self.filename,
            self.perm,
            last_modified.unwrap_or("")
        );
        Digest::of(text.as_bytes())
    }
}

impl Op<Ref> for HttpOp {
    fn resource(&self) -> solver::Resource {
        // Mostly waiting: on a container, a registry or a server.
        solver::Resource::External
    }

    fn cache_map<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Result<CacheMap<Ref>, OpError>> {
        Box::pin(async move {
            let (digest, content) = match &self.checksum {
                // A pinned download is identified by its checksum: no network needed.
                Some(checksum) => (self.cache_key(checksum, None), checksum.to_string()),
                None => {
                    let fetched = self.fetch(ctx, true).await.map_err(op_error)?;
                    let key = self.cache_key(&fetched.digest, fetched.last_modified.as_deref());
                    let content = fetched.digest.to_string();
                    *self.resolved.lock().unwrap_or_else(|e| e.into_inner()) = Some(fetched);
                    (key, content)
                }
            };
            Ok(CacheMap {
                digest,
                deps: Vec::new(),
                cacheable: true,
                facts: vec![("downloaded content".into(), content)],
            })
        })
    }

    fn exec<'a>(&'a self, ctx: &'a Context, _inputs: Vec<Ref>) -> BoxFuture<'a, Result<Vec<Ref>, OpError>> {
        Box::pin(async move {
            let resolved = self.resolved.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let fetched = match resolved {
                Some(f) => f,
                None => {
                    // A pinned blob already in the content store is the right content whatever
                    // served it; reuse it when this engine knows its `Last-Modified` too.
                    let known = self.checksum.as_ref().and_then(|c| {
                        self.inner
                            .http
                            .remembered(&self.memo_key())
                            .filter(|m| &m.digest == c && self.inner.store.content().contains(c))
                    });
                    match known {
                        Some(memo) => Fetched {
                            digest: memo.digest,
                            last_modified: memo.last_modified,
                        },
                        None => self.fetch(ctx, false).await.map_err(op_error)?,
                    }
                }
            };
            let store = self.inner.store.clone();
            let file = FileSpec {
                url: redact(&self.url),
                name: self.filename.clone(),
                perm: self.perm,
                mtime: fetched
                    .last_modified
                    .as_deref()
                    .and_then(parse_http_date)
                    .unwrap_or(0),
            };
            let id = tokio::task::spawn_blocking(move || write_snapshot(&store, &fetched.digest, &file))
                .await
                .map_err(join_error)?
                .map_err(op_error)?;
            Ok(vec![Ref::Snapshot(id)])
        })
    }
}

/// The file an HTTP source produces.
struct FileSpec {
    url: String,
    name: String,
    perm: u32,
    mtime: i64,
}

/// Creates a snapshot holding only the blob `digest` as `/<name>`.
fn write_snapshot(store: &Store, digest: &Digest, file: &FileSpec) -> Result<SnapshotId, HttpError> {
    let store_error = |source| HttpError::Store {
        url: file.url.clone(),
        source,
    };
    let active = store
        .prepare(None, &format!("http {}", file.url))
        .map_err(store_error)?;
    // A fresh snapshot without a parent is an empty directory of ours: nothing in it can be a
    // symlink, and the name is a single safe component.
    let path = active.layer_dir().join(&file.name);
    let write_error = |action| {
        let path = path.clone();
        move |source| HttpError::Write {
            url: file.url.clone(),
            action,
            path,
            source,
        }
    };
    let mut source = store.content().open_blob(digest).map_err(store_error)?;
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(file.perm)
        .open(&path)
        .map_err(write_error("create"))?;
    io::copy(&mut source, &mut out).map_err(write_error("write"))?;
    // The mode given at creation went through the umask.
    out.set_permissions(fs::Permissions::from_mode(file.perm))
        .map_err(write_error("chmod"))?;
    std::os::unix::fs::fchown(&out, Some(0), Some(0)).map_err(write_error("chown"))?;
    let time = if file.mtime >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(file.mtime.unsigned_abs())
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(file.mtime.unsigned_abs())
    };
    out.set_times(FileTimes::new().set_accessed(time).set_modified(time))
        .map_err(write_error("set times of"))?;
    drop(out);
    Ok(active.commit().map_err(store_error)?.id)
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// An error and its causes, as one line: reqwest's own message rarely says what went wrong.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The URL with any user name and password replaced, for messages and descriptions.
fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("xxxxx");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        _ => url.to_string(),
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

/// A single, harmless file name from a name or URL path: its last component, or
/// [`UNNAMED`] when that is empty, `.` or `..`.
fn safe_file_name(name: &str) -> String {
    match name.rsplit('/').find(|c| !c.is_empty()) {
        None | Some(".") | Some("..") => UNNAMED.to_string(),
        Some(last) => last.replace('\0', ""),
    }
}

/// Decodes `%XX` escapes of a URL path (invalid ones stay as they are).
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Parses an HTTP date (RFC 9110: IMF-fixdate, and the obsolete RFC 850 and asctime forms)
/// into Unix seconds.
fn parse_http_date(text: &str) -> Option<i64> {
    let text = text.trim();
    let (day, month, year, time) = if let Some((_, rest)) = text.split_once(", ") {
        let parts: Vec<&str> = rest.split_whitespace().collect();
        match parts.as_slice() {
            // IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
            [day, month, year, time, "GMT"] => (*day, *month, year.parse::<i64>().ok()?, *time),
            // RFC 850: `Sunday, 06-Nov-94 08:49:37 GMT`.
            [date, time, "GMT"] => {
                let mut d = date.split('-');
                let (day, month, year) = (d.next()?, d.next()?, d.next()?);
                let year: i64 = year.parse().ok()?;
                (
                    day,
                    month,
                    if year < 70 { 2000 + year } else { 1900 + year },
                    *time,
                )
            }
            _ => return None,
        }
    } else {
        // asctime: `Sun Nov  6 08:49:37 1994`.
        let parts: Vec<&str> = text.split_whitespace().collect();
        match parts.as_slice() {
            [_, month, day, time, year] => (*day, *month, year.parse::<i64>().ok()?, *time),
            _ => return None,
        }
    };
    let day: i64 = day.parse().ok()?;
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let mut hms = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_parse_in_all_three_forms() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(784_111_777));
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Mon, 01 Jan 2024 00:00:00 GMT"),
            Some(1_704_067_200)
        );
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2000 12:00:00 GMT"),
            Some(951_825_600)
        );
        assert_eq!(parse_http_date("yesterday"), None);
        assert_eq!(parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 25:49:37 GMT"), None);
    }

    #[test]
    fn file_names_are_single_components() {
        assert_eq!(safe_file_name("/dir/file.tar.gz"), "file.tar.gz");
        assert_eq!(safe_file_name("/dir/"), "dir");
        assert_eq!(safe_file_name("/"), UNNAMED);
        assert_eq!(safe_file_name(""), UNNAMED);
        assert_eq!(safe_file_name("../.."), UNNAMED);
        assert_eq!(safe_file_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_file_name(&percent_decode("/a/my%20file%2")), "my file%2");
    }

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

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(
            redact("https://user:secret@example.com/f"),
            "https://xxxxx@example.com/f"
        );
        assert_eq!(redact("https://example.com/f"), "https://example.com/f");
    }
}

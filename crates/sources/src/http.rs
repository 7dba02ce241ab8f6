//! HTTP(S) sources (`ADD https://…`): one downloaded file in a snapshot of its own.
//!
//! A request ([`HttpSource`]) names the URL, the file (default the last path segment of the
//! URL, or `__unnamed__`), its permission bits (default 0600) and optionally the expected
//! content digest. The result holds exactly `/<filename>`, owned by 0:0, with its mtime from
//! the `Last-Modified` header (the epoch when there is none), as BuildKit makes it.
//!
//! Cache keys follow BuildKit (the engine computes them from what is resolved here): with a
//! checksum the key is derived from it without any network access (the download happens only
//! on a miss, and is verified); without one the file is downloaded while computing the key
//! ([`Download::resolve`], into the content store) and the key covers its digest and
//! `Last-Modified`. Downloads are remembered per URL (ETag, `Last-Modified`, digest) for the
//! life of the engine ([`HttpState`]), so the next build revalidates with
//! `If-None-Match`/`If-Modified-Since` and a `304 Not Modified` reuses the stored blob without
//! transferring it again.
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

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, FileTimes, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use oci::Digest;
use reqwest::header::{
    AUTHORIZATION, ETAG, HeaderMap, HeaderValue, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
};
use store::{SnapshotId, Store};
use tokio::task::JoinError;

use crate::ingest::{BlobWriter, IngestError};
use crate::progress::{Progress, human_size};
use crate::secrets::{self, SecretError, Secrets};

/// The file name used when neither the request nor the URL give one, as BuildKit's.
const UNNAMED: &str = "__unnamed__";
/// Permission bits of the downloaded file when the request gives none, as BuildKit's.
const DEFAULT_PERM: u32 = 0o600;

/// Errors of HTTP sources. URLs in messages have their credentials redacted; causes are
/// `source()`s.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL does not parse.
    #[error("invalid http source {url}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: url::ParseError,
    },
    /// The expected checksum is no digest.
    #[error("invalid http source {url}: invalid checksum")]
    InvalidChecksum {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: oci::DigestError,
    },
    /// Another part of the request is malformed.
    #[error("invalid http source {url}: {reason}")]
    Invalid {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("failed to set up the http client")]
    Client(#[source] registry::Error),
    /// The request failed before a response arrived, or the body could not be read.
    #[error("failed to download {url}")]
    Request {
        /// The URL.
        url: String,
        /// Why (without the URL, which this error names already).
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error status.
    #[error("invalid response status {status} for {url}")]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The content does not have the digest the build pinned.
    #[error("digest mismatch for {url}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The URL.
        url: String,
        /// The pinned digest.
        expected: Digest,
        /// The digest of the content.
        actual: Digest,
    },
    /// The download could not be stored.
    #[error("failed to store the download of {url}")]
    Store {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: store::Error,
    },
    /// An authentication secret could not be read.
    #[error("failed to authenticate to {url}")]
    Secret {
        /// The URL.
        url: String,
        /// The provider's error, naming the secret.
        #[source]
        source: SecretError,
    },
    /// An authentication secret is no header value.
    #[error("failed to authenticate to {url}: secret {name} is not a valid HTTP header value")]
    InvalidSecret {
        /// The URL.
        url: String,
        /// The secret's id.
        name: String,
    },
    /// The result file could not be written.
    #[error("failed to {action} {path} for {url}")]
    Write {
        /// The URL.
        url: String,
        /// What was being done.
        action: &'static str,
        /// To what.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A blocking task of the download failed.
    #[error("internal task failed while downloading {url}")]
    Task {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: JoinError,
    },
}

/// What one engine remembers about HTTP sources: the client and the validators of earlier
/// downloads, keyed by the URL's identity (URL, file name and permissions).
#[derive(Default)]
pub struct HttpState {
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

/// A download as a build asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpSource {
    /// The `http://` or `https://` URL (it may carry credentials; messages never show them).
    pub url: String,
    /// The file's name in the result; `None` or empty: the last segment of the URL's path.
    pub filename: Option<String>,
    /// The file's permission bits (at most 0o7777); `None` or 0: 0600.
    pub perm: Option<u32>,
    /// The digest the content must have.
    pub checksum: Option<Digest>,
}

/// A downloaded file: its blob in the content store and its `Last-Modified` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The content's digest (its blob is in the content store).
    pub digest: Digest,
    /// The server's `Last-Modified`, as sent.
    pub last_modified: Option<String>,
}

/// Where a download runs: the engine's [`HttpState`] and store, the build's secrets, and the
/// step's status lines.
#[derive(Clone, Copy)]
pub struct HttpContext<'a> {
    /// What the engine remembers of earlier downloads.
    pub state: &'a HttpState,
    /// Where blobs and the result snapshot go.
    pub store: &'a Arc<Store>,
    /// The build's secrets, for authentication.
    pub secrets: &'a Arc<dyn Secrets>,
    /// The step's status lines.
    pub progress: &'a dyn Progress,
}

/// A checked [`HttpSource`], with BuildKit's defaults applied.
#[derive(Clone, Debug)]
pub struct Download {
    url: String,
    /// The URL with credentials redacted, for messages.
    shown: String,
    /// The URL's host without port or brackets, as BuildKit names auth secrets.
    host: String,
    filename: String,
    perm: u32,
    checksum: Option<Digest>,
}

impl Download {
    /// Checks `source` and fills in its defaults.
    pub fn new(source: HttpSource) -> Result<Download, HttpError> {
        let shown = redact(&source.url);
        let parsed = reqwest::Url::parse(&source.url).map_err(|e| HttpError::InvalidUrl {
            url: shown.clone(),
            source: e,
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(HttpError::Invalid {
                url: shown,
                reason: format!("unsupported scheme {:?}", parsed.scheme()),
            });
        }
        let perm = match source.perm {
            None | Some(0) => DEFAULT_PERM,
            Some(p) if p <= 0o7777 => p,
            Some(p) => {
                return Err(HttpError::Invalid {
                    url: shown,
                    reason: format!("invalid permissions {p:o}"),
                });
            }
        };
        let filename = match &source.filename {
            Some(name) if !name.is_empty() => safe_file_name(name),
            _ => safe_file_name(&percent_decode(parsed.path())),
        };
        let host = parsed
            .host_str()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Ok(Download {
            url: source.url,
            shown,
            host,
            filename,
            perm,
            checksum: source.checksum,
        })
    }

    /// The URL with any credentials redacted.
    pub fn shown_url(&self) -> &str {
        &self.shown
    }

    /// The name of the file in the result.
    pub fn filename(&self) -> &str {
        &self.filename
    }

    /// The permission bits of the file in the result.
    pub fn perm(&self) -> u32 {
        self.perm
    }

    /// The digest the content must have, if pinned.
    pub fn checksum(&self) -> Option<&Digest> {
        self.checksum.as_ref()
    }

    /// Identifies the download's destination, as BuildKit's URL hash: the same URL saved under
    /// another name or mode is another download.
    fn memo_key(&self) -> Digest {
        Digest::of(format!("{}\0{}\0{:o}", self.url, self.filename, self.perm).as_bytes())
    }

    /// The secrets that may authenticate this URL, with the prefix of their header value.
    fn auth_secrets(&self) -> [(String, &'static str); 2] {
        [
            (format!("HTTP_AUTH_HEADER_{}", self.host), ""),
            (format!("HTTP_AUTH_TOKEN_{}", self.host), "Bearer "),
        ]
    }

    /// The names of the secrets that may authenticate this URL: what a download depends on
    /// besides the URL (the engine salts authenticated downloads with their values).
    pub fn secret_names(&self) -> BTreeSet<String> {
        self.auth_secrets().into_iter().map(|(name, _)| name).collect()
    }

    /// The `Authorization` header the build's secrets give this URL's host, if any.
    async fn authorization(&self, secrets: &Arc<dyn Secrets>) -> Result<Option<HeaderValue>, HttpError> {
        let wanted = self.auth_secrets();
        let names = wanted.iter().map(|(name, _)| name.clone()).collect();
        let values = secrets::read(secrets, names).await.map_err(|e| match e {
            secrets::ReadError::Secret(source) => HttpError::Secret {
                url: self.shown.clone(),
                source,
            },
            secrets::ReadError::Task(source) => self.task_error(source),
        })?;
        let mut found = None;
        for ((name, value), (_, prefix)) in values.into_iter().zip(wanted) {
            let Some(value) = value else { continue };
            let mut bytes = prefix.as_bytes().to_vec();
            bytes.extend_from_slice(&value);
            let mut header = HeaderValue::from_bytes(&bytes).map_err(|_| HttpError::InvalidSecret {
                url: self.shown.clone(),
                name,
            })?;
            header.set_sensitive(true);
            found = Some(header);
        }
        Ok(found)
    }

    fn task_error(&self, source: JoinError) -> HttpError {
        HttpError::Task {
            url: self.shown.clone(),
            source,
        }
    }

    /// Whether the blob `digest` is in the content store.
    async fn stored(&self, store: &Arc<Store>, digest: &Digest) -> Result<bool, HttpError> {
        let (store, digest) = (store.clone(), digest.clone());
        tokio::task::spawn_blocking(move || store.content().contains(&digest))
            .await
            .map_err(|e| self.task_error(e))
    }

    /// Downloads the URL (revalidating an earlier download of this engine) to compute a cache
    /// key: the content's digest and `Last-Modified`.
    pub async fn resolve(&self, cx: HttpContext<'_>) -> Result<Fetched, HttpError> {
        self.download(cx, true).await
    }

    /// The file for the result: a pinned blob this engine downloaded before (the right
    /// content, whatever served it), or a fresh download.
    pub async fn fetch(&self, cx: HttpContext<'_>) -> Result<Fetched, HttpError> {
        if let Some(checksum) = &self.checksum
            && let Some(memo) = cx.state.remembered(&self.memo_key())
            && &memo.digest == checksum
            && self.stored(cx.store, checksum).await?
        {
            return Ok(Fetched {
                digest: memo.digest,
                last_modified: memo.last_modified,
            });
        }
        self.download(cx, false).await
    }

    /// Downloads the URL into the content store, revalidating an earlier download when
    /// `conditional`. Verifies the checksum when there is one.
    async fn download(&self, cx: HttpContext<'_>, conditional: bool) -> Result<Fetched, HttpError> {
        let key = self.memo_key();
        let memo = match cx.state.remembered(&key) {
            Some(memo) if conditional && self.stored(cx.store, &memo.digest).await? => Some(memo),
            _ => None,
        };
        let request_error = |e: reqwest::Error| HttpError::Request {
            url: self.shown.clone(),
            source: e.without_url(),
        };
        let mut request = cx.state.client()?.get(&self.url);
        if let Some(authorization) = self.authorization(cx.secrets).await? {
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
        cx.progress.status(format!("downloading {}", self.shown));
        let mut response = request.send().await.map_err(request_error)?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_MODIFIED
            && let Some(memo) = memo
        {
            cx.progress.status(format!("{} not modified", self.shown));
            return Ok(Fetched {
                digest: memo.digest,
                last_modified: memo.last_modified,
            });
        }
        if !status.is_success() {
            return Err(HttpError::Status {
                url: self.shown.clone(),
                status: status.as_u16(),
            });
        }
        let etag = header(response.headers(), ETAG.as_str());
        let last_modified = header(response.headers(), LAST_MODIFIED.as_str());
        let ingest_error = |e| match e {
            IngestError::Store(store::Error::DigestMismatch { expected, actual }) => {
                HttpError::DigestMismatch {
                    url: self.shown.clone(),
                    expected,
                    actual,
                }
            }
            IngestError::Store(source) => HttpError::Store {
                url: self.shown.clone(),
                source,
            },
            IngestError::Task(source) => self.task_error(source),
        };
        let mut writer = BlobWriter::start(cx.store.clone());
        let mut size = 0;
        while let Some(chunk) = response.chunk().await.map_err(request_error)? {
            size += chunk.len() as u64;
            writer.write(chunk).await.map_err(ingest_error)?;
        }
        cx.progress.status(format!("downloaded {}", human_size(size)));
        let digest = writer.commit(self.checksum.clone()).await.map_err(ingest_error)?;
        if etag.is_some() || last_modified.is_some() {
            let memo = Memo {
                etag,
                last_modified: last_modified.clone(),
                digest: digest.clone(),
            };
            cx.state.remember(key, memo);
        }
        Ok(Fetched {
            digest,
            last_modified,
        })
    }

    /// Makes the result: a snapshot holding only the blob of `fetched` as `/<filename>`.
    pub async fn snapshot(&self, store: &Arc<Store>, fetched: &Fetched) -> Result<SnapshotId, HttpError> {
        let store = store.clone();
        let file = FileSpec {
            url: self.shown.clone(),
            name: self.filename.clone(),
            perm: self.perm,
            mtime: fetched
                .last_modified
                .as_deref()
                .and_then(parse_http_date)
                .unwrap_or(0),
        };
        let digest = fetched.digest.clone();
        tokio::task::spawn_blocking(move || write_snapshot(&store, &digest, &file))
            .await
            .map_err(|e| self.task_error(e))?
    }
}

/// The file an HTTP source produces.
struct FileSpec {
    url: String,
    name: String,
    perm: u32,
    mtime: i64,
}

/// Creates a snapshot holding only the blob `digest` as `/<name>`. Blocking.
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

/// The URL with any user name and password replaced, for messages and descriptions.
pub fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("xxxxx");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        _ => url.to_string(),
    }
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
    fn credentials_are_redacted() {
        assert_eq!(
            redact("https://user:secret@example.com/f"),
            "https://xxxxx@example.com/f"
        );
        assert_eq!(redact("https://example.com/f"), "https://example.com/f");
    }
}

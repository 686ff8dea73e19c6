//! HTTP downloads: ADD of a URL and a cluster build's tarball source. The body is streamed
//! (into memory for ADD, into a file for a tarball) and hashed as it arrives, checked against
//! `--checksum=sha256:...` when given, named after the last path segment and dated from
//! Last-Modified as Docker does. TLS goes through rustls with the system's roots, or
//! `SSL_CERT_FILE`. Transient failures are retried from the start.
//!
//! What a server (or whoever wrote the URL) cannot make a download do: follow more than
//! [`MAX_REDIRECTS`] redirects, or one from https to plain http; stall a connection or a
//! read past [`CONNECT_TIMEOUT`] / [`READ_TIMEOUT`]; send more than the size limit (the
//! pod's `--size-limit`, [`set_size_limit`]). URLs are shown without user information.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::Retryable;
use sha2::{Digest, Sha256};
use slipway_contract::size::Size;
use slipway_contract::url::redacted;
use tokio::io::AsyncWriteExt;

use crate::fs::{PathError, at};
use crate::net::retry;
use crate::net::{NoCaCertificates, RuntimeError};

/// Redirects one download follows at most (curl's and Go's default is more; a download
/// needs one or two).
pub const MAX_REDIRECTS: usize = 5;
/// How long a connection may take to open, and a read to bring anything.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
pub const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// The process's size limit for [`download`] (`ADD <url>`); the pod's `--size-limit`.
static SIZE_LIMIT: AtomicU64 = AtomicU64::new(Size::DEFAULT_LIMIT.0);

/// Sets the most [`download`] takes in (the pod's `--size-limit`, set once at start).
pub fn set_size_limit(limit: Size) {
    SIZE_LIMIT.store(limit.0, Ordering::Relaxed);
}

/// The most [`download`] takes in.
pub fn size_limit() -> Size {
    Size(SIZE_LIMIT.load(Ordering::Relaxed))
}

/// A download held in memory.
pub struct Download {
    pub data: Vec<u8>,
    pub file_name: String,
    pub mtime: Option<filetime::FileTime>,
}

/// A download written to a file.
pub struct Downloaded {
    pub file_name: String,
    pub mtime: Option<filetime::FileTime>,
}

/// Why a download failed; every message names the URL.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("{url}: {source}")]
    Tls {
        url: String,
        #[source]
        source: NoCaCertificates,
    },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("{url}: {source}")]
    Client {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The request or the body failed.
    #[error("GET {url}: {source}")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GET {url}: HTTP {status}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
    /// The body (or its announced length) is over the size limit.
    #[error("GET {url}: larger than the size limit of {limit}")]
    TooLarge { url: String, limit: Size },
    /// A redirect that is not followed.
    #[error("GET {url}: redirect to {to}: {problem}")]
    Redirect {
        url: String,
        to: String,
        problem: RedirectProblem,
    },
    #[error("{url}: {source}")]
    Checksum {
        url: String,
        #[source]
        source: ChecksumError,
    },
    #[error(transparent)]
    Write(#[from] PathError),
}

impl DownloadError {
    /// Worth another try (see [`retry`]).
    pub fn transient(&self) -> bool {
        match self {
            DownloadError::Request { source, .. } => retry::transient_reqwest(source),
            DownloadError::Status { status, .. } => retry::transient_status(status.as_u16()),
            _ => false,
        }
    }
}

/// Why a redirect is not followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RedirectProblem {
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooMany,
    #[error("from https to plain http")]
    Downgrade,
    #[error("not an http(s) URL")]
    Scheme,
    #[error("no valid Location")]
    NoLocation,
}

/// Whether the `hops`-th redirect, from `from` to `to`, is followed.
pub fn check_redirect(
    from: &reqwest::Url,
    to: &reqwest::Url,
    hops: usize,
) -> Result<(), RedirectProblem> {
    if hops > MAX_REDIRECTS {
        return Err(RedirectProblem::TooMany);
    }
    match (from.scheme(), to.scheme()) {
        ("https", "http") => Err(RedirectProblem::Downgrade),
        (_, "https" | "http") => Ok(()),
        _ => Err(RedirectProblem::Scheme),
    }
}

/// A `--checksum` that is not supported or does not match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumError {
    #[error("unsupported checksum {0:?}: expected sha256:<64 hex digits>")]
    Unsupported(String),
    #[error("checksum mismatch: expected sha256:{want}, got sha256:{got}")]
    Mismatch { want: String, got: String },
}

/// The file name Docker gives a URL: the last path segment, else `download`.
pub fn url_file_name(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    let path = no_query
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(no_query);
    match path.split_once('/') {
        Some((_, p)) => p
            .rsplit('/')
            .find(|s| !s.is_empty())
            .unwrap_or("download")
            .to_string(),
        None => "download".into(),
    }
}

/// Checks `sha256:<hex>` against the data.
pub fn verify_checksum(data: &[u8], checksum: &str) -> Result<(), ChecksumError> {
    verify_hex(&hex::encode(Sha256::digest(data)), checksum)
}

/// Checks `sha256:<hex>` against the hex sha256 of what was downloaded.
fn verify_hex(got: &str, checksum: &str) -> Result<(), ChecksumError> {
    let Some(want) = checksum.strip_prefix("sha256:") else {
        return Err(ChecksumError::Unsupported(checksum.to_string()));
    };
    if got != want.to_lowercase() {
        return Err(ChecksumError::Mismatch {
            want: want.to_string(),
            got: got.to_string(),
        });
    }
    Ok(())
}

/// Downloads `url` into memory, at most the process's [`size_limit`].
pub fn download(url: &str, checksum: Option<&str>) -> Result<Download, DownloadError> {
    let client = client(url)?;
    let limit = size_limit();
    let (data, got) = crate::net::block_on(
        (|| async { fetch(&client, url, Vec::new(), limit).await })
            .retry(retry::policy())
            .when(DownloadError::transient)
            .notify(|e, d| retry::notice(e, d)),
    )??;
    got.check(url, checksum)?;
    Ok(Download {
        data,
        file_name: url_file_name(url),
        mtime: got.mtime(),
    })
}

/// Downloads `url` into the file `dest` (made or truncated), never holding it in memory,
/// at most `limit` bytes.
pub fn download_to(
    url: &str,
    checksum: Option<&str>,
    dest: &Path,
    limit: Size,
) -> Result<Downloaded, DownloadError> {
    let client = client(url)?;
    let (_, got) = crate::net::block_on(
        (|| async {
            let file = tokio::fs::File::create(dest).await.map_err(at(dest))?;
            let sink = FileSink {
                file,
                path: dest.to_path_buf(),
            };
            fetch(&client, url, sink, limit).await
        })
        .retry(retry::policy())
        .when(DownloadError::transient)
        .notify(|e, d| retry::notice(e, d)),
    )??;
    got.check(url, checksum)?;
    Ok(Downloaded {
        file_name: url_file_name(url),
        mtime: got.mtime(),
    })
}

/// A client that follows no redirect itself ([`fetch`] does, by [`check_redirect`]), with
/// connect and read timeouts.
fn client(url: &str) -> Result<reqwest::Client, DownloadError> {
    crate::net::ensure_crypto_provider();
    crate::net::check_ca_certificates().map_err(|source| DownloadError::Tls {
        url: redacted(url).into_owned(),
        source,
    })?;
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .build()
        .map_err(|source| DownloadError::Client {
            url: redacted(url).into_owned(),
            source,
        })
}

/// Where a body goes as it arrives.
trait Sink {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), DownloadError>;
    async fn finish(&mut self) -> Result<(), DownloadError>;
}

impl Sink for Vec<u8> {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), DownloadError> {
        self.extend_from_slice(chunk);
        Ok(())
    }
    async fn finish(&mut self) -> Result<(), DownloadError> {
        Ok(())
    }
}

struct FileSink {
    file: tokio::fs::File,
    path: PathBuf,
}

impl Sink for FileSink {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), DownloadError> {
        Ok(self.file.write_all(chunk).await.map_err(at(&self.path))?)
    }
    async fn finish(&mut self) -> Result<(), DownloadError> {
        Ok(self.file.flush().await.map_err(at(&self.path))?)
    }
}

/// What a finished GET tells besides its body.
struct Fetched {
    sha256_hex: String,
    last_modified: Option<String>,
}

impl Fetched {
    fn check(&self, url: &str, checksum: Option<&str>) -> Result<(), DownloadError> {
        match checksum {
            Some(c) => verify_hex(&self.sha256_hex, c).map_err(|source| DownloadError::Checksum {
                url: redacted(url).into_owned(),
                source,
            }),
            None => Ok(()),
        }
    }
    fn mtime(&self) -> Option<filetime::FileTime> {
        self.last_modified.as_deref().and_then(parse_http_date)
    }
}

/// The response to a GET of `url`, its redirects followed by [`check_redirect`].
async fn get(client: &reqwest::Client, url: &str) -> Result<reqwest::Response, DownloadError> {
    let shown = redacted(url).into_owned();
    let request = |source| DownloadError::Request {
        url: shown.clone(),
        source,
    };
    let mut current = url.to_string();
    let mut hops = 0;
    loop {
        hops += 1;
        let resp = client.get(&current).send().await.map_err(request)?;
        if !resp.status().is_redirection() {
            return Ok(resp);
        }
        let to = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| resp.url().join(l).ok());
        let refuse = |to: String, problem| DownloadError::Redirect {
            url: shown.clone(),
            to,
            problem,
        };
        let Some(to) = to else {
            return Err(refuse(String::new(), RedirectProblem::NoLocation));
        };
        check_redirect(resp.url(), &to, hops)
            .map_err(|p| refuse(redacted(to.as_str()).into_owned(), p))?;
        current = to.to_string();
    }
}

/// One GET of `url` into `sink`, hashing the body on the way; at most `limit` bytes.
async fn fetch<S: Sink>(
    client: &reqwest::Client,
    url: &str,
    mut sink: S,
    limit: Size,
) -> Result<(S, Fetched), DownloadError> {
    let shown = redacted(url).into_owned();
    let request = |source| DownloadError::Request {
        url: shown.clone(),
        source,
    };
    let too_large = || DownloadError::TooLarge {
        url: shown.clone(),
        limit,
    };
    let mut resp = get(client, url).await?;
    let status = resp.status();
    if !status.is_success() {
        return Err(DownloadError::Status {
            url: shown.clone(),
            status,
        });
    }
    if resp.content_length().is_some_and(|n| n > limit.bytes()) {
        return Err(too_large());
    }
    let last_modified = resp
        .headers()
        .get("last-modified")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut hash = Sha256::new();
    let mut got: u64 = 0;
    while let Some(chunk) = resp.chunk().await.map_err(request)? {
        got += chunk.len() as u64;
        if got > limit.bytes() {
            return Err(too_large());
        }
        hash.update(&chunk);
        sink.write(&chunk).await?;
    }
    sink.finish().await?;
    Ok((
        sink,
        Fetched {
            sha256_hex: hex::encode(hash.finalize()),
            last_modified,
        },
    ))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 7231 IMF-fixdate) as a file time. Hand-written
/// rather than httpdate: that crate (and jiff) refuse a weekday that does not match the date
/// and years before 1970, which this (like Go's `http.ParseTime` in BuildKit) accepts.
pub fn parse_http_date(s: &str) -> Option<filetime::FileTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, mon, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = months.iter().position(|x| x == mon)? as i64 + 1;
    let d: i64 = day.parse().ok()?;
    let y: i64 = year.parse().ok()?;
    let t: Vec<i64> = time.split(':').filter_map(|x| x.parse().ok()).collect();
    let [hh, mm, ss] = t.as_slice() else {
        return None;
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(filetime::FileTime::from_unix_time(
        days * 86400 + hh * 3600 + mm * 60 + ss,
        0,
    ))
}

#[cfg(test)]
#[path = "download_tests.rs"]
mod tests;

//! HTTP downloads: ADD of a URL and a cluster build's tarball source. The body is streamed
//! (into memory for ADD, into a file for a tarball) and hashed as it arrives, checked against
//! `--checksum=sha256:...` when given, named after the last path segment and dated from
//! Last-Modified as Docker does. TLS goes through rustls with the system's roots, or
//! `SSL_CERT_FILE`. Transient failures are retried from the start.

use std::path::{Path, PathBuf};

use backon::Retryable;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::fs::{PathError, at};
use crate::net::retry;
use crate::net::{NoCaCertificates, RuntimeError};

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

/// Downloads `url` into memory.
pub fn download(url: &str, checksum: Option<&str>) -> Result<Download, DownloadError> {
    let client = client(url)?;
    let (data, got) = crate::net::block_on(
        (|| async { fetch(&client, url, Vec::new()).await })
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

/// Downloads `url` into the file `dest` (made or truncated), never holding it in memory.
pub fn download_to(
    url: &str,
    checksum: Option<&str>,
    dest: &Path,
) -> Result<Downloaded, DownloadError> {
    let client = client(url)?;
    let (_, got) = crate::net::block_on(
        (|| async {
            let file = tokio::fs::File::create(dest).await.map_err(at(dest))?;
            let sink = FileSink {
                file,
                path: dest.to_path_buf(),
            };
            fetch(&client, url, sink).await
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

fn client(url: &str) -> Result<reqwest::Client, DownloadError> {
    crate::net::ensure_crypto_provider();
    crate::net::check_ca_certificates().map_err(|source| DownloadError::Tls {
        url: url.to_string(),
        source,
    })?;
    reqwest::Client::builder()
        .build()
        .map_err(|source| DownloadError::Client {
            url: url.to_string(),
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
                url: url.to_string(),
                source,
            }),
            None => Ok(()),
        }
    }
    fn mtime(&self) -> Option<filetime::FileTime> {
        self.last_modified.as_deref().and_then(parse_http_date)
    }
}

/// One GET of `url` into `sink`, hashing the body on the way.
async fn fetch<S: Sink>(
    client: &reqwest::Client,
    url: &str,
    mut sink: S,
) -> Result<(S, Fetched), DownloadError> {
    let request = |source| DownloadError::Request {
        url: url.to_string(),
        source,
    };
    let mut resp = client.get(url).send().await.map_err(request)?;
    let status = resp.status();
    if !status.is_success() {
        return Err(DownloadError::Status {
            url: url.to_string(),
            status,
        });
    }
    let last_modified = resp
        .headers()
        .get("last-modified")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut hash = Sha256::new();
    while let Some(chunk) = resp.chunk().await.map_err(request)? {
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

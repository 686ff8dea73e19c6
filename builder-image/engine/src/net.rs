//! ADD of a URL: the file is downloaded (TLS through rustls with the system's roots, or
//! `SSL_CERT_FILE`), checked against `--checksum=sha256:...` when given, named after the last
//! path segment, and dated from Last-Modified as Docker does. It is never unpacked.

use sha2::{Digest, Sha256};

pub struct Download {
    pub data: Vec<u8>,
    pub file_name: String,
    pub mtime: Option<filetime::FileTime>,
}

/// Installs the process's TLS crypto provider (ring) once.
pub fn ensure_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Where TLS clients find CA certificates on Linux (rustls-native-certs' list, and OpenSSL's
/// variables).
const CA_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/ssl/cert.pem",
];

/// An HTTPS client cannot even be made without CA certificates (the TLS library panics):
/// say so instead.
pub fn check_ca_certificates() -> Result<(), String> {
    let env_set = ["SSL_CERT_FILE", "SSL_CERT_DIR"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|p| std::path::Path::new(&p).exists()));
    if env_set || CA_FILES.iter().any(|f| std::path::Path::new(f).is_file()) {
        return Ok(());
    }
    Err(format!(
        "no CA certificates: none of {} exists and SSL_CERT_FILE is not set",
        CA_FILES.join(", ")
    ))
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
pub fn verify_checksum(data: &[u8], checksum: &str) -> Result<(), String> {
    let Some(want) = checksum.strip_prefix("sha256:") else {
        return Err(format!(
            "unsupported checksum {checksum:?}: expected sha256:<64 hex digits>"
        ));
    };
    let got = hex::encode(Sha256::digest(data));
    if got != want.to_lowercase() {
        return Err(format!(
            "checksum mismatch: expected sha256:{want}, got sha256:{got}"
        ));
    }
    Ok(())
}

pub fn download(url: &str, checksum: Option<&str>) -> Result<Download, String> {
    ensure_crypto_provider();
    check_ca_certificates().map_err(|e| format!("{url}: {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (data, modified) = rt.block_on(async {
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| format!("{url}: {e}"))?;
        let resp = client
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("GET {url}: HTTP {status}"));
        }
        let modified = resp
            .headers()
            .get("last-modified")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = resp.bytes().await.map_err(|e| format!("GET {url}: {e}"))?;
        Ok::<_, String>((bytes.to_vec(), modified))
    })?;
    if let Some(c) = checksum {
        verify_checksum(&data, c).map_err(|m| format!("{url}: {m}"))?;
    }
    Ok(Download {
        data,
        file_name: url_file_name(url),
        mtime: modified.and_then(|m| parse_http_date(&m)),
    })
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 7231 IMF-fixdate) as a file time.
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
mod tests {
    use super::*;

    #[test]
    fn names_checksums_and_dates() {
        assert_eq!(
            url_file_name("https://h/x/y/app.tar.gz?sig=1"),
            "app.tar.gz"
        );
        assert_eq!(url_file_name("https://h/dir/"), "dir");
        assert_eq!(url_file_name("https://h"), "download");
        let hello = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        assert_eq!(verify_checksum(b"hello", hello), Ok(()));
        assert!(verify_checksum(b"hellO", hello).is_err());
        assert!(verify_checksum(b"hello", "md5:abc").is_err());
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").map(|t| t.unix_seconds()),
            Some(784111777)
        );
        assert_eq!(parse_http_date("yesterday"), None);
    }
}

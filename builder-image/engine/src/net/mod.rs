//! The network set-up every step shares: the TLS crypto provider, the check that CA
//! certificates exist, the one blocking runtime the synchronous steps run async I/O on
//! ([`block_on`]), bounded retries of transient failures ([`retry`]), and HTTP downloads
//! ([`download`]).

pub mod download;
pub mod retry;
#[cfg(test)]
pub(crate) mod test_server;

pub use download::{Download, DownloadError, Downloaded, download, download_to};

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

/// No CA certificate bundle could be found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "no CA certificates: none of {} exists and SSL_CERT_FILE is not set",
    CA_FILES.join(", ")
)]
pub struct NoCaCertificates;

/// An HTTPS client cannot even be made without CA certificates (the TLS library panics):
/// say so instead.
pub fn check_ca_certificates() -> Result<(), NoCaCertificates> {
    let env_set = ["SSL_CERT_FILE", "SSL_CERT_DIR"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|p| std::path::Path::new(&p).exists()));
    if env_set || CA_FILES.iter().any(|f| std::path::Path::new(f).is_file()) {
        return Ok(());
    }
    Err(NoCaCertificates)
}

/// The async runtime could not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RuntimeError(#[source] pub std::io::Error);

/// Runs a future to completion on a runtime of its own: how the synchronous steps (prepare,
/// push, a stage's ADD of a URL, local mode) do registry and HTTP I/O. Two workers, so that
/// connections keep making progress while a blob is hashed; must not be called from inside
/// a runtime.
pub fn block_on<F: Future>(fut: F) -> Result<F::Output, RuntimeError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(RuntimeError)?;
    Ok(rt.block_on(fut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_a_future_and_names_missing_certificates() {
        assert_eq!(block_on(async { 1 + 1 }).ok(), Some(2));
        assert_eq!(
            NoCaCertificates.to_string(),
            "no CA certificates: none of /etc/ssl/certs/ca-certificates.crt, \
             /etc/pki/tls/certs/ca-bundle.crt, /etc/ssl/ca-bundle.pem, /etc/pki/tls/cacert.pem, \
             /etc/ssl/cert.pem exists and SSL_CERT_FILE is not set"
        );
    }
}

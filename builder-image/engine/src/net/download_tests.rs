//! Tests of downloads, against a tiny HTTP server on 127.0.0.1 started by each test.

use std::sync::atomic::Ordering;

use super::*;
use crate::net::test_server::{response, serve};
use slipway_contract::size::Size;

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
    let got = hex::encode(Sha256::digest(b"hellO"));
    assert_eq!(
        verify_checksum(b"hellO", hello).map_err(|e| e.to_string()),
        Err(format!(
            "checksum mismatch: expected {hello}, got sha256:{got}"
        ))
    );
    assert_eq!(
        verify_checksum(b"hello", "md5:abc").map_err(|e| e.to_string()),
        Err(r#"unsupported checksum "md5:abc": expected sha256:<64 hex digits>"#.to_string())
    );
    assert_eq!(
        parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").map(|t| t.unix_seconds()),
        Some(784111777)
    );
    assert_eq!(parse_http_date("yesterday"), None);
}

#[test]
fn a_transient_failure_is_retried() {
    let (base, hits) = serve(vec![
        response("503 Service Unavailable", "", "busy"),
        response(
            "200 OK",
            "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n",
            "hello",
        ),
    ]);
    let hello = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    let d = download(&format!("{base}/files/greeting.txt"), Some(hello)).expect("download");
    assert_eq!(d.data, b"hello");
    assert_eq!(d.file_name, "greeting.txt");
    assert_eq!(d.mtime.map(|t| t.unix_seconds()), Some(784111777));
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[test]
fn a_refusal_is_not_retried() {
    let (base, hits) = serve(vec![response("404 Not Found", "", "no")]);
    let url = format!("{base}/missing.tar");
    let e = download(&url, None).err().map(|e| e.to_string());
    assert_eq!(e, Some(format!("GET {url}: HTTP 404 Not Found")));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[test]
fn persistent_failures_give_the_last_error() {
    let (base, hits) = serve(vec![response("502 Bad Gateway", "", "")]);
    let url = format!("{base}/x");
    let e = download(&url, None).err().map(|e| e.to_string());
    assert_eq!(e, Some(format!("GET {url}: HTTP 502 Bad Gateway")));
    assert_eq!(hits.load(Ordering::SeqCst), crate::net::retry::ATTEMPTS);
}

#[test]
fn downloads_stream_into_a_file_and_are_checked() {
    let (base, _) = serve(vec![response("200 OK", "", "hello")]);
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("out");
    let url = format!("{base}/a/b.tgz");
    let d = download_to(&url, None, &dest, Size::DEFAULT_LIMIT).expect("download");
    assert_eq!(d.file_name, "b.tgz");
    assert_eq!(d.mtime, None);
    assert_eq!(std::fs::read(&dest).expect("file"), b"hello");
    let e = download_to(&url, Some("sha256:00"), &dest, Size::DEFAULT_LIMIT)
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e,
        Some(format!(
            "{url}: checksum mismatch: expected sha256:00, got sha256:\
             2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        ))
    );
}

#[test]
fn redirects_are_followed_a_few_times() {
    let (base, hits) = serve(vec![
        response("302 Found", "Location: /next\r\n", ""),
        response("301 Moved Permanently", "Location: /final/name.txt\r\n", ""),
        response("200 OK", "", "hello"),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    download_to(
        &format!("{base}/start"),
        None,
        &dir.path().join("out"),
        Size::DEFAULT_LIMIT,
    )
    .expect("followed");
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    assert_eq!(
        std::fs::read(dir.path().join("out")).expect("file"),
        b"hello"
    );

    // A server that redirects forever is left after MAX_REDIRECTS, with no retry.
    let (base, hits) = serve(vec![response("302 Found", "Location: /again\r\n", "")]);
    let url = format!("{base}/loop");
    let e = download(&url, None).err().map(|e| e.to_string());
    assert_eq!(
        e,
        Some(format!(
            "GET {url}: redirect to {base}/again: more than 5 redirects"
        ))
    );
    assert_eq!(hits.load(Ordering::SeqCst), MAX_REDIRECTS + 1);
}

#[test]
fn a_redirect_never_leaves_https_for_http() {
    let u = |s: &str| reqwest::Url::parse(s).expect("url");
    let secure = u("https://files.example/a.tgz");
    assert_eq!(
        check_redirect(&secure, &u("http://files.example/a.tgz"), 1),
        Err(RedirectProblem::Downgrade)
    );
    assert_eq!(
        check_redirect(&secure, &u("https://cdn.example/a.tgz"), 1),
        Ok(())
    );
    assert_eq!(
        check_redirect(&u("http://h/a"), &u("https://h/a"), 1),
        Ok(())
    );
    assert_eq!(
        check_redirect(&secure, &u("file:///etc/passwd"), 1),
        Err(RedirectProblem::Scheme)
    );
    assert_eq!(
        check_redirect(&secure, &secure, MAX_REDIRECTS + 1),
        Err(RedirectProblem::TooMany)
    );
}

#[test]
fn a_body_over_the_size_limit_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("out");
    // Announced by Content-Length.
    let (base, hits) = serve(vec![response("200 OK", "", "0123456789")]);
    let url = format!("{base}/big.tgz");
    let e = download_to(&url, None, &dest, Size(4))
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e,
        Some(format!("GET {url}: larger than the size limit of 4"))
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1, "not retried");
    // Not announced: counted as it arrives.
    let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
                   5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n"
        .to_string();
    let (base, _) = serve(vec![chunked]);
    let url = format!("{base}/stream.tgz");
    let e = download_to(&url, None, &dest, Size(7))
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e,
        Some(format!("GET {url}: larger than the size limit of 7"))
    );
    assert!(download_to(&url, None, &dest, Size(10)).is_ok());
}

#[test]
fn user_information_never_shows_in_a_message() {
    let (base, _) = serve(vec![response("404 Not Found", "", "")]);
    let url = base.replace("http://", "http://bob:s3cret@");
    let e = download(&format!("{url}/x.tgz"), None)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(!e.contains("s3cret") && !e.contains("bob"), "{e}");
    assert!(e.contains("http://***@127.0.0.1"), "{e}");
}

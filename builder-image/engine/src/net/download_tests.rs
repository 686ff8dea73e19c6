//! Tests of downloads, against a tiny HTTP server on 127.0.0.1 started by each test.

use std::sync::atomic::Ordering;

use super::*;
use crate::net::test_server::{response, serve};

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
    let d = download_to(&url, None, &dest).expect("download");
    assert_eq!(d.file_name, "b.tgz");
    assert_eq!(d.mtime, None);
    assert_eq!(std::fs::read(&dest).expect("file"), b"hello");
    let e = download_to(&url, Some("sha256:00"), &dest)
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

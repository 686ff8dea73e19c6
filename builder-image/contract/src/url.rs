//! What a source URL may be, checked by the operator (before any pod starts) and again by
//! the pod that fetches it, and how a URL is shown. Credentials never travel in a URL: one
//! with `user:token@` would land in the Job's arguments, the pod's logs, the ImageBuild's
//! status and the Events, so it is refused, and any URL printed is printed without its
//! user information.

use std::borrow::Cow;

/// `url` with its user information (`user:password@`) replaced by `***@`, for messages.
/// Only URLs with a scheme (`scheme://`) carry user information this way; scp-like git
/// addresses (`git@host:path`) name a login, not a secret, and are left alone.
pub fn redacted(url: &str) -> Cow<'_, str> {
    match userinfo(url) {
        Some((start, end)) => Cow::Owned(format!("{}***{}", &url[..start], &url[end..])),
        None => Cow::Borrowed(url),
    }
}

/// The byte range of the user information in `scheme://userinfo@host/...`.
fn userinfo(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let rest = &url[start..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    authority.rfind('@').map(|at| (start, start + at))
}

/// The URL's scheme, lowercased (`https`, `http`, `git`, `file`...), if it has one.
pub fn scheme(url: &str) -> Option<String> {
    let (scheme, _) = url.split_once("://")?;
    Some(scheme.to_ascii_lowercase())
}

/// A source URL that is not accepted; the URL shown is already redacted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error(
        "{0}: credentials in the URL are refused (they would show in logs and status): give them as a secret"
    )]
    Credentials(String),
    #[error("{0}: credentials are only sent over https")]
    CredentialsOverHttp(String),
    #[error("{0}: expected an https URL")]
    NotHttps(String),
}

/// A git source URL: no credentials in it, and https when credentials come from a secret
/// (they are never sent over plain http; `git://` and `file://` never ask for them).
pub fn check_git(url: &str, with_credentials: bool) -> Result<(), UrlError> {
    if userinfo(url).is_some() {
        return Err(UrlError::Credentials(redacted(url).into_owned()));
    }
    if with_credentials && scheme(url).as_deref() == Some("http") {
        return Err(UrlError::CredentialsOverHttp(url.to_string()));
    }
    Ok(())
}

/// A tarball source URL: https, without credentials.
pub fn check_tarball(url: &str) -> Result<(), UrlError> {
    if userinfo(url).is_some() {
        return Err(UrlError::Credentials(redacted(url).into_owned()));
    }
    if scheme(url).as_deref() != Some("https") {
        return Err(UrlError::NotHttps(url.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_information_is_never_shown() {
        assert_eq!(
            redacted("https://bob:ghp_secret@git.example/r.git"),
            "https://***@git.example/r.git"
        );
        assert_eq!(
            redacted("https://ghp_secret@git.example"),
            "https://***@git.example"
        );
        // An @ in the path or query is not user information.
        assert_eq!(
            redacted("https://git.example/a@b?c=d@e"),
            "https://git.example/a@b?c=d@e"
        );
        assert_eq!(redacted("https://u:p@h/x?y=z@w"), "https://***@h/x?y=z@w");
        assert_eq!(redacted("git@github.com:o/r.git"), "git@github.com:o/r.git");
        assert_eq!(redacted("/srv/repo"), "/srv/repo");
    }

    #[test]
    fn credentials_stay_out_of_urls_and_off_plain_http() {
        assert_eq!(check_git("https://git.example/r.git", true), Ok(()));
        assert_eq!(check_git("git://10.0.0.1/app", true), Ok(()));
        assert_eq!(check_git("http://git.example/r.git", false), Ok(()));
        let e = check_git("https://bob:tok@git.example/r.git", false).expect_err("refused");
        assert!(!e.to_string().contains("tok"), "{e}");
        assert_eq!(
            e.to_string(),
            "https://***@git.example/r.git: credentials in the URL are refused (they would \
             show in logs and status): give them as a secret"
        );
        assert_eq!(
            check_git("HTTP://git.example/r.git", true),
            Err(UrlError::CredentialsOverHttp(
                "HTTP://git.example/r.git".into()
            ))
        );
        assert_eq!(check_tarball("https://h/c.tgz"), Ok(()));
        assert_eq!(
            check_tarball("http://h/c.tgz").map_err(|e| e.to_string()),
            Err("http://h/c.tgz: expected an https URL".into())
        );
        assert!(matches!(
            check_tarball("https://u:p@h/c.tgz"),
            Err(UrlError::Credentials(u)) if u == "https://***@h/c.tgz"
        ));
    }
}

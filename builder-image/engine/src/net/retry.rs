//! Bounded retries (backon) for network operations: a flaky registry, a rate limit or a
//! server restart should not fail a whole build. Only transient failures are retried
//! (connection errors, timeouts, HTTP 429 and 5xx), never a refusal (401, 403, 404, 405...),
//! and the last attempt's error is returned unchanged.

use std::fmt::Display;
use std::time::Duration;

use backon::ExponentialBuilder;

/// How many times an operation is tried in all.
pub const ATTEMPTS: usize = 3;

/// 200 ms, then 400 ms (each with jitter), capped at 5 s.
pub fn policy() -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(ATTEMPTS - 1)
        .with_jitter()
}

/// An HTTP status worth another try: too many requests, or a server-side failure.
pub fn transient_status(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

/// A reqwest error worth another try: a transient status, or the connection failing
/// (refused, reset, timed out, cut mid-body).
pub fn transient_reqwest(e: &reqwest::Error) -> bool {
    match e.status() {
        Some(s) => transient_status(s.as_u16()),
        None => e.is_connect() || e.is_timeout() || e.is_request() || e.is_body(),
    }
}

/// The line printed before another try, so a slow build says why.
pub fn notice(error: &dyn Display, delay: Duration) {
    eprintln!("retrying in {:.1}s after: {error}", delay.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;
    use backon::BackoffBuilder;

    #[test]
    fn transient_statuses() {
        for s in [429, 500, 502, 503, 504] {
            assert!(transient_status(s), "{s}");
        }
        for s in [200, 400, 401, 403, 404, 405, 409] {
            assert!(!transient_status(s), "{s}");
        }
    }

    #[test]
    fn the_policy_is_bounded() {
        let delays: Vec<Duration> = policy().build().collect();
        assert_eq!(delays.len(), ATTEMPTS - 1);
        // Jitter adds up to one more delay's worth.
        assert!(delays[0] >= Duration::from_millis(200) && delays[0] < Duration::from_millis(400));
        assert!(delays[1] >= Duration::from_millis(400) && delays[1] < Duration::from_millis(800));
    }

    #[test]
    fn a_refused_connection_is_transient() {
        let e = crate::net::block_on(async {
            reqwest::Client::new()
                .get("http://127.0.0.1:1/")
                .send()
                .await
                .expect_err("nothing listens on port 1")
        })
        .expect("runtime");
        assert!(transient_reqwest(&e), "{e:?}");
    }
}

//! A progress line for blob transfers in local mode, when stderr is a terminal (as `docker
//! pull` and kaniko's `--verbosity` lines do; BuildKit's TTY output draws a whole screen, which
//! a line-oriented builder whose RUN output goes to the same stderr cannot). Without a
//! terminal (CI logs, pods) nothing is drawn, so logs stay plain lines.
//!
//! One line, redrawn in place (`\r`, erase to the end) at most every [`REDRAW`]; cleared when a
//! transfer ends, so the lines printed after it (`pushed …`) start on a clean line.

use std::io::{IsTerminal, Write};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::AsyncWrite;

/// The shortest time between two redraws.
pub const REDRAW: Duration = Duration::from_millis(100);

/// What one transfer has moved so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// `pull REPO` or `push REF`.
    pub what: String,
    /// The blob's digest.
    pub digest: String,
    pub done: u64,
    pub total: u64,
}

impl Transfer {
    /// The line drawn for it: `push reg/app:1: sha256:0123456789ab 12.0 of 48.0 MB (25%)`.
    pub fn line(&self) -> String {
        let short = self
            .digest
            .strip_prefix("sha256:")
            .map_or(self.digest.as_str(), |h| &h[..h.len().min(12)]);
        let mb = |n: u64| n as f64 / 1e6;
        // A registry may send more than it declared before it is cut off: never over 100%.
        let pct = (self.done.min(self.total) * 100)
            .checked_div(self.total)
            .unwrap_or(100);
        format!(
            "{}: sha256:{short} {:.1} of {:.1} MB ({pct}%)",
            self.what,
            mb(self.done),
            mb(self.total)
        )
    }
}

/// The line's state; `None` for a [`Progress`] that draws nothing.
#[derive(Debug)]
struct Shown {
    current: Option<Transfer>,
    drawn: Option<Instant>,
}

/// Where transfers report. [`Progress::off`] draws nothing and costs a lock-free check.
#[derive(Debug)]
pub struct Progress {
    shown: Option<Mutex<Shown>>,
}

impl Progress {
    /// Draws nothing.
    pub fn off() -> Self {
        Progress { shown: None }
    }

    /// Draws on stderr when it is a terminal; otherwise [`Progress::off`].
    pub fn on_terminal() -> Self {
        if std::io::stderr().is_terminal() {
            Progress {
                shown: Some(Mutex::new(Shown {
                    current: None,
                    drawn: None,
                })),
            }
        } else {
            Progress::off()
        }
    }

    /// A transfer of `total` bytes of blob `digest` starts.
    pub fn start(&self, what: &str, digest: &str, total: u64) {
        self.update(|s| {
            s.current = Some(Transfer {
                what: what.to_string(),
                digest: digest.to_string(),
                done: 0,
                total,
            });
            true
        });
    }

    /// `n` more bytes of the current transfer; a retry starts over with [`Progress::restart`].
    pub fn add(&self, n: u64) {
        self.update(|s| {
            if let Some(t) = &mut s.current {
                t.done = t.done.saturating_add(n);
            }
            s.drawn.is_none_or(|at| at.elapsed() >= REDRAW)
        });
    }

    /// The current transfer starts again from byte 0 (a retried request).
    pub fn restart(&self) {
        self.update(|s| {
            if let Some(t) = &mut s.current {
                t.done = 0;
            }
            true
        });
    }

    /// The current transfer ended (done or failed): the line is erased.
    pub fn finish(&self) {
        let Some(m) = &self.shown else { return };
        let mut s = m.lock().unwrap_or_else(|p| p.into_inner());
        if s.current.take().is_some() && s.drawn.take().is_some() {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }

    /// Applies `change`; redraws when it says so.
    fn update(&self, change: impl FnOnce(&mut Shown) -> bool) {
        let Some(m) = &self.shown else { return };
        let mut s = m.lock().unwrap_or_else(|p| p.into_inner());
        if change(&mut s)
            && let Some(t) = &s.current
        {
            let _ = write!(std::io::stderr(), "\r\x1b[K{}", t.line());
            s.drawn = Some(Instant::now());
        }
    }
}

/// A writer that reports what goes through it to a [`Progress`].
pub struct Counting<'a, W> {
    pub inner: W,
    pub progress: &'a Progress,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Counting<'_, W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &polled {
            self.progress.add(*n as u64);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(done: u64, total: u64) -> Transfer {
        Transfer {
            what: "push reg:5000/app:1".into(),
            digest: format!("sha256:{}", "ab".repeat(32)),
            done,
            total,
        }
    }

    #[test]
    fn the_line_names_the_transfer_the_blob_and_how_far_it_is() {
        assert_eq!(
            t(12_000_000, 48_000_000).line(),
            "push reg:5000/app:1: sha256:abababababab 12.0 of 48.0 MB (25%)"
        );
        assert_eq!(
            t(0, 0).line(),
            "push reg:5000/app:1: sha256:abababababab 0.0 of 0.0 MB (100%)"
        );
        // More than declared (a registry that is about to be cut off) shows 100%, not 150%.
        assert!(t(150, 100).line().ends_with("(100%)"));
        // A digest that is not sha256 (refused later) is shown as it is, not sliced.
        let odd = Transfer {
            digest: "md5:x".into(),
            ..t(1, 2)
        };
        assert!(odd.line().contains("sha256:md5:x"));
    }

    #[test]
    fn progress_off_keeps_no_state() {
        let p = Progress::off();
        p.start("pull r", "sha256:00", 10);
        p.add(5);
        p.finish();
        assert!(p.shown.is_none());
    }

    #[test]
    fn counts_add_up_restart_and_end_with_the_transfer() {
        // Drawn on a real stderr (the test's), which is harmless: the state is what is checked.
        let p = Progress {
            shown: Some(Mutex::new(Shown {
                current: None,
                drawn: None,
            })),
        };
        let state = |p: &Progress| {
            let s = p.shown.as_ref().expect("on").lock().expect("lock");
            s.current.as_ref().map(|t| (t.done, t.total))
        };
        p.start("pull r", "sha256:00", 10);
        p.add(4);
        p.add(3);
        assert_eq!(state(&p), Some((7, 10)));
        p.restart();
        assert_eq!(state(&p), Some((0, 10)));
        p.add(10);
        assert_eq!(state(&p), Some((10, 10)));
        p.finish();
        assert_eq!(state(&p), None);
        // Bytes after the end count nowhere.
        p.add(1);
        assert_eq!(state(&p), None);
    }

    #[tokio::test]
    async fn a_counting_writer_reports_what_it_wrote() {
        use tokio::io::AsyncWriteExt;
        let p = Progress {
            shown: Some(Mutex::new(Shown {
                current: None,
                drawn: None,
            })),
        };
        p.start("pull r", "sha256:00", 100);
        let mut w = Counting {
            inner: Vec::new(),
            progress: &p,
        };
        w.write_all(&[7u8; 64]).await.expect("write");
        w.write_all(&[7u8; 36]).await.expect("write");
        assert_eq!(w.inner.len(), 100);
        let done = p
            .shown
            .as_ref()
            .expect("on")
            .lock()
            .expect("lock")
            .current
            .as_ref()
            .map(|t| t.done);
        assert_eq!(done, Some(100));
    }
}

//! Nothing a RUN started outlives it (M2 of SECURITY.md). The engine is made a child
//! subreaper (`PR_SET_CHILD_SUBREAPER`; it is also PID 1 of a stage container), so whatever a
//! RUN leaves in the background (`daemon &`, a double fork, `setsid`) is re-parented to the
//! engine instead of escaping it. When the RUN's own process has exited, every process still
//! descended from the engine is killed (SIGKILL) and reaped before the tree is walked: none
//! can change a file between the walk and the layer write, race the engine's clean-up, or
//! read a later RUN's secrets. A pid namespace per RUN would need CAP_SYS_ADMIN, which stage
//! pods do not have.
//!
//! The descendants are found from `/proc/<pid>/stat` (parent pid and state), read by
//! [`parse_stat`] and followed by [`descendants`].

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// How long killed processes may take to go (one in uninterruptible sleep ends when its I/O
/// does).
const PATIENCE: Duration = Duration::from_secs(30);

/// Makes this process the reaper of its orphaned descendants.
pub fn become_subreaper() -> Result<(), nix::Error> {
    nix::sys::prctl::set_child_subreaper(true)
}

/// The parent pid and state letter of a `/proc/<pid>/stat` text. The command name (field 2)
/// is in parentheses and may itself hold spaces and `)`, so the fields after it are found
/// from the last `)`.
pub fn parse_stat(text: &str) -> Option<(i32, char)> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((ppid, state))
}

/// The pids descended from `ancestor` in a table of pid → parent pid.
pub fn descendants(parents: &BTreeMap<i32, i32>, ancestor: i32) -> BTreeSet<i32> {
    let mut children: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for (&pid, &ppid) in parents {
        children.entry(ppid).or_default().push(pid);
    }
    let mut out = BTreeSet::new();
    let mut todo = vec![ancestor];
    while let Some(p) = todo.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or(&[]) {
            if c != ancestor && out.insert(c) {
                todo.push(c);
            }
        }
    }
    out
}

/// Every process now under `/proc`: pid → (parent pid, state).
fn processes() -> io::Result<BTreeMap<i32, (i32, char)>> {
    let mut out = BTreeMap::new();
    for e in fs::read_dir("/proc")?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        // A process that ended while we looked has no stat any more.
        if let Ok(text) = fs::read_to_string(e.path().join("stat"))
            && let Some(st) = parse_stat(&text)
        {
            out.insert(pid, st);
        }
    }
    Ok(out)
}

/// Reaps every child that has ended, without waiting for the others.
fn reap_ended() {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Kills and reaps every process descended from this one; returns how many were killed.
/// Call it when the RUN's own process has been waited for.
pub fn kill_leftovers() -> io::Result<usize> {
    let me = std::process::id() as i32;
    let start = Instant::now();
    let mut killed = BTreeSet::new();
    loop {
        reap_ended();
        let procs = processes()?;
        let parents: BTreeMap<i32, i32> = procs.iter().map(|(&p, &(pp, _))| (p, pp)).collect();
        let left = descendants(&parents, me);
        if left.is_empty() {
            return Ok(killed.len());
        }
        for &pid in &left {
            // Zombies are dead already; they go with the next reap.
            if procs.get(&pid).is_some_and(|(_, s)| *s != 'Z') {
                match kill(Pid::from_raw(pid), Signal::SIGKILL) {
                    Ok(()) | Err(Errno::ESRCH) => {
                        killed.insert(pid);
                    }
                    Err(e) => return Err(io::Error::from(e)),
                }
            }
        }
        if start.elapsed() > PATIENCE {
            let msg = format!(
                "{} processes the RUN started are still there after SIGKILL",
                left.len()
            );
            return Err(io::Error::new(io::ErrorKind::TimedOut, msg));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_the_command_name() {
        assert_eq!(
            parse_stat("42 (sh) S 7 42 42 0 -1 4194560 0 0"),
            Some((7, 'S'))
        );
        // A command name with spaces and parentheses of its own.
        assert_eq!(
            parse_stat("43 (evil) Z 1 (x) R 99 1 1) Z 8 43 43 0"),
            Some((8, 'Z'))
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (init) S"), None);
    }

    #[test]
    fn descendants_follow_parent_links() {
        // 10 is us; 11 and 12 our children, 13 a grandchild, 20 unrelated with a child.
        let parents: BTreeMap<i32, i32> =
            [(10, 1), (11, 10), (12, 10), (13, 12), (20, 1), (21, 20)]
                .into_iter()
                .collect();
        assert_eq!(
            descendants(&parents, 10),
            [11, 12, 13].into_iter().collect()
        );
        assert!(descendants(&parents, 13).is_empty());
        // A cycle (a pid reused while we read) does not loop.
        let odd: BTreeMap<i32, i32> = [(5, 6), (6, 5)].into_iter().collect();
        assert_eq!(descendants(&odd, 5), [6].into_iter().collect());
    }

    #[test]
    fn background_processes_are_killed() {
        // kill_leftovers kills every descendant of the process: run it in a test binary of
        // its own, so the other tests' children are left alone.
        const ALONE: &str = "SLIPWAY_REAP_TEST_ALONE";
        if std::env::var_os(ALONE).is_none() {
            let exe = std::env::current_exe().expect("test binary");
            let out = std::process::Command::new(exe)
                .args([
                    "--exact",
                    "stage::reap::tests::background_processes_are_killed",
                    "--nocapture",
                ])
                .env(ALONE, "1")
                .output()
                .expect("run alone");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{text}");
            assert!(text.contains("1 passed"), "{text}");
            return;
        }
        become_subreaper().expect("subreaper");
        // A process whose own child outlives it: a RUN's `sleep &`.
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", "sleep 300 </dev/null >/dev/null 2>&1 & echo $!"])
            .output()
            .expect("sh");
        assert!(out.status.success());
        let sleeper: i32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("pid");
        let alive = || std::path::Path::new(&format!("/proc/{sleeper}")).exists();
        assert!(alive());
        assert_eq!(kill_leftovers().expect("kill"), 1);
        assert!(!alive());
        assert_eq!(kill_leftovers().expect("none left"), 0);
    }
}

//! The outputs of stages still running when a pod was made (`--await-outputs`), so that a
//! cluster build's next pod can start while the stages it needs run, and take up their work
//! the moment they are done instead of a pod start after the controller has seen them end.
//!
//! A stage pod [`publish`]es the digests it reports to the controller also as
//! `stages/<N>/outputs.json`, once every file they name is written; a pod made while it ran
//! [`take`]s them from there when the file appears and reports what it took. The controller
//! checks that against what the stage's pod itself reported when it ended
//! (`contract::trust::check_awaited`) before it believes either pod. A RUN step of stage N can
//! write that file early, as it can shape everything else stage N outputs: the build then
//! fails at that check, and no later pod reads more than stage N's own files.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use slipway_contract::pod::Digests;
use slipway_contract::trust::{Awaited, Outputs};

use crate::trusted::TrustError;
use crate::workspace::{BeneathError, Workspace, WorkspaceError, read_beneath, write_json};

/// The largest `outputs.json` a pod reads: two digests and their names.
pub const OUTPUTS_CAP: u64 = 4096;

/// How often a waiting pod looks for the file: a stat beneath the workspace.
const POLL: Duration = Duration::from_millis(20);

/// Why a stage's published outputs could not be taken, or published.
#[derive(Debug, thiserror::Error)]
pub enum AwaitError {
    /// Not a regular file beneath the workspace, too large, or not JSON: the file is named.
    #[error(transparent)]
    Read(#[from] TrustError),
    #[error(transparent)]
    Write(#[from] WorkspaceError),
}

/// `stages/<N>/outputs.json`, relative to the workspace.
pub fn outputs_file(index: usize) -> PathBuf {
    Path::new(&slipway_contract::pod::paths::stage_dir(index)).join("outputs.json")
}

/// Writes each stage's outputs where pods awaiting them look: after everything they name.
pub fn publish(ws: &Workspace, outputs: &BTreeMap<usize, Outputs>) -> Result<(), AwaitError> {
    for (index, out) in outputs {
        write_json(&ws.root.join(outputs_file(*index)), out)?;
    }
    Ok(())
}

/// Removes what an earlier pod of the same stages published (a Job's pod run again after an
/// eviction): a pod made now must wait for this one's.
pub fn withdraw(ws: &Workspace, stages: &[usize]) -> Result<(), AwaitError> {
    for index in stages {
        let path = ws.root.join(outputs_file(*index));
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(WorkspaceError::from(crate::fs::at(&path)(e)).into());
            }
            _ => {}
        }
    }
    Ok(())
}

/// Waits for the outputs of every stage `digests` awaits, adds them to `digests` and returns
/// what it took. The pod's deadline (or the controller stopping the build when such a stage
/// fails) ends a wait for a stage that never publishes.
pub fn take(ws: &Workspace, digests: &mut Digests) -> Result<Awaited, AwaitError> {
    let mut took = Awaited::new();
    for index in std::mem::take(&mut digests.awaits) {
        if took.contains_key(&index) {
            continue;
        }
        let out = wait_for(&ws.root, index)?;
        digests.add_outputs(index, &out);
        took.insert(index, out);
    }
    Ok(took)
}

fn wait_for(root: &Path, index: usize) -> Result<Outputs, AwaitError> {
    let rel = outputs_file(index);
    let file = rel.display().to_string();
    let start = Instant::now();
    let mut said = false;
    loop {
        match read_beneath(root, &rel, OUTPUTS_CAP) {
            Ok(bytes) => {
                if said {
                    eprintln!(
                        "stage #{index} is done: waited {:.2}s",
                        start.elapsed().as_secs_f64()
                    );
                }
                return serde_json::from_slice(&bytes)
                    .map_err(|source| TrustError::Json { file, source }.into());
            }
            Err(BeneathError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(TrustError::Unsafe { file, source }.into()),
        }
        if !said {
            eprintln!("waiting for stage #{index}, which is still running");
            said = true;
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_contract::digest::Digest;

    fn digest(c: char) -> Digest {
        Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).expect("digest")
    }

    fn ws() -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().expect("tempdir");
        let ws = Workspace::new(dir.path());
        (dir, ws)
    }

    #[test]
    fn a_pod_takes_what_a_stage_publishes_once_it_appears() {
        let (_dir, ws) = ws();
        let out = Outputs {
            result: digest('1'),
            exports: Some(digest('2')),
        };
        let mut d = Digests::new(digest('0'));
        d.awaits = vec![3, 3];
        let published = BTreeMap::from([(3, out.clone())]);
        let writer = {
            let ws = Workspace::new(&ws.root);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                publish(&ws, &published).expect("publish");
            })
        };
        let took = take(&ws, &mut d).expect("taken");
        writer.join().expect("writer");
        assert_eq!(took, BTreeMap::from([(3, out)]));
        assert_eq!(
            (d.result(3), d.exports(3)),
            (Some(&digest('1')), Some(&digest('2')))
        );
        assert!(d.awaits.is_empty());
        // A pod of the same stage run again withdraws it first; twice is no error.
        withdraw(&ws, &[3, 3]).expect("withdrawn");
        assert!(!ws.root.join(outputs_file(3)).exists());
    }

    #[test]
    fn a_planted_link_a_folder_or_a_huge_file_is_refused_not_followed() {
        let (_dir, ws) = ws();
        let outside = tempfile::tempdir().expect("tempdir");
        let secret = outside.path().join("outputs.json");
        std::fs::write(&secret, br#"{"result":"sha256:00"}"#).expect("write");
        let place = ws.root.join(outputs_file(1));
        std::fs::create_dir_all(place.parent().expect("parent")).expect("mkdir");
        std::os::unix::fs::symlink(&secret, &place).expect("link");
        let mut d = Digests::new(digest('0'));
        d.awaits = vec![1];
        let e = take(&ws, &mut d).expect_err("a link");
        assert!(e.to_string().contains("stages/1/outputs.json"), "{e}");
        assert!(
            matches!(
                e,
                AwaitError::Read(TrustError::Unsafe {
                    source: BeneathError::Symlink,
                    ..
                })
            ),
            "{e}"
        );
        std::fs::remove_file(&place).expect("rm");
        std::fs::create_dir(&place).expect("mkdir");
        d.awaits = vec![1];
        assert!(take(&ws, &mut d).is_err(), "a folder");
        std::fs::remove_dir(&place).expect("rmdir");
        std::fs::write(&place, vec![b' '; OUTPUTS_CAP as usize + 1]).expect("write");
        d.awaits = vec![1];
        let e = take(&ws, &mut d).expect_err("too large");
        assert!(e.to_string().contains("more than"), "{e}");
        std::fs::write(&place, b"{").expect("write");
        d.awaits = vec![1];
        assert!(matches!(
            take(&ws, &mut d),
            Err(AwaitError::Read(TrustError::Json { .. }))
        ));
        assert_eq!(d.result(1), None, "nothing taken from a bad file");
    }
}

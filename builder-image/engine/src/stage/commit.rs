//! Layers and the end of a stage: a layer file per RUN/COPY/ADD/WORKDIR (named by its digest,
//! listed in the stage's result), the layer of exactly the paths a COPY wrote, and at the
//! end the exports and `result.json` the stages and the push step that follow read. A stage
//! whose layers nothing reads (`--layers read`, no cache) makes none: its result lists only
//! those of the stage it was built FROM.

use std::fs;
use std::io;

use slipway_contract::digest::Digest;
use slipway_frontend::dockerfile::instructions::Command;

use crate::fs::PathError;
use crate::fs::copy::Written;
use crate::layer::snapshot;
use crate::layer::writer::LayerWriter;
use crate::stage::{Carry, Engine, LAYER_MEDIA_TYPE, SetupError, StageError};
use crate::workspace::{self, LayerRef, StageResult};

/// Why a layer could not be written.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("writing layer: {0}")]
    Write(#[source] io::Error),
    /// A path a COPY/ADD/WORKDIR wrote could not be read back.
    #[error(transparent)]
    Written(#[from] PathError),
}

impl Engine<'_> {
    /// Writes the next layer with `write` and lists it in the stage's layers.
    pub(super) fn next_layer(
        &mut self,
        cmd: &Command,
        write: impl FnOnce(&mut LayerWriter<io::BufWriter<fs::File>>) -> io::Result<()>,
    ) -> Result<(), StageError> {
        let dir = self.ws.stage_layers(self.ps.index);
        let tmp = dir.join(format!("layer-{}.tmp", self.layers.len()));
        let io_err = |e: io::Error| self.fail(cmd, LayerError::Write(e));
        let f = fs::File::create(&tmp).map_err(io_err)?;
        let mut w = LayerWriter::new(io::BufWriter::new(f), flate2::Compression::fast())
            .clamp_to(self.epoch);
        write(&mut w).map_err(io_err)?;
        let (out, d) = w.finish().map_err(io_err)?;
        // Flushed, not synced: the workspace lives only as long as the build, which a crash
        // ends anyway, and the next pod reads the same page cache (or, over NFS, sees the
        // file once it is closed). fsync cost a layer's size in disk writes on the critical path.
        out.into_inner().map_err(|e| io_err(e.into_error()))?;
        let hex = d.digest.trim_start_matches("sha256:").to_string();
        let final_path = dir.join(format!("{hex}.tar.gz"));
        fs::rename(&tmp, &final_path).map_err(io_err)?;
        let rel = final_path
            .strip_prefix(&self.ws.root)
            .unwrap_or(&final_path)
            .display()
            .to_string();
        self.layers.push(LayerRef {
            path: rel,
            digest: d.digest,
            diff_id: d.diff_id,
            size: d.size,
            media_type: LAYER_MEDIA_TYPE.into(),
        });
        Ok(())
    }

    /// A layer of exactly the paths a COPY/ADD/WORKDIR wrote (and their parents), and the
    /// baseline updated with them so the next RUN does not see them as its own.
    pub(super) fn commit_written(&mut self, cmd: &Command, w: &Written) -> Result<(), StageError> {
        if !self.writes_layers {
            return Ok(());
        }
        let (snap, changes) = snapshot::of_written(&self.root, &w.paths)
            .map_err(|e| self.fail(cmd, LayerError::Written(e)))?;
        let root = self.root.clone();
        self.next_layer(cmd, |l| snapshot::write_changes(&root, &snap, &changes, l))?;
        if let Some(base) = &mut self.baseline {
            for (p, s) in snap.entries {
                base.entries.insert(p, s);
            }
        }
        Ok(())
    }

    /// The end of the stage: its exports and its result, and the tree for the next stage of
    /// the chain; with the exports' digest, when it has exports.
    pub(super) fn finish(self) -> Result<(StageResult, Carry, Option<Digest>), SetupError> {
        let exports = if self.ps.exports.is_empty() {
            None
        } else {
            let out = self.ws.stage_exports(self.ps.index);
            let written = crate::stage::exports::write_exports(
                &self.root,
                &self.ps.exports,
                &self.skip,
                &out,
                self.epoch,
            )
            .map_err(SetupError::Exports)?;
            Some(written.digest)
        };
        let result = StageResult {
            index: self.ps.index,
            name: self.ps.name.clone(),
            base: self.base.clone(),
            config: self.image.config.clone(),
            author: self.image.author.clone(),
            history: self.image.history.clone(),
            layers: self.layers,
            vars: self
                .vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            args: self.args,
            checkpoints: self.checkpoints,
            layers_skipped: !self.writes_layers,
        };
        let _ = fs::remove_dir_all(self.ws.stage_work(self.ps.index));
        workspace::write_json(&self.ws.stage_result(self.ps.index), &result)?;
        let carry = Carry {
            index: self.ps.index,
            root: self.root,
            baseline: self.baseline,
        };
        Ok((result, carry, exports))
    }
}

//! Where a stage starts: its parent's result (its tree already here when the parent ran just
//! before in the same chain, else its layers applied), a base image's config over the tree at
//! `/`, or an empty scratch tree in the workspace. The parent's result, its layers and the
//! image's JSON are read only when they are what the controller's digests say ([`Checked`]).

use std::fs;
use std::path::{Path, PathBuf};

use slipway_contract::pod::paths;
use slipway_frontend::dockerfile::shell::Vars;
use slipway_frontend::plan::{Base, DEFAULT_PATH};

use crate::fs::at;
use crate::layer::snapshot;
use crate::stage::config::{StageImage, scratch_config};
use crate::stage::{Carry, Engine, SetupError};
use crate::trusted::{self, Checked};
use crate::workspace::{Checkpoint, LayerRef, Resume};

impl Engine<'_> {
    /// The stage's starting point: the parent stage's result, the base image's config, or
    /// an empty scratch tree.
    pub(super) fn start(&mut self, carry: Option<Carry>) -> Result<(), SetupError> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        self.skip = snapshot::mount_points(&mountinfo);
        self.skip.insert(PathBuf::from(paths::ROOT));
        self.skip.insert(self.ws.root.clone());
        let scratch_root = self.ws.stage_dir(self.ps.index).join("rootfs");
        let _ = fs::remove_dir_all(self.ws.stage_dir(self.ps.index));
        fs::create_dir_all(self.ws.stage_layers(self.ps.index)).map_err(SetupError::Layers)?;
        match &self.ps.from {
            Base::Stage(parent) => {
                let r = self.checked().result(self.plan, *parent)?;
                let carried = carry.filter(|c| c.index == *parent);
                let was_carried = carried.is_some();
                if let Some(c) = carried {
                    // The parent ran just before in this process: its tree is already here.
                    if c.root != Path::new("/") {
                        self.root = c.root;
                        self.skip.clear();
                    }
                    self.baseline = c.baseline;
                } else if r.base.is_none() {
                    self.use_scratch_root(scratch_root)?;
                }
                let applied: &[LayerRef] = if was_carried { &[] } else { &r.layers };
                for l in applied {
                    apply_checked(self.checked(), l, &self.root)?;
                }
                self.base = r.base;
                self.on_build = r.config.on_build.clone();
                self.image = StageImage::from_base(r.config, r.history);
                self.image.author = r.author;
                self.layers = r.layers;
                self.vars = Vars::from_pairs(r.vars.iter().map(|(k, v)| format!("{k}={v}")));
                self.args = r.args;
            }
            Base::Image(name) if name == "scratch" => {
                self.use_scratch_root(scratch_root)?;
                let config = scratch_config();
                self.vars.set("PATH", DEFAULT_PATH);
                self.image = StageImage::from_base(config, vec![]);
            }
            Base::Image(name) => {
                let info = self.checked().image(name)?;
                let mut config = info.runtime_config();
                if !config.env.iter().any(|e| e.starts_with("PATH=")) {
                    config.env.push(format!("PATH={DEFAULT_PATH}"));
                }
                for kv in &config.env {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    self.vars.set(k, v);
                }
                self.base = Some(name.clone());
                self.on_build = config.on_build.clone();
                self.image = StageImage::from_base(config, info.history());
                self.image.author = info
                    .config
                    .get("author")
                    .and_then(|a| a.as_str())
                    .unwrap_or_default()
                    .to_string();
            }
        }
        self.own = self.layers.len();
        self.resume()
    }

    /// Starts from the checkpoint the stage was given, if any (a prefix hit of the layer
    /// cache): its layers copied into the stage's own and applied, checked as they are read,
    /// its config, history and variables taken, its instructions skipped. A checkpoint that
    /// does not fit this stage (another parent tree, another shape) is set aside with a
    /// warning before anything is applied: the stage runs every instruction.
    fn resume(&mut self) -> Result<(), SetupError> {
        let index = self.ps.index;
        let Some(r) = self.checked().resume(index)? else {
            return Ok(());
        };
        let cp = match self.fits(&r) {
            Ok(cp) => cp.clone(),
            Err(why) => {
                eprintln!(
                    "warning: {}: the cache checkpoint does not fit ({why}); running every instruction",
                    self.label
                );
                return Ok(());
            }
        };
        let own_dir = format!("{}/layers", paths::stage_dir(index));
        for l in &r.layers {
            let copied = l.moved_to(&own_dir);
            let copy_err = |source| SetupError::ResumeLayer {
                digest: l.digest.clone(),
                source,
            };
            let mut from = self.checked().layer(l)?;
            let mut to = fs::File::create(self.ws.layer_path(&copied)).map_err(copy_err)?;
            std::io::copy(&mut from, &mut to).map_err(copy_err)?;
            trusted::finish_layer(l, from)?;
            apply_checked(self.checked(), &copied, &self.root)?;
            self.layers.push(copied);
        }
        let author = cp.author.clone();
        self.image = StageImage::at_checkpoint(cp.config, r.history, cp.cmd_set);
        self.image.author = author;
        self.vars = Vars::from_pairs(cp.vars.iter().map(|(k, v)| format!("{k}={v}")));
        self.args = cp.args;
        // The tree changed under the walk carried from a parent: the next RUN walks again.
        self.baseline = None;
        self.checkpoints = r.checkpoints;
        self.resumed = cp.steps;
        Ok(())
    }

    fn use_scratch_root(&mut self, dir: PathBuf) -> Result<(), SetupError> {
        fs::create_dir_all(&dir).map_err(at(&dir))?;
        self.root = dir;
        self.skip.clear();
        Ok(())
    }

    /// The checkpoint to start from, when `r` fits this stage as it stands: its instructions,
    /// no ONBUILD triggers before them, the same FROM-chain layers under it, and layers and
    /// history of the shape its checkpoints say.
    fn fits<'r>(&self, r: &'r Resume) -> Result<&'r Checkpoint, &'static str> {
        let cp = r.checkpoints.last().ok_or("it holds no checkpoint")?;
        let commands = self.df.stages[self.ps.index].commands.len();
        if r.index != self.ps.index || !(1..commands).contains(&cp.steps) {
            return Err("not this stage's instructions");
        }
        if !self.on_build.is_empty() {
            return Err("the base has ONBUILD triggers");
        }
        let parent: Vec<&str> = self.layers.iter().map(|l| l.digest.as_str()).collect();
        if r.parent != parent || r.checkpoints.iter().any(|c| c.own != self.own) {
            return Err("it was made on other parent layers");
        }
        if cp.layers != cp.own + r.layers.len() || r.history.len() != cp.history {
            return Err("its layers or history are not what it says");
        }
        Ok(cp)
    }
}

/// Applies a layer of a parent chain's (checked) result to `root`, its bytes checked against
/// its digests as they are read: a layer file changed since its stage wrote it fails the
/// stage, naming the file.
fn apply_checked(checked: Checked<'_>, l: &LayerRef, root: &Path) -> Result<(), SetupError> {
    let mut r = checked.layer(l)?;
    let applied = crate::fs::unpack::apply_layer(&mut r, root, true);
    // A mismatch is the error to say, whatever the unpacking made of the bytes.
    trusted::finish_layer(l, r)?;
    applied.map_err(|source| SetupError::Apply {
        digest: l.digest.clone(),
        source,
    })
}

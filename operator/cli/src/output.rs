//! What the CLI prints, for people (text, colour only on a terminal) and for programs (JSON
//! lines). Pure: everything here turns values into strings.

use serde::Serialize;
use slipway_api::{ImageBuild, Phase, StagePhase};

use crate::logs::LogLine;

/// ANSI colours, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    Red,
    Green,
    Yellow,
    Blue,
    Magenta,
    Cyan,
    Dim,
    Bold,
}

impl Color {
    fn code(self) -> &'static str {
        match self {
            Color::Red => "31",
            Color::Green => "32",
            Color::Yellow => "33",
            Color::Blue => "34",
            Color::Magenta => "35",
            Color::Cyan => "36",
            Color::Dim => "2",
            Color::Bold => "1",
        }
    }
}

/// The colours stage prefixes cycle through.
const STAGE_COLORS: [Color; 5] = [
    Color::Cyan,
    Color::Magenta,
    Color::Blue,
    Color::Yellow,
    Color::Green,
];

impl Style {
    pub fn paint(self, c: Color, s: &str) -> String {
        if self.color {
            format!("\x1b[{}m{s}\x1b[0m", c.code())
        } else {
            s.to_string()
        }
    }

    /// A log line, its prefix coloured by stage (the same stage, the same colour).
    pub fn log_line(self, l: &LogLine) -> String {
        if !self.color {
            return l.plain();
        }
        let sum: usize = l.prefix.bytes().map(usize::from).sum();
        let c = STAGE_COLORS[sum % STAGE_COLORS.len()];
        if l.header {
            match l.text.split_once(']') {
                Some((head, rest)) => format!(
                    "{}{}",
                    self.paint(c, &format!("{head}]")),
                    self.paint(Color::Bold, rest)
                ),
                None => l.text.clone(),
            }
        } else {
            format!("{} {}", self.paint(c, &format!("[{}]", l.prefix)), l.text)
        }
    }

    fn phase(self, p: &str) -> String {
        match p {
            "Succeeded" => self.paint(Color::Green, p),
            "Failed" => self.paint(Color::Red, p),
            "" => String::new(),
            _ => self.paint(Color::Yellow, p),
        }
    }
}

/// A build as `get`, `list`, `wait` and the end of `build` report it (also its JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub name: String,
    pub namespace: String,
    /// Empty until the controller has seen the build.
    pub phase: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// `ref@digest` once pushed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageSummary {
    pub name: String,
    pub index: i32,
    pub phase: String,
}

/// Whether a build of this generation is over: the controller saw the current spec and
/// says Succeeded or Failed.
pub fn finished(ib: &ImageBuild) -> Option<Phase> {
    let s = ib.status.as_ref()?;
    let phase = s.phase?;
    let seen = match (s.observed_generation, ib.metadata.generation) {
        (Some(o), Some(g)) => o >= g,
        _ => true,
    };
    (seen && phase.finished()).then_some(phase)
}

/// Whether the status is of an earlier generation than the spec (a rebuild or a cancel the
/// controller has not picked up yet): it says nothing about the build being followed.
pub fn stale(ib: &ImageBuild) -> bool {
    let observed = ib.status.as_ref().and_then(|s| s.observed_generation);
    matches!((observed, ib.metadata.generation), (Some(o), Some(g)) if o < g)
}

/// The stage's name as the engine prints it: its name, else its index.
pub fn stage_name(name: Option<&str>, index: i32) -> String {
    name.map_or_else(|| index.to_string(), str::to_string)
}

impl Summary {
    pub fn of(ib: &ImageBuild, now: jiff::Timestamp) -> Summary {
        let s = ib.status.clone().unwrap_or_default();
        let cond = s.conditions.iter().find(|c| c.type_ == "Succeeded");
        // Why it did not succeed: a failed or cancelled build's reason and message.
        let failed = matches!(s.phase, Some(Phase::Failed | Phase::Cancelled));
        let image = s.image.as_ref().filter(|i| !i.digest.is_empty());
        Summary {
            name: ib.metadata.name.clone().unwrap_or_default(),
            namespace: ib.metadata.namespace.clone().unwrap_or_default(),
            phase: s.phase.map(|p| p.as_str().to_string()).unwrap_or_default(),
            reason: cond
                .filter(|_| failed)
                .map(|c| c.reason.clone())
                .unwrap_or_default(),
            message: cond
                .filter(|_| failed)
                .map(|c| c.message.clone())
                .unwrap_or_default(),
            image: image.map(|i| format!("{}@{}", i.reference, i.digest)),
            digest: image.map(|i| i.digest.clone()),
            duration: s.duration.clone(),
            age: ib
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| age(now.as_second() - t.0.as_second())),
            stages: s
                .stages
                .iter()
                .map(|st| StageSummary {
                    name: stage_name(st.name.as_deref(), st.index),
                    index: st.index,
                    phase: st.phase.as_str().to_string(),
                })
                .collect(),
        }
    }

    /// `get NAME`: one field a line.
    pub fn detail(&self, style: Style) -> String {
        let mut out = vec![
            format!("Name:      {}", self.name),
            format!("Namespace: {}", self.namespace),
            format!("Phase:     {}", style.phase(or_dash(&self.phase))),
        ];
        if !self.reason.is_empty() {
            out.push(format!("Reason:    {}", self.reason));
            out.push(format!("Message:   {}", self.message));
        }
        if let Some(i) = &self.image {
            out.push(format!("Image:     {i}"));
        }
        if let Some(d) = &self.duration {
            out.push(format!("Duration:  {d}"));
        }
        if let Some(a) = &self.age {
            out.push(format!("Age:       {a}"));
        }
        if !self.stages.is_empty() {
            out.push("Stages:".into());
            for s in &self.stages {
                out.push(format!(
                    "  {:<3} {:<20} {}",
                    s.index,
                    s.name,
                    style.phase(&s.phase)
                ));
            }
        }
        out.join("\n")
    }

    /// The line a finished build ends with.
    pub fn result_line(&self, style: Style) -> String {
        match (self.phase.as_str(), &self.image) {
            ("Succeeded", Some(image)) => image.clone(),
            _ => format!(
                "{} build {} failed: {}: {}",
                style.paint(Color::Red, "error:"),
                self.name,
                or_dash(&self.reason),
                self.message
            ),
        }
    }
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

/// `list`: NAME PHASE REASON DIGEST DURATION AGE, as `kubectl get ib` shows them.
pub fn table(rows: &[Summary], style: Style) -> String {
    let head = ["NAME", "PHASE", "REASON", "DIGEST", "DURATION", "AGE"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                or_dash(&r.phase).to_string(),
                or_dash(&r.reason).to_string(),
                r.digest
                    .as_deref()
                    .map(|d| {
                        d.split_once(':')
                            .map_or(d, |(_, h)| h)
                            .chars()
                            .take(12)
                            .collect()
                    })
                    .unwrap_or_else(|| "-".into()),
                r.duration.clone().unwrap_or_else(|| "-".into()),
                r.age.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut width = head.map(str::len);
    for row in &cells {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = Vec::new();
    let line = |row: &[String; 6], phase_color: bool| {
        let mut s = String::new();
        for (i, c) in row.iter().enumerate() {
            let pad = " ".repeat(width[i] - c.chars().count());
            let cell = if phase_color && i == 1 {
                style.phase(c)
            } else {
                c.clone()
            };
            if i + 1 == row.len() {
                s.push_str(&cell);
            } else {
                s.push_str(&format!("{cell}{pad}   "));
            }
        }
        s
    };
    out.push(line(&head.map(String::from), false));
    for row in &cells {
        out.push(line(row, true));
    }
    out.join("\n")
}

/// An age as kubectl prints one: `45s`, `12m`, `5h`, `3d`.
pub fn age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// An elapsed time on the progress line: `42s`, `3m05s`.
pub fn elapsed(secs: u64) -> String {
    if secs < 60 {
        format!("{secs}s")
    } else {
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

/// The progress line on a terminal: phase, elapsed time, each stage's state.
/// At most `width` characters (cut with `…`, uncoloured then).
pub fn progress(ib: &ImageBuild, secs: u64, style: Style, width: usize) -> String {
    let s = ib.status.clone().unwrap_or_default();
    let phase = s.phase.map_or("Waiting for the controller", |p| p.as_str());
    let time = elapsed(secs);
    let mut out = format!("{phase} {time}");
    let stages: Vec<String> = s
        .stages
        .iter()
        .map(|st| {
            let mark = match st.phase {
                StagePhase::Pending => "·",
                StagePhase::Running => "▶",
                StagePhase::Succeeded => "✓",
                StagePhase::Failed => "✗",
                StagePhase::Cached => "=",
            };
            format!("{mark} {}", stage_name(st.name.as_deref(), st.index))
        })
        .collect();
    if !stages.is_empty() {
        out.push_str("  ");
        out.push_str(&stages.join("  "));
    }
    let width = width.max(2);
    if out.chars().count() >= width {
        let mut cut: String = out.chars().take(width - 2).collect();
        cut.push('…');
        return cut;
    }
    let head = format!("{phase} {time}");
    let painted = format!(
        "{} {}",
        style.paint(Color::Bold, phase),
        style.paint(Color::Dim, &time)
    );
    out.replacen(&head, &painted, 1)
}

/// What changed between two states of a build, as plain lines (for logs without a
/// terminal): the phase, and each stage that moved.
pub fn changes(before: Option<&ImageBuild>, after: &ImageBuild) -> Vec<Change> {
    let old = before.and_then(|b| b.status.clone()).unwrap_or_default();
    let new = after.status.clone().unwrap_or_default();
    let mut out = Vec::new();
    if let Some(p) = new.phase
        && old.phase != Some(p)
    {
        out.push(Change::Phase {
            phase: p.as_str().to_string(),
        });
    }
    for st in &new.stages {
        let was = old
            .stages
            .iter()
            .find(|o| o.index == st.index)
            .map(|o| o.phase);
        if was != Some(st.phase) && !(was.is_none() && st.phase == StagePhase::Pending) {
            out.push(Change::Stage {
                stage: stage_name(st.name.as_deref(), st.index),
                phase: st.phase.as_str().to_string(),
            });
        }
    }
    out
}

/// One event of a build, as a JSON line (`--output json`) or a plain line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum Change {
    Created {
        name: String,
        namespace: String,
        context: String,
    },
    Phase {
        phase: String,
    },
    #[serde(rename_all = "camelCase")]
    Stage {
        stage: String,
        phase: String,
    },
    Log {
        stage: String,
        line: String,
    },
    /// `rebuild` counted `spec.rebuild` up: the generation it made.
    Rebuild {
        name: String,
        namespace: String,
        rebuild: i64,
        generation: i64,
    },
    /// `cancel` set `spec.cancel`, or found it set.
    Cancel {
        name: String,
        namespace: String,
    },
    Result(Summary),
}

impl Change {
    pub fn plain(&self, style: Style) -> String {
        match self {
            Change::Created {
                name,
                namespace,
                context,
            } => {
                format!("imagebuild/{name} created in namespace {namespace} ({context})")
            }
            Change::Phase { phase } => format!("phase {}", style.phase(phase)),
            Change::Stage { stage, phase } => format!("stage {stage} {}", style.phase(phase)),
            Change::Log { stage, line } => format!("[{stage}] {line}"),
            Change::Rebuild {
                name,
                namespace,
                rebuild,
                generation,
            } => format!(
                "imagebuild/{name} in namespace {namespace}: rebuild {rebuild} requested \
                 (generation {generation})"
            ),
            Change::Cancel { name, namespace } => {
                format!("imagebuild/{name} in namespace {namespace}: cancel requested")
            }
            Change::Result(s) => s.result_line(style),
        }
    }

    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
#[path = "output_tests.rs"]
mod tests;

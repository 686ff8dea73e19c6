//! What a push did with each blob: found it in the destination already, mounted it from
//! another repository of the same registry, or uploaded it. Said after the image push and
//! after a cache write, so a rebuild's bytes uploaded can be read from the log.

use std::fmt;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Blobs the destination had.
    pub present: u32,
    /// Blobs mounted from another repository (no bytes sent).
    pub mounted: u32,
    /// Blobs uploaded, and their bytes.
    pub uploaded: u32,
    pub bytes: u64,
}

impl Tally {
    /// What happened since `before` (the same registry client's tally taken earlier).
    pub fn since(self, before: Tally) -> Tally {
        Tally {
            present: self.present.saturating_sub(before.present),
            mounted: self.mounted.saturating_sub(before.mounted),
            uploaded: self.uploaded.saturating_sub(before.uploaded),
            bytes: self.bytes.saturating_sub(before.bytes),
        }
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} blobs there already, {} mounted, {} uploaded ({} bytes)",
            self.present, self.mounted, self.uploaded, self.bytes
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_and_the_line() {
        let before = Tally {
            present: 1,
            mounted: 0,
            uploaded: 2,
            bytes: 10,
        };
        let after = Tally {
            present: 3,
            mounted: 2,
            uploaded: 2,
            bytes: 10,
        };
        let d = after.since(before);
        assert_eq!(
            d.to_string(),
            "2 blobs there already, 2 mounted, 0 uploaded (0 bytes)"
        );
    }
}

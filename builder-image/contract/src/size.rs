//! Byte sizes as the operator's settings and the pods' `--size-limit` flag write them:
//! a plain number of bytes, or one with a binary suffix (`Ki`, `Mi`, `Gi`, `Ti`, as
//! Kubernetes quantities write them). Shown the same way, in the largest exact unit.

use std::fmt;
use std::str::FromStr;

/// A number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Size(pub u64);

impl Size {
    /// The default cap on what a build pod takes in: a context (downloaded, unpacked or
    /// checked out) and a download of `ADD <url>`.
    pub const DEFAULT_LIMIT: Size = Size(1 << 30);

    pub fn bytes(self) -> u64 {
        self.0
    }
}

const UNITS: [(&str, u32); 4] = [("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)];

/// Not a size: `<digits>` or `<digits>Ki|Mi|Gi|Ti`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?}: expected a size in bytes, optionally with Ki, Mi, Gi or Ti (like 512Mi)")]
pub struct SizeError(pub String);

impl FromStr for Size {
    type Err = SizeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || SizeError(s.to_string());
        let (digits, shift) = UNITS
            .iter()
            .find_map(|(u, shift)| s.strip_suffix(u).map(|d| (d, *shift)))
            .unwrap_or((s, 0));
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: u64 = digits.parse().map_err(|_| bad())?;
        n.checked_mul(1u64 << shift).map(Size).ok_or_else(bad)
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (u, shift) in UNITS {
            let unit = 1u64 << shift;
            if self.0 >= unit && self.0.is_multiple_of(unit) {
                return write!(f, "{}{u}", self.0 / unit);
            }
        }
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_and_show_in_binary_units() {
        assert_eq!("1Gi".parse(), Ok(Size(1 << 30)));
        assert_eq!("512Mi".parse(), Ok(Size(512 << 20)));
        assert_eq!("1000".parse(), Ok(Size(1000)));
        assert_eq!(Size::DEFAULT_LIMIT.to_string(), "1Gi");
        assert_eq!(Size(1536 << 20).to_string(), "1536Mi");
        assert_eq!(Size(1000).to_string(), "1000");
        assert_eq!(Size(0).to_string(), "0");
        for bad in ["", "Gi", "1G", "-1", "1.5Gi", "99999999999Ti"] {
            assert!(bad.parse::<Size>().is_err(), "{bad}");
        }
        assert_eq!(
            "1GB".parse::<Size>().map_err(|e| e.to_string()),
            Err(
                r#""1GB": expected a size in bytes, optionally with Ki, Mi, Gi or Ti (like 512Mi)"#
                    .to_string()
            )
        );
    }
}

//! RUN's `--network` and `--security` values, as BuildKit's
//! `instructions/commands_runnetwork.go` and `commands_runsecurity.go` accept them (exact,
//! lower-case names). Whether the engine honours them is its business.

use std::str::FromStr;

use serde::Serialize;

use crate::gocompat::quote;

/// `RUN --network` (BuildKit `NetworkDefault`, `NetworkNone`, `NetworkHost`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    #[default]
    Default,
    None,
    Host,
}

/// `RUN --security` (BuildKit `SecuritySandbox`, `SecurityInsecure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecurityMode {
    #[default]
    Sandbox,
    Insecure,
}

/// A `--network` or `--security` value BuildKit would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunFlagError {
    #[error("invalid network mode {}", quote(.0))]
    Network(String),
    #[error("security {0} is not valid")]
    Security(String),
}

impl NetworkMode {
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Default => "default",
            NetworkMode::None => "none",
            NetworkMode::Host => "host",
        }
    }
}

impl FromStr for NetworkMode {
    type Err = RunFlagError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "default" => Ok(NetworkMode::Default),
            "none" => Ok(NetworkMode::None),
            "host" => Ok(NetworkMode::Host),
            _ => Err(RunFlagError::Network(s.to_string())),
        }
    }
}

impl std::fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl SecurityMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityMode::Sandbox => "sandbox",
            SecurityMode::Insecure => "insecure",
        }
    }
}

impl FromStr for SecurityMode {
    type Err = RunFlagError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sandbox" => Ok(SecurityMode::Sandbox),
            "insecure" => Ok(SecurityMode::Insecure),
            _ => Err(RunFlagError::Security(s.to_string())),
        }
    }
}

impl std::fmt::Display for SecurityMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_modes() {
        for m in [NetworkMode::Default, NetworkMode::None, NetworkMode::Host] {
            assert_eq!(m.as_str().parse(), Ok(m));
            assert_eq!(
                serde_json::to_value(m).expect("serializes"),
                serde_json::json!(m.as_str())
            );
        }
        assert_eq!(NetworkMode::default(), NetworkMode::Default);
        let e = "NONE".parse::<NetworkMode>().expect_err("case matters");
        assert_eq!(e.to_string(), "invalid network mode \"NONE\"");
        let e = "bridge".parse::<NetworkMode>().expect_err("unknown");
        assert_eq!(e.to_string(), "invalid network mode \"bridge\"");
    }

    #[test]
    fn security_modes() {
        for m in [SecurityMode::Sandbox, SecurityMode::Insecure] {
            assert_eq!(m.as_str().parse(), Ok(m));
            assert_eq!(
                serde_json::to_value(m).expect("serializes"),
                serde_json::json!(m.as_str())
            );
        }
        assert_eq!(SecurityMode::default(), SecurityMode::Sandbox);
        let e = "weird".parse::<SecurityMode>().expect_err("unknown");
        assert_eq!(e.to_string(), "security weird is not valid");
    }
}

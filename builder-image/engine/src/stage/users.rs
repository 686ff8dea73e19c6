//! Users and groups as a stage's own /etc/passwd and /etc/group define them: `USER` for RUN
//! (runc's `GetExecUser` rules) and `COPY/ADD --chown` (BuildKit's rules). Pure logic over the
//! files' text.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// The identity a RUN executes as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (the groups that list the user), when no group was given.
    pub groups: Vec<u32>,
    pub home: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
    #[error("invalid user specification {0:?}")]
    Invalid(String),
}

pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(GroupEntry {
                name: f.first()?.to_string(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

fn split_spec(spec: &str) -> Result<(&str, Option<&str>), UserError> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if u.is_empty() && g.is_none() {
        return Err(UserError::Invalid(spec.into()));
    }
    Ok((u, g))
}

fn find_group(spec: &str, groups: &[GroupEntry]) -> Result<u32, UserError> {
    match groups.iter().find(|g| g.name == spec) {
        Some(g) => Ok(g.gid),
        None if spec == "root" => Ok(0),
        None => spec.parse().map_err(|_| UserError::NoGroup(spec.into())),
    }
}

/// `USER` for RUN: `name`, `uid`, `name:group`, `uid:gid` (and mixes). A numeric user absent
/// from passwd runs with gid 0 and home `/`; a name must exist.
pub fn exec_user(
    spec: &str,
    passwd: &[PasswdEntry],
    groups: &[GroupEntry],
) -> Result<ExecUser, UserError> {
    let (u, g) = split_spec(spec)?;
    let u = if u.is_empty() { "0" } else { u };
    let found = passwd.iter().find(|p| p.name == u).or_else(|| {
        u.parse::<u32>()
            .ok()
            .and_then(|n| passwd.iter().find(|p| p.uid == n))
    });
    let mut user = match (found, u.parse::<u32>()) {
        (Some(p), _) => ExecUser {
            uid: p.uid,
            gid: p.gid,
            groups: vec![],
            home: p.home.clone(),
        },
        (None, Ok(n)) => ExecUser {
            uid: n,
            gid: 0,
            groups: vec![],
            home: "/".into(),
        },
        (None, Err(_)) => return Err(UserError::NoUser(u.into())),
    };
    match g {
        Some(g) if !g.is_empty() => user.gid = find_group(g, groups)?,
        _ => {
            if let Some(p) = found {
                user.groups = groups
                    .iter()
                    .filter(|gr| gr.members.contains(&p.name))
                    .map(|gr| gr.gid)
                    .collect();
            }
        }
    }
    Ok(user)
}

/// `--chown` for COPY/ADD, and the owner of the directories WORKDIR makes (BuildKit gives
/// both the same file-operation user): a user without a group means the same number for
/// both; `root` is 0 without /etc/passwd or /etc/group (BuildKit's parseUID and parseGID).
pub fn chown_ids(
    spec: &str,
    passwd: &[PasswdEntry],
    groups: &[GroupEntry],
) -> Result<(u32, u32), UserError> {
    let (u, g) = split_spec(spec)?;
    let uid = match passwd.iter().find(|p| p.name == u) {
        Some(p) => p.uid,
        None if u == "root" => 0,
        None => u.parse().map_err(|_| UserError::NoUser(u.into()))?,
    };
    let gid = match g {
        Some(g) if !g.is_empty() => find_group(g, groups)?,
        _ => uid,
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:App:/home/app:/bin/sh\n# comment\nbad line\n";
    const GROUP: &str = "root:x:0:\nappgrp:x:1001:\ndocker:x:999:app,other\nwheel:x:10:root\n";

    #[test]
    fn exec_user_like_runc() {
        let (p, g) = (parse_passwd(PASSWD), parse_group(GROUP));
        let e = |s| exec_user(s, &p, &g);
        assert_eq!(
            e("app"),
            Ok(ExecUser {
                uid: 1000,
                gid: 1001,
                groups: vec![999],
                home: "/home/app".into()
            })
        );
        assert_eq!(e("1000").map(|u| (u.uid, u.gid)), Ok((1000, 1001)));
        assert_eq!(
            e("app:wheel").map(|u| (u.uid, u.gid, u.groups)),
            Ok((1000, 10, vec![]))
        );
        assert_eq!(
            e("4242:7").map(|u| (u.uid, u.gid, u.home)),
            Ok((4242, 7, "/".to_string()))
        );
        assert_eq!(e("4242").map(|u| (u.uid, u.gid)), Ok((4242, 0)));
        assert_eq!(e("nobody"), Err(UserError::NoUser("nobody".into())));
        assert_eq!(e("app:nogroup"), Err(UserError::NoGroup("nogroup".into())));
        assert_eq!(e("root").map(|u| u.groups), Ok(vec![10]));
    }

    #[test]
    fn chown_like_buildkit() {
        let (p, g) = (parse_passwd(PASSWD), parse_group(GROUP));
        assert_eq!(chown_ids("app", &p, &g), Ok((1000, 1000)));
        assert_eq!(chown_ids("app:docker", &p, &g), Ok((1000, 999)));
        assert_eq!(chown_ids("10:20", &p, &g), Ok((10, 20)));
        assert!(chown_ids("ghost", &p, &g).is_err());
        assert!(chown_ids("", &p, &g).is_err());
        // `root` needs no passwd or group file, as in BuildKit.
        assert_eq!(chown_ids("root", &[], &[]), Ok((0, 0)));
        assert_eq!(chown_ids("root:root", &[], &[]), Ok((0, 0)));
        assert!(chown_ids("app", &[], &[]).is_err());
    }
}

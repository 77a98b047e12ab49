//! The Unix user commands run as (`runner.shell.user`), resolved once at start-up.
//!
//! Commands start through util-linux's `setpriv`, which takes the user's id, its primary group
//! and its supplementary groups (`--init-groups`) and then executes the shell: std sets
//! supplementary groups only through an unstable API or an `unsafe` hook, and Kairos has no
//! unsafe code. Without `setpriv` (it is part of every Debian system), the child takes the
//! user's id and primary group only (std's `uid` and `gid`, which drop root's supplementary
//! groups), and Kairos says so at start-up.

use std::path::PathBuf;

use nix::unistd::{Gid, Uid, User};

/// A user to run commands as, with its primary group and home.
#[derive(Debug, Clone)]
pub struct RunAs {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
    pub home: PathBuf,
    /// `setpriv`, when the system has it.
    pub setpriv: Option<PathBuf>,
}

impl RunAs {
    /// Looks `name` up in the system's user database.
    ///
    /// # Errors
    /// A message when the user does not exist, or Kairos cannot become it (it does not run
    /// as root).
    pub fn resolve(name: &str) -> Result<Self, String> {
        let user = User::from_name(name)
            .map_err(|error| format!("runner.shell.user: cannot look `{name}` up: {error}"))?
            .ok_or_else(|| format!("runner.shell.user: there is no Unix user `{name}`"))?;
        if !Uid::effective().is_root() && Uid::effective() != user.uid {
            return Err(format!(
                "runner.shell.user: Kairos must run as root to run commands as `{name}`"
            ));
        }
        let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
            .iter()
            .map(PathBuf::from)
            .find(|path| path.exists());
        if setpriv.is_none() {
            tracing::warn!(
                user = name,
                "setpriv (util-linux) is missing: commands run with the user's primary group \
                 only, without its supplementary groups"
            );
        }
        Ok(Self {
            name: name.to_owned(),
            uid: user.uid,
            gid: user.gid,
            home: user.dir,
            setpriv,
        })
    }
}

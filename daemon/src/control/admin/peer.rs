//! Who is on the other end of an admin connection, and whether they may use it.

use std::ffi::CString;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::unistd::{getgrouplist, Gid, Group, Uid, User};
use tokio::net::UnixStream;

/// The peer's credentials as the kernel reports them (`SO_PEERCRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    pub uid: u32,
    pub gid: u32,
    pub pid: i32,
}

pub fn credentials(stream: &UnixStream) -> nix::Result<PeerCred> {
    let c = getsockopt(stream, PeerCredentials)?;
    Ok(PeerCred {
        uid: c.uid(),
        gid: c.gid(),
        pid: c.pid(),
    })
}

/// Root, the daemon's own user, and members of the admin group may use the socket.
pub fn authorize(peer: &PeerCred, admin_group: Option<&str>) -> Result<(), String> {
    if peer.uid == 0 || peer.uid == Uid::effective().as_raw() {
        return Ok(());
    }
    let Some(group_name) = admin_group else {
        return Err(format!(
            "uid {} is neither root nor the daemon's user, and no [admin] group is configured",
            peer.uid
        ));
    };
    let group = match Group::from_name(group_name) {
        Ok(Some(g)) => g,
        Ok(None) => return Err(format!("admin group `{group_name}` does not exist")),
        Err(e) => return Err(format!("cannot look up admin group `{group_name}`: {e}")),
    };
    if peer.gid == group.gid.as_raw() || is_member(peer.uid, group.gid) {
        return Ok(());
    }
    Err(format!(
        "uid {} is not a member of the admin group `{group_name}`",
        peer.uid
    ))
}

/// Primary or supplementary membership of `uid`'s user in `gid`, from the user database.
fn is_member(uid: u32, gid: Gid) -> bool {
    let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else {
        return false;
    };
    if user.gid == gid {
        return true;
    }
    let Ok(name) = CString::new(user.name.as_bytes()) else {
        return false;
    };
    getgrouplist(&name, user.gid)
        .map(|groups| groups.contains(&gid))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32) -> PeerCred {
        PeerCred { uid, gid, pid: 1 }
    }

    #[test]
    fn root_and_self_are_always_allowed() {
        assert!(authorize(&peer(0, 0), None).is_ok());
        let me = Uid::effective().as_raw();
        assert!(authorize(&peer(me, 12345), None).is_ok());
    }

    #[test]
    fn others_need_the_admin_group() {
        if Uid::effective().is_root() {
            // uid 65534 (nobody) is neither root nor us.
            let e = authorize(&peer(65534, 65534), None).unwrap_err();
            assert!(e.contains("no [admin] group"), "{e}");
            let e = authorize(&peer(65534, 65534), Some("no-such-group-xyz")).unwrap_err();
            assert!(e.contains("does not exist"), "{e}");
            // Primary gid of the connection counts.
            assert!(authorize(&peer(65534, 0), Some("root")).is_ok());
        }
    }
}

//! Peer pins kept across restarts: one file per community in the state directory, one
//! `identity id mac ip last-seen` line per pinned member (last seen in Unix seconds), so a
//! restarted edge still refuses an announcement that puts another identity behind a member's
//! id, MAC or IP (see `proto::pins`).

use crate::proto::PinnedPeer;
use n2n_kit::os;
use n2n_protocol::crypto::identity::Fingerprint;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The pins file of a community (its name and verifier: the same name with another
/// passphrase is another community and keeps other pins).
pub fn file(dir: &Path, community: &str, verifier: Option<[u8; 32]>) -> PathBuf {
    let mut key = community.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(verifier.as_ref().map_or(&[][..], |v| &v[..]));
    let id: String = Fingerprint::of(&key).0[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    dir.join(format!("peer-pins-{id}"))
}

/// The pins saved at `path` (none if it does not exist), aged to `unix_now`.
pub fn load(path: &Path, unix_now: u64) -> anyhow::Result<Vec<PinnedPeer>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => anyhow::bail!("{}: {e}", path.display()),
    };
    let mut pins = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let pin = parse(line, unix_now).ok_or_else(|| {
            anyhow::anyhow!(
                "{} line {}: want 'identity id mac ip last-seen'; delete the file to start over (peers are pinned again at first sight)",
                path.display(),
                n + 1
            )
        })?;
        pins.push(pin);
    }
    Ok(pins)
}

fn parse(line: &str, unix_now: u64) -> Option<PinnedPeer> {
    let mut f = line.split_whitespace();
    let identity = os::parse_hex::<32>(f.next()?)?;
    let id = f.next()?.parse().ok()?;
    let mac = f.next()?.parse().ok()?;
    let ip = f.next()?.parse().ok()?;
    let seen: u64 = f.next()?.parse().ok()?;
    if f.next().is_some() {
        return None;
    }
    Some(PinnedPeer {
        identity,
        id,
        mac,
        ip,
        away: Some(Duration::from_secs(unix_now.saturating_sub(seen))),
    })
}

/// Saves `pins` at `path` (mode 0600, atomically), with `community` named in a comment.
pub fn save(
    path: &Path,
    community: &str,
    pins: &[PinnedPeer],
    unix_now: u64,
) -> std::io::Result<()> {
    let mut text = format!(
        "# n2n-rs edge: identity keys pinned to the members of {community:?}; delete to start over\n"
    );
    for p in pins {
        let hex: String = p.identity.iter().map(|b| format!("{b:02x}")).collect();
        let seen = unix_now.saturating_sub(p.away.map_or(0, |d| d.as_secs()));
        text += &format!("{hex} {} {} {} {seen}\n", p.id, p.mac, p.ip);
    }
    os::write_private_file(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use n2n_protocol::types::Mac;

    #[test]
    fn saved_pins_load_back_aged_and_a_bad_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), "acme", Some([7; 32]));
        assert_ne!(
            path,
            file(dir.path(), "acme", None),
            "open and closed keep apart"
        );
        assert!(load(&path, 1000).unwrap().is_empty());
        let pins = vec![
            PinnedPeer {
                identity: [1; 32],
                id: 3,
                mac: Mac([2, 0, 0, 0, 0, 3]),
                ip: "10.1.2.3".parse().unwrap(),
                away: None,
            },
            PinnedPeer {
                identity: [2; 32],
                id: 4,
                mac: Mac([2, 0, 0, 0, 0, 4]),
                ip: "10.1.2.4".parse().unwrap(),
                away: Some(Duration::from_secs(40)),
            },
        ];
        save(&path, "acme", &pins, 1000).unwrap();
        let back = load(&path, 1100).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].away, Some(Duration::from_secs(100)));
        assert_eq!(back[1].away, Some(Duration::from_secs(140)));
        assert_eq!(
            (back[1].identity, back[1].id, back[1].mac, back[1].ip),
            (pins[1].identity, 4, pins[1].mac, pins[1].ip)
        );
        let mut text = std::fs::read_to_string(&path).unwrap();
        text += "zz 1 2\n";
        std::fs::write(&path, text).unwrap();
        let err = load(&path, 1100).unwrap_err().to_string();
        assert!(
            err.contains("line 4") && err.contains("delete the file"),
            "{err}"
        );
    }
}

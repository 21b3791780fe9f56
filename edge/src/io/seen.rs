//! Supernode identities seen before (trust on first use), kept in the state directory as
//! `address fingerprint` lines: an edge given no `supernode_fingerprint` pins each
//! supernode's identity at first contact and refuses a different one later, until
//! `edge trust-supernode` forgets it.

use n2n_kit::os;
use n2n_protocol::crypto::identity::Fingerprint;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

/// File name inside the state directory.
pub const SEEN_FILE: &str = "supernode-identities";

/// The identities seen before (none if the file does not exist).
pub fn load(dir: &Path) -> anyhow::Result<BTreeMap<SocketAddr, Fingerprint>> {
    let path = dir.join(SEEN_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(anyhow::anyhow!("{}: {e}", path.display())),
    };
    let mut seen = BTreeMap::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let parsed = line.split_once(' ').and_then(|(addr, fp)| {
            Some((addr.parse().ok()?, fp.trim().parse::<Fingerprint>().ok()?))
        });
        let (addr, fp) = parsed.ok_or_else(|| {
            anyhow::anyhow!(
                "{} line {}: want 'address fingerprint'; `edge trust-supernode` starts over",
                path.display(),
                n + 1
            )
        })?;
        seen.insert(addr, fp);
    }
    Ok(seen)
}

/// Writes the identities seen (mode 0600, atomically).
pub fn save(dir: &Path, seen: &BTreeMap<SocketAddr, Fingerprint>) -> std::io::Result<()> {
    let text: String = seen.iter().map(|(a, f)| format!("{a} {f}\n")).collect();
    os::write_private_file(&dir.join(SEEN_FILE), text.as_bytes())
}

/// Forgets the identity seen at `addr` (all of them if None); returns how many went.
pub fn forget(dir: &Path, addr: Option<SocketAddr>) -> anyhow::Result<usize> {
    let mut seen = load(dir)?;
    let before = seen.len();
    match addr {
        Some(a) => {
            seen.remove(&a);
        }
        None => seen.clear(),
    }
    save(dir, &seen)?;
    Ok(before - seen.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_identities_load_back_and_can_be_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_empty());
        let (a, b): (SocketAddr, SocketAddr) = (
            "192.0.2.1:7777".parse().unwrap(),
            "[2001:db8::1]:7777".parse().unwrap(),
        );
        let seen = BTreeMap::from([(a, Fingerprint::of(b"one")), (b, Fingerprint::of(b"two"))]);
        save(dir.path(), &seen).unwrap();
        assert_eq!(load(dir.path()).unwrap(), seen);
        assert_eq!(forget(dir.path(), Some(a)).unwrap(), 1);
        assert_eq!(load(dir.path()).unwrap().len(), 1);
        assert_eq!(forget(dir.path(), None).unwrap(), 1);
        std::fs::write(dir.path().join(SEEN_FILE), "junk\n").unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("trust-supernode"), "{e}");
    }
}

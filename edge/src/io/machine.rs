//! The persistent machine id: 16 random bytes, created once, from which the edge's MAC in
//! each community is derived (so a machine keeps its MAC, and its lease, across restarts).

use n2n_kit::os;
use std::path::Path;

/// File name inside the state directory.
pub const MACHINE_ID_FILE: &str = "machine-id";

/// The identity key's file: the Ed25519 seed this machine's leases belong to. Losing it
/// loses the leases (an operator can release them: `supernode release-lease`).
pub const IDENTITY_FILE: &str = "identity";

/// Loads or creates the machine id in `dir`. Edges starting at the same moment on one
/// machine (several communities at boot) agree on one id: only one creates the file.
pub fn load_or_create(dir: &Path) -> anyhow::Result<[u8; 16]> {
    load_or_create_secret(dir, MACHINE_ID_FILE, "a new MAC")
}

/// Loads or creates the identity key seed in `dir` (same guarantees as the machine id).
pub fn identity(dir: &Path) -> anyhow::Result<[u8; 32]> {
    load_or_create_secret(dir, IDENTITY_FILE, "a new identity (and new leases)")
}

fn load_or_create_secret<const N: usize>(
    dir: &Path,
    file: &str,
    fresh: &str,
) -> anyhow::Result<[u8; N]> {
    let path = dir.join(file);
    os::load_or_create_secret(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => anyhow::anyhow!("{e}; delete it to get {fresh}"),
        _ => e.into(),
    })
}

/// 32 bytes from the operating system's random source (seeds the core's RNG).
pub fn random_seed() -> anyhow::Result<[u8; 32]> {
    Ok(os::random_bytes()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 12 #9: concurrent first starts raced on one `machine-id.tmp`: one failed ("No
    /// such file or directory") or two ran with different ids.
    #[test]
    fn concurrent_first_starts_agree_on_one_machine_id() {
        for _ in 0..40 {
            let dir = tempfile::tempdir().unwrap();
            let start = std::sync::Arc::new(std::sync::Barrier::new(6));
            let ids: Vec<_> = (0..6)
                .map(|_| {
                    let (d, start) = (dir.path().to_path_buf(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        load_or_create(&d).map_err(|e| e.to_string())
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect();
            let first = ids[0].clone().unwrap();
            for id in ids {
                assert_eq!(id.unwrap(), first);
            }
            assert_eq!(load_or_create(dir.path()).unwrap(), first);
        }
    }

    #[test]
    fn created_once_then_stable_and_corruption_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap();
        assert_eq!(load_or_create(dir.path()).unwrap(), a);
        let key = identity(dir.path()).unwrap();
        assert_eq!(identity(dir.path()).unwrap(), key);
        assert_ne!(key[..16], a[..], "two secrets, not one");
        std::fs::write(dir.path().join(MACHINE_ID_FILE), "zz").unwrap();
        assert!(
            load_or_create(dir.path())
                .unwrap_err()
                .to_string()
                .contains("corrupt")
        );
    }
}

//! The persistent machine id: 16 random bytes, created once, from which the edge's MAC in
//! each community is derived (so a machine keeps its MAC, and its lease, across restarts).

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// File name inside the state directory.
pub const MACHINE_ID_FILE: &str = "machine-id";

/// Loads or creates the machine id in `dir`.
pub fn load_or_create(dir: &Path) -> anyhow::Result<[u8; 16]> {
    let path = dir.join(MACHINE_ID_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let t = text.trim();
        let mut id = [0u8; 16];
        if t.len() == 32 && t.is_ascii() {
            let ok = id.iter_mut().enumerate().all(|(i, b)| {
                t.get(2 * i..2 * i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .map(|v| *b = v)
                    .is_some()
            });
            if ok {
                return Ok(id);
            }
        }
        anyhow::bail!(
            "{} is corrupt (want 32 hex digits); delete it to get a new MAC",
            path.display()
        );
    }
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut id = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut id)?;
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = dir.join(format!("{MACHINE_ID_FILE}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(format!("{hex}\n").as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(id)
}

/// 32 bytes from the operating system's random source (seeds the core's RNG).
pub fn random_seed() -> anyhow::Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut seed)?;
    Ok(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_stable_and_corruption_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap();
        assert_eq!(load_or_create(dir.path()).unwrap(), a);
        std::fs::write(dir.path().join(MACHINE_ID_FILE), "zz").unwrap();
        assert!(
            load_or_create(dir.path())
                .unwrap_err()
                .to_string()
                .contains("corrupt")
        );
    }
}

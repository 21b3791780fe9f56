//! The persistent identity key: created on first start with mode 0600, loaded afterwards.

use n2n_protocol::crypto::identity::{IDENTITY_BITS, Identity};
use n2n_protocol::rng::CoreRng;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// File name of the identity key inside the state directory.
pub const IDENTITY_FILE: &str = "identity.pem";

/// Loads the identity from `dir`, or creates and stores a new one.
pub fn load_or_create(dir: &Path, rng: &mut CoreRng) -> anyhow::Result<Identity> {
    let path = dir.join(IDENTITY_FILE);
    if path.exists() {
        let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "identity key is readable by others; fixing to 0600");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        let pem = std::fs::read_to_string(&path)?;
        return Identity::from_pem(&pem).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
    }
    let id = Identity::generate(rng, IDENTITY_BITS)?;
    if !n2n_kit::os::create_private_file(&path, id.to_pem()?.as_bytes())? {
        // Another process created it meanwhile: use that one.
        return load_or_create(dir, rng);
    }
    tracing::info!(path = %path.display(), "created a new supernode identity");
    Ok(id)
}

/// 32 bytes from the operating system's random source.
pub fn os_seed() -> anyhow::Result<[u8; 32]> {
    Ok(n2n_kit::os::random_bytes()?)
}

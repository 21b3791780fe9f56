//! The API token: a random secret in `STATE_DIR/api-token` (mode 0600) that requests which
//! change state must carry, so only who can read the state dir (root, the service user)
//! can make them, wherever the API listens.

use n2n_kit::config::HexKey;
use std::path::Path;

/// File name of the token inside the state directory.
pub const TOKEN_FILE: &str = "api-token";

/// Loads the token from `dir`, or creates it.
pub fn load_or_create(dir: &Path) -> anyhow::Result<String> {
    let secret = n2n_kit::os::load_or_create_secret(&dir.join(TOKEN_FILE))?;
    Ok(HexKey(secret).to_string())
}

/// Reads the token a running supernode created in `dir`.
pub fn read(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join(TOKEN_FILE);
    let secret = n2n_kit::os::read_secret(&path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the API token {}: {e}; a supernode creates it at start",
            path.display()
        )
    })?;
    Ok(HexKey(secret).to_string())
}

//! The API token: a random secret in `STATE_DIR/api-token` (mode 0600) that requests which
//! change state must carry, so only who can read the state dir (root, the service user)
//! can make them, wherever the API listens.

use std::path::Path;

/// File name of the token inside the state directory.
pub const TOKEN_FILE: &str = "api-token";

/// Loads the token from `dir`, or creates it.
pub fn load_or_create(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join(TOKEN_FILE);
    if !path.exists() {
        let bytes: [u8; 32] = n2n_common::os::random_bytes()?;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        // false: another process created it meanwhile; read theirs.
        n2n_common::os::create_private_file(&path, format!("{hex}\n").as_bytes())?;
    }
    read(dir)
}

/// Reads the token a running supernode created in `dir`.
pub fn read(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join(TOKEN_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("cannot read the API token {}: {e}", path.display()))?;
    let token = text.trim();
    if token.len() < 32 {
        anyhow::bail!(
            "{} is corrupt; delete it and restart the supernode",
            path.display()
        );
    }
    Ok(token.to_string())
}

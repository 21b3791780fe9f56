//! Small operating-system helpers the daemons share: privilege check, state directory, OS
//! randomness, and private files written atomically. (The protocol cores never call these.)

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// True when the process runs with effective user id 0 (read from /proc, no unsafe code).
pub fn is_root() -> bool {
    crate::proc::euid(crate::proc::Pid::This) == Some(0)
}

/// The platform's state directory: /var/lib/n2n-rs as root, else $XDG_STATE_HOME/n2n-rs
/// (~/.local/state/n2n-rs).
pub fn default_state_dir() -> PathBuf {
    if is_root() {
        return PathBuf::from("/var/lib/n2n-rs");
    }
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("n2n-rs")
}

/// `N` bytes from the operating system's random source.
pub fn random_bytes<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut out = [0u8; N];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut out)?;
    Ok(out)
}

/// Reads a secret of `N` random bytes kept as hex in `path` (see [`load_or_create_secret`]).
pub fn read_secret<const N: usize>(path: &Path) -> std::io::Result<[u8; N]> {
    let text = std::fs::read_to_string(path)?;
    parse_hex(text.trim()).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is corrupt (want {} hex digits)", path.display(), 2 * N),
        )
    })
}

/// Loads the secret in `path`, or creates it from `N` random bytes (hex, mode 0600). Processes
/// starting at the same moment agree on one secret: only one creates the file.
pub fn load_or_create_secret<const N: usize>(path: &Path) -> std::io::Result<[u8; N]> {
    if path.exists() {
        return read_secret(path);
    }
    let secret: [u8; N] = random_bytes()?;
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    if create_private_file(path, format!("{hex}\n").as_bytes())? {
        Ok(secret)
    } else {
        read_secret(path)
    }
}

/// `N` bytes from exactly `2N` hex digits.
pub fn parse_hex<const N: usize>(t: &str) -> Option<[u8; N]> {
    if t.len() != 2 * N || !t.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(t.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Creates `dir` (mode 0700) if needed.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes `contents` to `path` with mode 0600, atomically: a temporary file with a unique
/// name, created exclusively and never through a symlink, then fsync, rename and a sync of
/// the directory. Whatever was at `path` (a looser mode, a symlink) is replaced, not followed.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = write_private_temp(path, contents)?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_parent(path)
}

/// Creates `path` with `contents` (mode 0600) only if nothing is there, atomically and
/// complete (a hard link of a finished temporary file): of concurrent callers exactly one
/// creates it. Returns false if it already existed.
pub fn create_private_file(path: &Path, contents: &[u8]) -> std::io::Result<bool> {
    let tmp = write_private_temp(path, contents)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => sync_parent(path).map(|()| true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Writes a finished 0600 temporary file next to `path` and returns its name. The directory
/// is created 0700, and made 0700 if it is ours (same owner as the file we just created) and
/// not a shared sticky directory such as /tmp.
fn write_private_temp(path: &Path, contents: &[u8]) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = parent(path);
    create_private_dir(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"))?
        .to_string_lossy()
        .into_owned();
    let mut attempt = 0;
    let (tmp, mut file) = loop {
        let suffix: String = random_bytes::<8>()?
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let tmp = dir.join(format!(".{name}.{suffix}.tmp"));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 8 => {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    };
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let (dir_meta, file_meta) = (std::fs::metadata(dir)?, file.metadata()?);
    let mode = dir_meta.permissions().mode();
    if dir_meta.uid() == file_meta.uid() && mode & 0o1000 == 0 && mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(tmp)
}

/// Makes a rename or link in `path`'s directory durable.
fn sync_parent(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(parent(path))?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn private_files_are_0600_and_replaced_atomically() {
        let dir = tempfile_dir();
        let p = dir.join("sub/secret");
        write_private_file(&p, b"one").unwrap();
        write_private_file(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(dir.join("sub"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        assert_ne!(random_bytes::<16>().unwrap(), random_bytes::<16>().unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    /// Issue 12 #9: the old code wrote through `path.tmp`, following a symlink planted there
    /// (the victim was overwritten) and keeping a leftover's loose mode (0644 after rename).
    #[test]
    fn planted_symlinks_and_leftover_temp_files_are_neither_followed_nor_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (p, victim) = (dir.path().join("secret"), dir.path().join("victim"));
        std::fs::write(&victim, b"victim").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("secret.tmp")).unwrap();
        write_private_file(&p, b"key").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"victim");
        assert_eq!(std::fs::read(&p).unwrap(), b"key");
        assert_eq!(mode(&p), 0o600);

        let q = dir.path().join("other");
        std::fs::write(dir.path().join("other.tmp"), b"old").unwrap();
        std::fs::set_permissions(
            dir.path().join("other.tmp"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        write_private_file(&q, b"key").unwrap();
        assert_eq!(mode(&q), 0o600);

        // A symlink at the path itself is replaced by the file, never written through.
        let r = dir.path().join("linked");
        std::os::unix::fs::symlink(&victim, &r).unwrap();
        write_private_file(&r, b"key").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"victim");
        assert!(std::fs::symlink_metadata(&r).unwrap().file_type().is_file());
        assert_eq!(mode(&r), 0o600);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .filter(|e| !["secret.tmp", "other.tmp"].contains(&&*e.file_name().to_string_lossy()))
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }

    /// Issue 12 #9: an existing state directory kept whatever mode it had.
    #[test]
    fn an_existing_state_dir_is_made_private_but_a_sticky_shared_one_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
        write_private_file(&state.join("machine-id"), b"x").unwrap();
        assert_eq!(mode(&state), 0o700);
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        write_private_file(&shared.join("f"), b"x").unwrap();
        assert_eq!(mode(&shared), 0o1777);
    }

    #[test]
    fn create_private_file_creates_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("id");
        assert!(create_private_file(&p, b"first").unwrap());
        assert!(!create_private_file(&p, b"second").unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), b"first");
        assert_eq!(mode(&p), 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("n2n-os-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

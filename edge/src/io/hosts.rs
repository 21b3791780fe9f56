//! Peer names in a hosts file (`hosts_file: /etc/hosts`): one block per community, between
//! marker lines, with `NAME.COMMUNITY` for this edge and every peer, rewritten when the peers
//! change and removed at exit. Everything outside the block is kept byte for byte.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;

/// Keeps a community's block in a hosts file up to date.
pub struct HostsFile {
    path: std::path::PathBuf,
    community: String,
    written: Option<Vec<(Ipv4Addr, String)>>,
}

impl HostsFile {
    /// Manages `community`'s block in the file at `path`.
    pub fn new(path: &Path, community: &str) -> Self {
        Self {
            path: path.to_path_buf(),
            community: community.to_string(),
            written: None,
        }
    }

    /// Writes the block for `entries` (address, peer-chosen description; this edge first,
    /// then peers oldest first: a name taken twice goes to the first) unless it is what was
    /// written last. Errors are for the caller to report: the VPN runs on without names.
    pub fn update(&mut self, entries: Vec<(Ipv4Addr, String)>) -> std::io::Result<()> {
        if self.written.as_ref() == Some(&entries) {
            return Ok(());
        }
        let old = read(&self.path)?;
        let new = with_block(&old, &self.community, &entries);
        if new != old {
            replace(&self.path, &new)?;
        }
        self.written = Some(entries);
        Ok(())
    }

    /// Takes the block out (at exit).
    pub fn remove(&mut self) -> std::io::Result<()> {
        let old = read(&self.path)?;
        let new = with_block(&old, &self.community, &[]);
        if new != old {
            replace(&self.path, &new)?;
        }
        self.written = None;
        Ok(())
    }
}

/// `desc` as a host name label: lower-case letters, digits and inner hyphens, at most 63
/// (peers choose their descriptions: nothing else may reach the file).
pub fn label(desc: &str) -> Option<String> {
    let mut out = String::new();
    for c in desc.chars().flat_map(char::to_lowercase) {
        match c {
            'a'..='z' | '0'..='9' => out.push(c),
            '-' | '_' | ' ' | '.' if !out.is_empty() && !out.ends_with('-') => out.push('-'),
            _ => {}
        }
    }
    let out: String = out.trim_end_matches('-').chars().take(63).collect();
    let out = out.trim_end_matches('-').to_string();
    (!out.is_empty()).then_some(out)
}

/// `text` with the community's block replaced by one for `entries` (none: no block). A
/// block whose end marker was edited away is left alone, not swallowed.
pub fn with_block(text: &[u8], community: &str, entries: &[(Ipv4Addr, String)]) -> Vec<u8> {
    let Some(domain) = label(community) else {
        return text.to_vec();
    };
    let begin = format!("# BEGIN n2n-rs {domain}");
    let end = format!("# END n2n-rs {domain}");
    let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
    let trim = |l: &[u8]| l.strip_suffix(b"\n").unwrap_or(l).to_vec();
    // Our block is the end marker and the nearest begin marker above it (an orphaned begin
    // marker further up is someone's edit: it stays, with the lines under it).
    let stop = lines.iter().position(|l| trim(l) == end.as_bytes());
    let start = stop.and_then(|e| {
        lines
            .get(..e)?
            .iter()
            .rposition(|l| trim(l) == begin.as_bytes())
    });
    let stop = start.and(stop);
    let mut out = Vec::with_capacity(text.len() + 64 * entries.len());
    for (i, l) in lines.iter().enumerate() {
        let in_block = matches!((start, stop), (Some(b), Some(e)) if (b..=e).contains(&i));
        if !in_block {
            out.extend_from_slice(l);
        }
    }
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    let mut seen = std::collections::BTreeSet::new();
    let names: Vec<String> = entries
        .iter()
        .filter_map(|(ip, desc)| {
            let name = label(desc)?;
            seen.insert(name.clone())
                .then(|| format!("{ip}\t{name}.{domain}\n"))
        })
        .collect();
    if !names.is_empty() {
        out.extend_from_slice(begin.as_bytes());
        out.push(b'\n');
        names
            .iter()
            .for_each(|l| out.extend_from_slice(l.as_bytes()));
        out.extend_from_slice(end.as_bytes());
        out.push(b'\n');
    }
    out
}

/// The file's bytes; a missing file is empty (it will be created).
fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    match std::fs::read(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        r => r,
    }
}

/// Replaces the file's contents atomically (a new file renamed over it, keeping its
/// permissions), so resolvers never see it half written. Where it cannot be renamed over (a
/// bind-mounted /etc/hosts in a container) it is rewritten in place.
fn replace(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("hosts");
    let tmp = path.with_file_name(format!(".{name}.n2n-rs.{}", std::process::id()));
    let renamed = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        if let Ok(meta) = std::fs::metadata(path) {
            std::fs::set_permissions(&tmp, meta.permissions())?;
        }
        std::fs::rename(&tmp, path)
    })();
    if renamed.is_ok() {
        return Ok(());
    }
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 128, 0, last)
    }

    fn block(text: &str, community: &str, entries: &[(Ipv4Addr, &str)]) -> String {
        let e: Vec<_> = entries.iter().map(|(i, d)| (*i, d.to_string())).collect();
        String::from_utf8(with_block(text.as_bytes(), community, &e)).unwrap()
    }

    #[test]
    fn labels_keep_only_host_name_characters() {
        assert_eq!(label("Alice's Laptop").as_deref(), Some("alices-laptop"));
        assert_eq!(label("nas_01.home").as_deref(), Some("nas-01-home"));
        assert_eq!(
            label("<script>x\n10.0.0.1 evil").as_deref(),
            Some("scriptx10-0-0-1-evil")
        );
        assert_eq!(label("--"), None);
        assert_eq!(label("\u{ff}"), None);
        assert_eq!(label(&"a".repeat(100)).unwrap().len(), 63);
    }

    #[test]
    fn the_block_is_added_replaced_and_removed_and_nothing_else_changes() {
        let base = "127.0.0.1\tlocalhost\n::1 ip6-localhost\n";
        let one = block(base, "acme", &[(ip(1), "alice"), (ip(2), "bob")]);
        assert_eq!(
            one,
            format!(
                "{base}# BEGIN n2n-rs acme\n10.128.0.1\talice.acme\n10.128.0.2\tbob.acme\n# END n2n-rs acme\n"
            )
        );
        // Another community's block and lines added after ours survive.
        let other = block(&format!("{one}192.0.2.9 printer\n"), "lab", &[(ip(9), "x")]);
        let two = block(&other, "acme", &[(ip(3), "carol")]);
        assert!(two.contains("10.128.0.3\tcarol.acme\n"));
        assert!(!two.contains("alice"));
        assert!(two.contains("192.0.2.9 printer\n") && two.contains("x.lab\n"));
        assert_eq!(
            block(&block(&two, "acme", &[]), "lab", &[]),
            format!("{base}192.0.2.9 printer\n")
        );
        // No bare names (a peer must not take over `gitlab`), and a name taken twice goes
        // to the first entry (this edge, then the oldest peer).
        let dup = block(
            base,
            "acme",
            &[(ip(5), "nas"), (ip(6), "NAS"), (ip(4), "...")],
        );
        assert!(dup.contains("10.128.0.5\tnas.acme\n"), "{dup}");
        assert!(
            !dup.contains("10.128.0.6") && !dup.contains("10.128.0.4"),
            "{dup}"
        );
        // A file without a final newline keeps its last line whole.
        assert!(block("1.2.3.4 x", "acme", &[(ip(1), "a")]).starts_with("1.2.3.4 x\n# BEGIN"));
    }

    #[test]
    fn a_block_whose_end_was_edited_away_swallows_nothing() {
        let text = "# BEGIN n2n-rs acme\n10.128.0.1\told.acme\n192.0.2.1 router\n";
        let out = block(text, "acme", &[(ip(2), "new")]);
        assert!(out.starts_with(text), "{out}");
        assert!(
            out.ends_with("10.128.0.2\tnew.acme\n# END n2n-rs acme\n"),
            "{out}"
        );
        // The next update replaces only the block it wrote.
        let again = block(&out, "acme", &[(ip(3), "newer")]);
        assert!(again.starts_with(text), "{again}");
        assert!(
            again.ends_with("10.128.0.3\tnewer.acme\n# END n2n-rs acme\n"),
            "{again}"
        );
        assert!(!again.contains("new.acme"), "{again}");
    }

    #[test]
    fn the_file_is_rewritten_only_when_the_entries_change_and_cleaned_at_exit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        // Not UTF-8 (a Latin-1 comment): kept byte for byte.
        let base = b"127.0.0.1 localhost # caf\xe9\n".to_vec();
        std::fs::write(&path, &base).unwrap();
        let mut h = HostsFile::new(&path, "acme");
        h.update(vec![(ip(1), "alice".into()), (ip(2), "bob".into())])
            .unwrap();
        let got = std::fs::read(&path).unwrap();
        assert!(got.starts_with(&base));
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.contains("10.128.0.1\talice.acme\n10.128.0.2\tbob.acme\n"),
            "{text}"
        );
        // Unchanged entries: no write (a hand edit stays until the peers change).
        std::fs::write(&path, "edited\n").unwrap();
        h.update(vec![(ip(1), "alice".into()), (ip(2), "bob".into())])
            .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "edited\n");
        h.update(vec![(ip(1), "alice".into())]).unwrap();
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .starts_with("edited\n# BEGIN")
        );
        h.remove().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "edited\n");
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // An unreadable file is an error, never an empty file to write over.
        let bad = dir.path().join("dir-not-file");
        std::fs::create_dir(&bad).unwrap();
        assert!(
            HostsFile::new(&bad, "acme")
                .update(vec![(ip(1), "a".into())])
                .is_err()
        );
    }
}

//! Peer names in a hosts file (`hosts_file: /etc/hosts`): one block per community, between
//! marker lines, with `NAME.COMMUNITY NAME` for this edge and every peer, rewritten when the
//! peers change and removed at exit. Everything outside the block is left as it was.

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

    /// Writes the block for `entries` (address, peer-chosen description) unless it is what
    /// was written last. Errors are for the caller to report: the VPN runs on without names.
    pub fn update(&mut self, mut entries: Vec<(Ipv4Addr, String)>) -> std::io::Result<()> {
        entries.sort();
        if self.written.as_ref() == Some(&entries) {
            return Ok(());
        }
        let old = std::fs::read_to_string(&self.path).unwrap_or_default();
        let new = with_block(&old, &self.community, &entries);
        write_in_place(&self.path, &new)?;
        self.written = Some(entries);
        Ok(())
    }

    /// Takes the block out (at exit).
    pub fn remove(&mut self) -> std::io::Result<()> {
        let old = std::fs::read_to_string(&self.path)?;
        let new = with_block(&old, &self.community, &[]);
        if new != old {
            write_in_place(&self.path, &new)?;
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

/// `text` with the community's block replaced by one for `entries` (none: no block).
pub fn with_block(text: &str, community: &str, entries: &[(Ipv4Addr, String)]) -> String {
    let Some(domain) = label(community) else {
        return text.to_string();
    };
    let begin = format!("# BEGIN n2n-rs {domain}");
    let end = format!("# END n2n-rs {domain}");
    let mut out = String::with_capacity(text.len() + 64 * entries.len());
    let mut inside = false;
    for line in text.lines() {
        if line == begin {
            inside = true;
        } else if inside && line == end {
            inside = false;
        } else if !inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    let lines: Vec<String> = entries
        .iter()
        .filter_map(|(ip, desc)| {
            let name = label(desc)?;
            Some(format!("{ip}\t{name}.{domain} {name}\n"))
        })
        .collect();
    if !lines.is_empty() {
        out.push_str(&begin);
        out.push('\n');
        lines.iter().for_each(|l| out.push_str(l));
        out.push_str(&end);
        out.push('\n');
    }
    out
}

/// Rewrites the file's contents in place (not by rename: /etc/hosts is often a bind mount,
/// and its owner and mode stay as they are).
fn write_in_place(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 128, 0, last)
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
        assert_eq!(label("ÿ"), None);
        assert_eq!(label(&"a".repeat(100)).unwrap().len(), 63);
    }

    #[test]
    fn the_block_is_added_replaced_and_removed_and_nothing_else_changes() {
        let base = "127.0.0.1\tlocalhost\n::1 ip6-localhost\n";
        let one = with_block(
            base,
            "acme",
            &[(ip(1), "alice".into()), (ip(2), "bob".into())],
        );
        assert_eq!(
            one,
            format!(
                "{base}# BEGIN n2n-rs acme\n10.128.0.1\talice.acme alice\n10.128.0.2\tbob.acme bob\n# END n2n-rs acme\n"
            )
        );
        // Another community's block and lines added after ours survive.
        let other = with_block(
            &format!("{one}192.0.2.9 printer\n"),
            "lab",
            &[(ip(9), "x".into())],
        );
        let two = with_block(&other, "acme", &[(ip(3), "carol".into())]);
        assert!(two.contains("10.128.0.3\tcarol.acme carol\n"));
        assert!(!two.contains("alice"));
        assert!(two.contains("192.0.2.9 printer\n") && two.contains("x.lab x\n"));
        assert_eq!(
            with_block(&with_block(&two, "acme", &[]), "lab", &[]),
            format!("{base}192.0.2.9 printer\n")
        );
        // A name that sanitises to nothing gets no line.
        assert_eq!(with_block(base, "acme", &[(ip(4), "...".into())]), base);
    }

    #[test]
    fn the_file_is_rewritten_only_when_the_entries_change_and_cleaned_at_exit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(&path, "127.0.0.1 localhost\n").unwrap();
        let mut h = HostsFile::new(&path, "acme");
        h.update(vec![(ip(2), "bob".into()), (ip(1), "alice".into())])
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("10.128.0.1\talice.acme alice\n10.128.0.2\tbob.acme bob\n"),
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
    }
}

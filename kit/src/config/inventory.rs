//! Every way a daemon can be configured, as text: each file key, the environment variable
//! that sets it, each flag with its aliases, and n2n-go's names. A golden test per daemon
//! compares it with a checked-in copy, so no key, flag or alias is lost by accident.
//! Lines are sorted: the order of declarations is not part of the surface.

use super::Legacy;
use std::fmt::Write;

/// The inventory of a daemon's configuration surface.
///
/// The file keys are the top-level keys of `defaults` (the settings), `env_keys` those read
/// from `N2N_*`.
pub fn inventory(
    cmd: &clap::Command,
    defaults: &impl serde::Serialize,
    env_keys: &[&str],
    legacy: Legacy,
) -> String {
    let file_keys: Vec<String> = match serde_json::to_value(defaults) {
        Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
        other => panic!("settings are not a map: {other:?}"),
    };
    let mut out = String::new();
    for k in &file_keys {
        let env = if env_keys.contains(&k.as_str()) {
            format!(" env N2N_{}", k.to_ascii_uppercase())
        } else {
            String::new()
        };
        let _ = writeln!(out, "key {k}{env}");
    }
    for k in env_keys
        .iter()
        .filter(|k| !file_keys.iter().any(|f| f == *k))
    {
        let _ = writeln!(out, "env-only N2N_{}", k.to_ascii_uppercase());
    }
    flags(&mut out, cmd, "");
    for (old, new) in legacy {
        let _ = writeln!(out, "n2n-go key {old} -> {}", new.unwrap_or("(ignored)"));
    }
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn flags(out: &mut String, cmd: &clap::Command, prefix: &str) {
    for a in cmd.get_arguments() {
        let mut names = Vec::new();
        if let Some(l) = a.get_long() {
            names.push(format!("--{l}"));
        }
        if let Some(s) = a.get_short() {
            names.push(format!("-{s}"));
        }
        names.extend(
            a.get_all_aliases()
                .unwrap_or_default()
                .iter()
                .map(|x| format!("--{x}")),
        );
        names.extend(
            a.get_all_short_aliases()
                .unwrap_or_default()
                .iter()
                .map(|x| format!("-{x}")),
        );
        if names.is_empty() {
            names.push(format!("<{}>", a.get_id()));
        }
        let hidden = if a.is_hide_set() { " (hidden)" } else { "" };
        let _ = writeln!(out, "flag {prefix}{}{hidden}", names.join(" "));
    }
    for sub in cmd.get_subcommands() {
        let mut names = vec![sub.get_name().to_string()];
        names.extend(sub.get_all_aliases().map(str::to_string));
        let _ = writeln!(out, "command {prefix}{}", names.join(" "));
        flags(out, sub, &format!("{prefix}{} ", sub.get_name()));
    }
}

/// The golden test of a daemon's configuration surface: its [`inventory`] against
/// `tests/golden/config.txt` in `manifest_dir` (the crate's `CARGO_MANIFEST_DIR`).
pub fn assert_inventory<F: clap::CommandFactory>(
    defaults: &impl serde::Serialize,
    env_keys: &[&str],
    legacy: Legacy,
    manifest_dir: &str,
) {
    let text = inventory(&F::command(), defaults, env_keys, legacy);
    let path = std::path::Path::new(manifest_dir).join("tests/golden/config.txt");
    assert_golden(&path, &text);
}

/// Compares `actual` with the golden file at `path` (rewriting it when `N2N_BLESS` is set),
/// and panics with the difference otherwise.
pub fn assert_golden(path: &std::path::Path, actual: &str) {
    if std::env::var_os("N2N_BLESS").is_some() {
        if let Err(e) = std::fs::write(path, actual) {
            panic!("cannot write {}: {e}", path.display());
        }
        return;
    }
    let golden = std::fs::read_to_string(path).unwrap_or_default();
    if golden != actual {
        let gone: Vec<&str> = golden
            .lines()
            .filter(|l| !actual.lines().any(|a| a == *l))
            .collect();
        let new: Vec<&str> = actual
            .lines()
            .filter(|l| !golden.lines().any(|g| g == *l))
            .collect();
        panic!(
            "{} differs from the code (N2N_BLESS=1 rewrites it once the change is meant)\n\
             gone: {gone:#?}\nnew: {new:#?}",
            path.display()
        );
    }
}

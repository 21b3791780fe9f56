//! Configuration plumbing shared by both daemons: Go-style single-dash flags, the YAML format
//! for figment, the layering helper, and small value types that parse from strings.

mod inventory;
mod keys;
mod n2n_go;

pub use n2n_go::{Legacy, go_style_args};
use n2n_go::{Renamed, legacy_notes};

pub use inventory::{assert_golden, assert_inventory, inventory};

use figment::providers::{Env, Format, Serialized};
use figment::{Figment, Provider};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;
use std::str::FromStr;

/// YAML through `yaml_serde` (the maintained successor of serde_yaml) as a figment format.
pub struct YamlFormat;

impl Format for YamlFormat {
    type Error = yaml_serde::Error;
    const NAME: &'static str = "YAML";

    fn from_str<T: DeserializeOwned>(string: &str) -> Result<T, Self::Error> {
        yaml_serde::from_str(string)
    }
}

/// Layers the configuration: `defaults` < YAML file < `N2N_*` environment < `flags`.
/// Only environment variables naming one of `keys` (or a `legacy` name) are read (edge and
/// supernode share the prefix); a missing file is fine unless `file_required`. Returns the
/// figment and one note per legacy key met, for the daemon to log.
pub fn layered<D: Serialize, F: Serialize>(
    defaults: &D,
    file: Option<&Path>,
    file_required: bool,
    keys: &'static [&'static str],
    legacy: Legacy,
    flags: &F,
) -> Result<(Figment, Vec<String>), String> {
    let mut fig = Figment::from(Serialized::defaults(defaults));
    let mut notes = Vec::new();
    if let Some(path) = file {
        if path.exists() {
            let yaml = Renamed {
                inner: YamlFormat::file_exact(path),
                legacy,
            };
            if let Ok(data) = yaml.inner.data() {
                for dict in data.values() {
                    notes.extend(legacy_notes(
                        dict.keys(),
                        legacy,
                        &path.display().to_string(),
                    ));
                }
            }
            fig = fig.merge(yaml);
        } else if file_required {
            return Err(format!("config file {} does not exist", path.display()));
        }
    }
    let env = Env::prefixed("N2N_").filter_map(move |k| {
        if keys.iter().any(|key| k.as_str().eq_ignore_ascii_case(key)) {
            return Some(k.as_str().to_ascii_lowercase().into());
        }
        // An n2n-go name counts only when ours is not set too (ours wins, as in the file).
        legacy
            .iter()
            .find(|(old, _)| k.as_str().eq_ignore_ascii_case(old))
            .and_then(|(_, new)| *new)
            .filter(|new| std::env::var(format!("N2N_{}", new.to_ascii_uppercase())).is_err())
            .map(Into::into)
    });
    let env_keys: Vec<String> = std::env::vars()
        .filter_map(|(k, _)| k.strip_prefix("N2N_").map(str::to_ascii_lowercase))
        .collect();
    notes.extend(legacy_notes(
        env_keys.iter(),
        legacy,
        "the environment (N2N_*)",
    ));
    Ok((fig.merge(env).merge(Serialized::globals(flags)), notes))
}

/// Deserialises a list of strings from a list or from one comma-separated string
/// (`supernode: a:7777` and `supernode: [a:7777, b:7777]` both work).
pub fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of strings or one comma-separated string")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
            Ok(s.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(String::from)
                .collect())
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(s) = seq.next_element::<String>()? {
                out.push(s);
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

/// Turns a figment error into one line per problem, naming the key and the reason.
pub fn explain(err: figment::Error) -> String {
    err.into_iter()
        .map(|e| {
            let key = if e.path.is_empty() {
                "configuration".to_string()
            } else {
                e.path.join(".")
            };
            let source = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", source_name(&m.name)))
                .unwrap_or_default();
            format!("{key}: {}{source}", e.kind)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub use crate::os::is_root;

/// A readable name for a figment source (its default is a Rust type name).
fn source_name(name: &str) -> &str {
    if name.contains("Flags") {
        "command-line flags"
    } else if name.contains("::") {
        "defaults"
    } else {
        name
    }
}

/// An IPv4 network in CIDR notation, e.g. `10.128.0.0/9`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Net {
    /// Network address (host bits cleared).
    pub addr: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
}

impl FromStr for Ipv4Net {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not in CIDR form (like 10.128.0.0/9)"))?;
        let addr: Ipv4Addr = a
            .trim()
            .parse()
            .map_err(|_| format!("{a:?} is not an IPv4 address"))?;
        let prefix: u8 = p
            .trim()
            .parse()
            .map_err(|_| format!("{p:?} is not a prefix length"))?;
        if !(8..=30).contains(&prefix) {
            return Err(format!("prefix /{prefix} out of range (8..=30)"));
        }
        let mask = u32::MAX << (32 - u32::from(prefix));
        Ok(Self {
            addr: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A listen or peer address that accepts Go's `:7777` shorthand for "all interfaces".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenAddr(pub std::net::SocketAddr);

impl FromStr for ListenAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        // ":7777" is every address of both families (n2n-go's meaning); 0.0.0.0 is IPv4 only.
        let full = if s.starts_with(':') {
            format!("[::]{s}")
        } else {
            s.to_string()
        };
        full.parse()
            .map(ListenAddr)
            .map_err(|_| format!("{s:?} is not an address like 0.0.0.0:7777 or :7777"))
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A 32-byte key written as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HexKey(pub [u8; 32]);

impl fmt::Debug for HexKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HexKey(..)")
    }
}

impl fmt::Display for HexKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl FromStr for HexKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.len() != 64 || !s.is_ascii() {
            return Err("want 64 hex digits (the output of `supernode community-key`)".into());
        }
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(s.get(2 * i..2 * i + 2).unwrap_or("zz"), 16)
                .map_err(|_| "not hex: want 64 hex digits".to_string())?;
        }
        Ok(Self(out))
    }
}

/// Serialises a type as its `Display` text and parses it back with `FromStr`, so config
/// values read and print the way users write them (errors name the key via figment).
macro_rules! serde_via_str {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

serde_via_str!(Ipv4Net, ListenAddr, HexKey);

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        go_style_args(v.iter().map(|s| s.to_string()))
    }

    #[test]
    fn go_style_flags_become_long_flags() {
        assert_eq!(
            args(&[
                "edge",
                "-community",
                "acme",
                "--supernode",
                "h:7777",
                "-h",
                "-5",
                "-",
                "-listen=:1",
                "--",
                "-x"
            ]),
            [
                "edge",
                "--community",
                "acme",
                "--supernode",
                "h:7777",
                "-h",
                "-5",
                "-",
                "--listen=:1",
                "--",
                "-x"
            ]
        );
    }

    #[test]
    fn value_types_parse_and_reject_with_reasons() {
        let n: Ipv4Net = "10.128.7.9/9".parse().unwrap();
        assert_eq!(n.to_string(), "10.128.0.0/9");
        assert!("10.0.0.0".parse::<Ipv4Net>().unwrap_err().contains("CIDR"));
        assert!(
            "10.0.0.0/31"
                .parse::<Ipv4Net>()
                .unwrap_err()
                .contains("out of range")
        );
        assert_eq!(
            ":7777".parse::<ListenAddr>().unwrap().0,
            "[::]:7777".parse().unwrap()
        );
        assert!("nope".parse::<ListenAddr>().is_err());
        let k: HexKey = "ab".repeat(32).parse().unwrap();
        assert_eq!(k.to_string(), "ab".repeat(32));
        assert!("abc".parse::<HexKey>().is_err());
    }
}

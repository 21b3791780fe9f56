//! n2n-go compatibility: its single-dash flags, and its configuration keys read under our
//! names (or accepted and ignored where they mean nothing here), each with a note to log.

use figment::Provider;

/// Rewrites Go-style single-dash long flags (`-community acme`, `-listen=:7777`) into the
/// double-dash form clap understands. Short flags (`-h`, `-v`), negative numbers, a lone `-`
/// and everything after `--` are left alone.
pub fn go_style_args<I: IntoIterator<Item = String>>(args: I) -> Vec<String> {
    let mut out = Vec::new();
    let mut passthrough = false;
    for (i, a) in args.into_iter().enumerate() {
        if i == 0 || passthrough {
            out.push(a);
            continue;
        }
        if a == "--" {
            passthrough = true;
            out.push(a);
            continue;
        }
        let long_single = a.starts_with('-')
            && !a.starts_with("--")
            && a.len() > 2
            && a.chars().nth(1).is_some_and(|c| c.is_ascii_alphabetic());
        out.push(if long_single { format!("-{a}") } else { a });
    }
    out
}

/// Keys n2n-go's configuration used: `(old, Some(new))` is read as `new`; `(old, None)` has no
/// meaning here and is accepted and ignored, so an n2n-go file still starts the daemon.
pub type Legacy = &'static [(&'static str, Option<&'static str>)];

/// A provider that reads `inner` with n2n-go's key names replaced by ours and its meaningless
/// keys dropped (a key given under both names keeps ours).
pub(super) struct Renamed<P> {
    pub(super) inner: P,
    pub(super) legacy: Legacy,
}

impl<P: Provider> Provider for Renamed<P> {
    fn metadata(&self) -> figment::Metadata {
        self.inner.metadata()
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        let mut data = self.inner.data()?;
        for dict in data.values_mut() {
            for (old, new) in self.legacy {
                let Some(v) = dict.remove(*old) else { continue };
                if let Some(new) = new {
                    dict.entry((*new).to_string()).or_insert(v);
                }
            }
        }
        Ok(data)
    }
}

/// One note per legacy key among `present`, saying what became of it.
pub(super) fn legacy_notes<'a>(
    present: impl IntoIterator<Item = &'a String>,
    legacy: Legacy,
    source: &str,
) -> Vec<String> {
    present
        .into_iter()
        .filter_map(|k| {
            let (old, new) = legacy.iter().find(|(old, _)| k.eq_ignore_ascii_case(old))?;
            Some(match new {
                Some(new) => {
                    format!("{source}: `{old}` is n2n-go's name for `{new}`; read as `{new}`")
                }
                None => format!("{source}: `{old}` (n2n-go) has no meaning in n2n-rs; ignored"),
            })
        })
        .collect()
}

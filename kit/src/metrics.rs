//! Prometheus text exposition, written the same way by both daemons.

use std::fmt::{Display, Write};

/// A metric's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only grows (resets with the process).
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
        }
    }
}

/// A metrics page being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty page.
    pub fn new() -> Self {
        Self {
            out: String::with_capacity(2048),
        }
    }

    /// One metric without labels.
    pub fn metric(&mut self, name: &str, kind: Kind, help: &str, value: impl Display) {
        self.header(name, kind, help);
        let _ = writeln!(self.out, "{name} {value}");
    }

    /// One metric with one label, a line per `(label value, value)` (label values escaped).
    pub fn family<L: Display, V: Display>(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        label: &str,
        rows: impl IntoIterator<Item = (L, V)>,
    ) {
        self.header(name, kind, help);
        for (l, v) in rows {
            let l = escape(&l.to_string());
            let _ = writeln!(self.out, "{name}{{{label}=\"{l}\"}} {v}");
        }
    }

    /// The page's text.
    pub fn finish(self) -> String {
        self.out
    }

    fn header(&mut self, name: &str, kind: Kind, help: &str) {
        let _ = writeln!(
            self.out,
            "# HELP {name} {help}\n# TYPE {name} {}",
            kind.as_str()
        );
    }
}

/// A label value as the exposition format wants it (backslash, quote and newline escaped).
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_and_families_are_written_with_escaped_labels() {
        let mut e = Exposition::new();
        e.metric("a_total", Kind::Counter, "As.", 3);
        e.family(
            "b",
            Kind::Gauge,
            "Bs by c.",
            "c",
            [("x\"y\\z\nw", 1), ("plain", 2)],
        );
        assert_eq!(
            e.finish(),
            "# HELP a_total As.\n# TYPE a_total counter\na_total 3\n\
             # HELP b Bs by c.\n# TYPE b gauge\nb{c=\"x\\\"y\\\\z\\nw\"} 1\nb{c=\"plain\"} 2\n"
        );
    }
}

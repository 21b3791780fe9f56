//! Untrusted text (a supernode's refusal reason, a member's description) made safe to print:
//! control characters become visible escapes, so nothing a peer or a supernode sends can
//! move a terminal's cursor, recolour it or forge a log line.

/// `s` with every control character (C0, DEL, C1) shown as a `\u{..}`-style escape.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(
            printable("full \u{1b}[2J\u{1b}]0;pwned\u{7}"),
            "full \\u{1b}[2J\\u{1b}]0;pwned\\u{7}"
        );
        assert_eq!(printable("line\nforged"), "line\\nforged");
        assert_eq!(printable("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(printable("Zürich — ok"), "Zürich — ok");
    }
}

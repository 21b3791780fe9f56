//! The peer graph as Graphviz DOT and as SVG rendered here (no Graphviz needed). Everything a
//! peer controls (its description) is escaped for the output format.

use super::peers::{PeerView, PeersView};
use std::fmt::Write;

fn dot_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' | '\r' => out.push_str("\\n"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn rtt_label(p: &PeerView) -> String {
    p.rtt_ms.map(|r| format!("{r:.2} ms")).unwrap_or_default()
}

fn or_empty(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("")
}

/// DOT of `/peers.json` data.
pub fn dot(v: &PeersView) -> String {
    let me = &v.me;
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{}\" {{", dot_escape(&me.community));
    let _ = writeln!(
        out,
        "  graph [layout=neato, overlap=false];\n  node [shape=box, style=rounded];"
    );
    let _ = writeln!(
        out,
        "  supernode [label=\"supernode\\n{}\", shape=box, style=\"rounded,filled\", fillcolor=pink];",
        dot_escape(or_empty(&me.supernode))
    );
    let _ = writeln!(
        out,
        "  self [label=\"{}\\n{}\", style=\"rounded,bold\"];",
        dot_escape(&me.desc),
        dot_escape(or_empty(&me.ip))
    );
    let _ = writeln!(
        out,
        "  self -> supernode [style=dashed, color=grey, dir=none];"
    );
    for p in &v.peers {
        let id = p.id;
        let _ = writeln!(
            out,
            "  p{id} [label=\"{}\\n{}\"];",
            dot_escape(&p.desc),
            dot_escape(&p.ip)
        );
        let _ = writeln!(
            out,
            "  p{id} -> supernode [style=dashed, color=grey, dir=none];"
        );
        let rtt = rtt_label(p);
        match (p.path, p.one_way) {
            ("direct", _) => {
                let _ = writeln!(
                    out,
                    "  self -> p{id} [color=green, penwidth=2, dir=both, label=\"{rtt}\"];"
                );
            }
            (_, true) => {
                let _ = writeln!(
                    out,
                    "  p{id} -> self [color=orange, penwidth=2, label=\"one-way\"];"
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "  self -> p{id} [style=dotted, color=grey, label=\"relayed\"];"
                );
            }
        }
    }
    out.push_str("}\n");
    out
}

/// SVG of `/peers.json` data: the supernode on top, this edge in the middle, peers around.
pub fn svg(v: &PeersView) -> String {
    let me = &v.me;
    let ps = &v.peers;
    let (w, h) = (640.0f64, 480.0f64);
    let (cx, cy, r) = (w / 2.0, h / 2.0 + 20.0, 170.0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(out, "<title>{}</title>", xml_escape(&me.community));
    let (sx, sy) = (cx, 36.0);
    let pos: Vec<(f64, f64)> = (0..ps.len())
        .map(|i| {
            let a = std::f64::consts::PI * (0.15 + 0.7 * (i as f64 + 0.5) / ps.len().max(1) as f64);
            (cx - r * a.cos() * 1.4, cy + r * a.sin() * 0.8 - 60.0)
        })
        .collect();
    let _ = writeln!(
        out,
        "<line x1=\"{cx}\" y1=\"{cy}\" x2=\"{sx}\" y2=\"{sy}\" stroke=\"#999\" stroke-dasharray=\"4 4\" class=\"link sn\"/>"
    );
    for (p, (x, y)) in ps.iter().zip(&pos) {
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{sx}\" y2=\"{sy}\" stroke=\"#999\" stroke-dasharray=\"4 4\" class=\"link sn\"/>"
        );
        let (color, dash, class) = match (p.path, p.one_way) {
            ("direct", _) => ("#2a2", "", "direct"),
            (_, true) => ("#e80", "", "one-way"),
            _ => ("#888", " stroke-dasharray=\"2 6\"", "relayed"),
        };
        let _ = writeln!(
            out,
            "<line x1=\"{cx}\" y1=\"{cy}\" x2=\"{x:.1}\" y2=\"{y:.1}\" stroke=\"{color}\" stroke-width=\"3\"{dash} class=\"link {class}\"><title>{class} {}</title></line>",
            xml_escape(&rtt_label(p))
        );
    }
    let node = |out: &mut String, x: f64, y: f64, fill: &str, l1: &str, l2: &str, class: &str| {
        let _ = writeln!(
            out,
            "<g class=\"node {class}\"><rect x=\"{:.1}\" y=\"{:.1}\" width=\"140\" height=\"38\" rx=\"8\" fill=\"{fill}\" stroke=\"#333\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#444\">{}</text></g>",
            x - 70.0,
            y - 19.0,
            y - 3.0,
            xml_escape(l1),
            y + 13.0,
            xml_escape(l2)
        );
    };
    node(
        &mut out,
        sx,
        sy,
        "#fcd",
        "supernode",
        or_empty(&me.supernode),
        "supernode",
    );
    node(&mut out, cx, cy, "#def", &me.desc, or_empty(&me.ip), "self");
    for (p, (x, y)) in ps.iter().zip(&pos) {
        let l2 = format!("{} {}", p.ip, rtt_label(p));
        node(&mut out, *x, *y, "#fff", &p.desc, &l2, "peer");
    }
    out.push_str("</svg>\n");
    out
}

/// DOT of the peers that left (the `offline` list of `/peers.json` data), as n2n-go served it.
pub fn offline_dot(v: &PeersView) -> String {
    let me = &v.me;
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{} offline\" {{", dot_escape(&me.community));
    let _ = writeln!(
        out,
        "  node [shape=box, style=\"rounded,dashed\", color=grey, fontcolor=grey40];"
    );
    for p in &v.offline {
        let id = p.id;
        let _ = writeln!(
            out,
            "  p{id} [label=\"{}\\n{}\"];",
            dot_escape(&p.desc),
            dot_escape(&p.ip)
        );
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> super::super::SelfView {
        super::super::SelfView {
            id: Some(1),
            mac: "02:00:00:00:00:01".into(),
            ip: Some("10.0.0.1".into()),
            desc: "me".into(),
            community: "acme".into(),
            registered: true,
            supernode: Some("1.2.3.4:7777".into()),
        }
    }

    fn peer(id: u32, desc: &str, path: &'static str, one_way: bool, rtt: Option<f64>) -> PeerView {
        PeerView {
            id,
            mac: format!("02:00:00:00:00:{id:02x}"),
            ip: format!("10.0.0.{id}"),
            desc: desc.into(),
            path,
            one_way,
            endpoint: None,
            candidate: None,
            rtt_ms: rtt,
            last_seen_secs: None,
            tx_frames: 0,
            tx_bytes: 0,
            tx_relayed: 0,
            rx_frames: 0,
            rx_bytes: 0,
            key_epoch: 0,
            session: None,
            session_age_secs: None,
        }
    }

    fn gone(id: u32, desc: &str) -> super::super::OfflineView {
        super::super::OfflineView {
            id,
            mac: String::new(),
            ip: format!("10.0.0.{id}"),
            desc: desc.into(),
            left_unix: 0,
        }
    }

    fn sample() -> PeersView {
        PeersView {
            me: me(),
            peers: vec![
                peer(
                    2,
                    "<script>alert(1)</script>\"x\\",
                    "direct",
                    false,
                    Some(0.25),
                ),
                peer(3, "b", "relayed", true, None),
                peer(4, "c", "relayed", false, None),
            ],
            offline: Vec::new(),
        }
    }

    #[test]
    fn dot_escapes_hostile_names_and_styles_paths() {
        let d = dot(&sample());
        assert!(!d.contains("<script>"));
        assert!(d.contains("&lt;script&gt;alert(1)&lt;/script&gt;\\\"x\\\\"));
        assert!(d.contains("self -> p2 [color=green"));
        assert!(d.contains("p3 -> self [color=orange"));
        assert!(d.contains("self -> p4 [style=dotted"));
        assert_eq!(d.matches('{').count(), d.matches('}').count());
    }

    #[test]
    fn offline_dot_lists_departed_peers_escaped() {
        let v = PeersView {
            me: me(),
            peers: Vec::new(),
            offline: vec![gone(7, "gone\"<b>"), gone(8, "x")],
        };
        let d = offline_dot(&v);
        assert!(
            d.contains("p7 [label=\"gone\\\"&lt;b&gt;\\n10.0.0.7\"]"),
            "{d}"
        );
        assert!(d.contains("p8 [label="));
        let none = PeersView {
            offline: Vec::new(),
            ..v
        };
        assert_eq!(offline_dot(&none).matches("label").count(), 0);
    }

    #[test]
    fn svg_escapes_hostile_names_and_has_one_node_and_link_per_peer() {
        let s = svg(&sample());
        assert!(!s.contains("<script>"));
        assert!(s.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;x\\"));
        assert_eq!(s.matches("class=\"node peer\"").count(), 3);
        assert_eq!(s.matches("class=\"link direct\"").count(), 1);
        assert_eq!(s.matches("class=\"link one-way\"").count(), 1);
        assert_eq!(s.matches("class=\"link relayed\"").count(), 1);
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
    }
}

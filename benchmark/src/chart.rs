//! The SVG chart: one panel per end-to-end metric (or per component metric when the run had
//! no end-to-end part), a horizontal bar per subject, scaled to the panel's largest value.

use crate::report::{NATIVE, Report, Row};
use std::fmt::Write as _;

const WIDTH: f64 = 760.0;
const LABEL_W: f64 = 190.0;
const BAR_H: f64 = 18.0;
const GAP: f64 = 4.0;

/// Renders `report` as a standalone SVG document.
pub fn svg(report: &Report) -> String {
    let has_e2e = report.rows.iter().any(|r| r.section == "e2e");
    let mut panels: Vec<(String, Vec<&Row>)> = Vec::new();
    for r in report.rows.iter().filter(|r| {
        if has_e2e {
            // The chart keeps the headline numbers; the table and files have the rest.
            r.section == "e2e" && !r.metric.contains("p99") && !r.metric.contains("500 B")
        } else {
            r.section != "supernode"
        }
    }) {
        let title = format!("{} ({}, {})", r.metric, r.unit, better_word(r));
        match panels.iter_mut().find(|(t, _)| *t == title) {
            Some((_, rows)) => rows.push(r),
            None => panels.push((title, vec![r])),
        }
    }
    let mut body = String::new();
    let mut y = 40.0;
    for (title, rows) in &panels {
        let _ = writeln!(
            body,
            r#"<text x="10" y="{y}" font-weight="bold">{}</text>"#,
            escape(title)
        );
        y += 8.0;
        let max = rows.iter().map(|r| r.value).fold(0.0_f64, f64::max);
        for r in rows {
            let w = if max > 0.0 {
                (r.value / max) * (WIDTH - LABEL_W - 150.0)
            } else {
                0.0
            };
            let color = match r.subject.as_str() {
                s if s.starts_with(NATIVE) => "#9e9e9e",
                s if s.starts_with("n2n-rs") => "#1e88e5",
                _ => "#fb8c00",
            };
            let ratio = r
                .ratio
                .map(|x| format!("  {x:.2}x native"))
                .unwrap_or_default();
            let _ = writeln!(
                body,
                r#"<text x="{lx}" y="{ty}" text-anchor="end">{s}</text><rect x="{LABEL_W}" y="{y}" width="{w:.1}" height="{BAR_H}" fill="{color}"/><text x="{vx:.1}" y="{ty}">{v}{ratio}</text>"#,
                lx = LABEL_W - 6.0,
                ty = y + BAR_H - 5.0,
                s = escape(&r.subject),
                vx = LABEL_W + w + 6.0,
                v = crate::report::fmt_value(r.value),
            );
            y += BAR_H + GAP;
        }
        y += 22.0;
    }
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="20" font-size="14" font-weight="bold">{head}</text>
{body}</svg>
"#,
        h = y + 10.0,
        head = escape(&format!(
            "n2n-rs benchmark · {} · {} cores · {}",
            report.machine.cpu, report.machine.cores, report.machine.date
        )),
    )
}

fn better_word(r: &Row) -> &'static str {
    match r.better {
        crate::report::Better::Higher => "higher is better",
        crate::report::Better::Lower => "lower is better",
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

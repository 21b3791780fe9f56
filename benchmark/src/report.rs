//! Results of one run: every measurement as a row, printed as a table and written as CSV,
//! JSON and an SVG chart. End-to-end rows carry the ratio to the native path measured in the
//! same run.

use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Whether a larger value is better (throughput) or worse (latency, loss, CPU).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Throughput-like.
    Higher,
    /// Cost-like.
    Lower,
}

/// One measurement.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Layer: "codec", "crypto", "udp", "tap", "e2e", "supernode".
    pub section: String,
    /// What was measured on: "n2n-rs", "native", "tinc 1.0.36", a message name...
    pub subject: String,
    /// The quantity, e.g. "TCP 1 stream".
    pub metric: String,
    /// Unit of `value`.
    pub unit: String,
    /// The measured value.
    pub value: f64,
    /// Which direction is better.
    pub better: Better,
    /// value / the same metric on the native path in this run, for end-to-end rows.
    pub ratio: Option<f64>,
}

/// The machine and software a run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// Logical CPUs.
    pub cores: usize,
    /// `uname -r`.
    pub kernel: String,
    /// UTC time of the run.
    pub date: String,
    /// Mode and options of the run.
    pub mode: String,
}

impl Machine {
    /// Describes this machine.
    pub fn detect(mode: &str) -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let date = std::process::Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel,
            date,
            mode: mode.to_string(),
        }
    }
}

/// All rows of one run.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Where it ran.
    pub machine: Machine,
    /// The measurements, in the order taken.
    pub rows: Vec<Row>,
    /// Things that could not be measured, with the reason.
    pub skipped: Vec<String>,
}

impl Report {
    /// An empty report for `machine`.
    pub fn new(machine: Machine) -> Self {
        Self {
            machine,
            rows: Vec::new(),
            skipped: Vec::new(),
        }
    }

    /// Adds one row (ratio filled in later by [`Report::compute_ratios`]).
    pub fn add(
        &mut self,
        section: &str,
        subject: &str,
        metric: &str,
        unit: &str,
        value: f64,
        better: Better,
    ) {
        self.rows.push(Row {
            section: section.into(),
            subject: subject.into(),
            metric: metric.into(),
            unit: unit.into(),
            value,
            better,
            ratio: None,
        });
    }

    /// Records that something was not measured and why.
    pub fn skip(&mut self, what: String) {
        eprintln!("skipped: {what}");
        self.skipped.push(what);
    }

    /// Sets each end-to-end row's ratio to the native row of the same metric.
    pub fn compute_ratios(&mut self) {
        let natives: Vec<(String, f64)> = self
            .rows
            .iter()
            .filter(|r| r.section == "e2e" && r.subject == NATIVE)
            .map(|r| (r.metric.clone(), r.value))
            .collect();
        // Ratios of percentages near zero (loss) are noise, not information.
        for r in self
            .rows
            .iter_mut()
            .filter(|r| r.section == "e2e" && r.unit != "%")
        {
            r.ratio = natives
                .iter()
                .find(|(m, _)| *m == r.metric)
                .filter(|(_, v)| *v > 0.0)
                .map(|(_, v)| r.value / v);
        }
    }

    /// The terminal table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} · {} cores · Linux {} · {} · {}",
            self.machine.cpu,
            self.machine.cores,
            self.machine.kernel,
            self.machine.date,
            self.machine.mode
        );
        let mut section = "";
        for r in &self.rows {
            if r.section != section {
                section = &r.section;
                let _ = writeln!(
                    out,
                    "\n{:<10} {:<22} {:<26} {:>12} {:<9} {:>9}",
                    section, "subject", "metric", "value", "unit", "vs native"
                );
            }
            let ratio = r.ratio.map(|x| format!("{x:.2}x")).unwrap_or_default();
            let _ = writeln!(
                out,
                "{:<10} {:<22} {:<26} {:>12} {:<9} {:>9}",
                "",
                r.subject,
                r.metric,
                fmt_value(r.value),
                r.unit,
                ratio
            );
        }
        for s in &self.skipped {
            let _ = writeln!(out, "skipped: {s}");
        }
        out
    }

    /// Writes results.csv, results.json and `chart_svg` (as chart.svg) into `dir`; returns
    /// their paths.
    pub fn write(&self, dir: &Path, chart_svg: &str) -> anyhow::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let mut csv = String::from("section,subject,metric,unit,value,ratio_to_native\n");
        for r in &self.rows {
            let _ = writeln!(
                csv,
                "{},{},{},{},{},{}",
                csv_field(&r.section),
                csv_field(&r.subject),
                csv_field(&r.metric),
                csv_field(&r.unit),
                r.value,
                r.ratio.map(|x| x.to_string()).unwrap_or_default()
            );
        }
        let paths = [
            dir.join("results.csv"),
            dir.join("results.json"),
            dir.join("chart.svg"),
        ];
        let [csv_path, json_path, svg_path] = &paths;
        std::fs::write(csv_path, csv)?;
        std::fs::write(json_path, serde_json::to_string_pretty(self)?)?;
        std::fs::write(svg_path, chart_svg)?;
        Ok(paths.to_vec())
    }
}

/// The subject name of the bare veth path.
pub const NATIVE: &str = "native";

/// A value with as many digits as it deserves.
pub fn fmt_value(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let mut r = Report::new(Machine::detect("test"));
        r.add(
            "e2e",
            NATIVE,
            "TCP 1 stream",
            "Mbit/s",
            4000.0,
            Better::Higher,
        );
        r.add(
            "e2e",
            "n2n-rs",
            "TCP 1 stream",
            "Mbit/s",
            1000.0,
            Better::Higher,
        );
        r.add("e2e", "n2n-rs", "daemon CPU", "%", 150.0, Better::Lower);
        r.add(
            "crypto",
            "seal 1400 B",
            "throughput",
            "GB/s",
            1.5,
            Better::Higher,
        );
        r
    }

    #[test]
    fn ratios_are_to_the_native_row_of_the_same_metric() {
        let mut r = report();
        r.compute_ratios();
        let ratios: Vec<_> = r.rows.iter().map(|r| r.ratio).collect();
        assert_eq!(ratios, vec![Some(1.0), Some(0.25), None, None]);
    }

    #[test]
    fn files_are_written_and_csv_quotes_commas() {
        let mut r = report();
        r.add("codec", "a,b", "x", "ns", 3.0, Better::Lower);
        r.compute_ratios();
        let dir = tempfile::tempdir().unwrap();
        let paths = r.write(dir.path(), &crate::chart::svg(&r)).unwrap();
        let csv = std::fs::read_to_string(&paths[0]).unwrap();
        assert!(
            csv.contains("e2e,n2n-rs,TCP 1 stream,Mbit/s,1000,0.25\n"),
            "{csv}"
        );
        assert!(csv.contains("codec,\"a,b\",x,ns,3,\n"), "{csv}");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&paths[1]).unwrap()).unwrap();
        assert_eq!(json["rows"].as_array().unwrap().len(), 5);
        let svg = std::fs::read_to_string(&paths[2]).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("n2n-rs"), "{svg}");
        assert!(r.table().contains("0.25x"));
    }
}

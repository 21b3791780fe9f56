//! CI smoke run of the benchmark: every section runs for seconds and must produce sane numbers
//! (present, finite, positive where they must be), plus the CSV, JSON and SVG files. Speed is
//! not asserted. Needs root (namespaces, TAP) and iperf3, like the other lab tests.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn sibling_bin(package: &str, name: &str) -> PathBuf {
    let me = PathBuf::from(env!("CARGO_BIN_EXE_benchmark"));
    let bin = me.with_file_name(name);
    if !bin.exists() {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "-p", package, "--bin", name]);
        if me.parent().unwrap().ends_with("release") {
            cmd.arg("--release");
        }
        assert!(cmd.status().unwrap().success(), "building {name} failed");
    }
    bin
}

fn value(
    rows: &[serde_json::Value],
    section: &str,
    subject_prefix: &str,
    metric: &str,
) -> (f64, Option<f64>) {
    let row = rows
        .iter()
        .find(|r| {
            r["section"] == section
                && r["subject"].as_str().unwrap().starts_with(subject_prefix)
                && r["metric"] == metric
        })
        .unwrap_or_else(|| panic!("no row {section}/{subject_prefix}/{metric}"));
    (row["value"].as_f64().unwrap(), row["ratio"].as_f64())
}

/// Runs `benchmark ARGS --out DIR` with edge and supernode beside it; fails the test unless
/// it succeeds. Returns the output directory and what it printed.
fn run_benchmark(args: &[&str]) -> (tempfile::TempDir, String) {
    sibling_bin("n2n-edge", "edge");
    sibling_bin("n2n-supernode", "supernode");
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_benchmark"))
        .args(args)
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "benchmark {} failed:\n{stdout}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&run.stderr)
    );
    (out, stdout)
}

#[test]
fn smoke_run_produces_sane_numbers_and_files() {
    let (out, stdout) = run_benchmark(&["--smoke"]);
    assert!(stdout.contains("vs native"), "no table:\n{stdout}");
    check_files(out.path());
}

fn check_files(dir: &Path) {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert!(
        json["skipped"].as_array().unwrap().is_empty(),
        "skipped: {}",
        json["skipped"]
    );
    for r in rows {
        let v = r["value"].as_f64().unwrap_or(f64::NAN);
        assert!(v.is_finite() && v >= 0.0, "not a sane number: {r}");
        if r["unit"] != "%" {
            assert!(v > 0.0, "zero measurement: {r}");
        }
    }
    // Every layer is there.
    for (section, subject, metric) in [
        ("codec", "data header", "decode"),
        ("crypto", "seal 1400 B", "throughput"),
        ("crypto", "open 1400 B zstd", "per packet"),
        ("udp", "loopback 1400 B", "received, GRO+recvmmsg"),
        ("tap", "1400 B frames", "read"),
        ("supernode", "supernode", "relay 1432 B relayed"),
        ("supernode", "supernode", "registrations"),
    ] {
        value(rows, section, subject, metric);
    }
    // End to end: native and n2n-rs measured in the same run, with ratios to native.
    let (native, native_ratio) = value(rows, "e2e", "native", "TCP 1 stream");
    let (ours, ratio) = value(rows, "e2e", "n2n-rs", "TCP 1 stream");
    assert_eq!(native_ratio, Some(1.0));
    let ratio = ratio.expect("n2n-rs row has a ratio to native");
    assert!((ratio - ours / native).abs() < 1e-9);
    let (loss, _) = value(rows, "e2e", "n2n-rs", "UDP loss");
    assert!(loss <= 100.0);
    let (cpu, _) = value(rows, "e2e", "n2n-rs", "daemon CPU in TCP 1 stream");
    assert!(cpu <= 100.0 * std::thread::available_parallelism().unwrap().get() as f64 + 5.0);
    value(rows, "e2e", "n2n-rs", "ping 1000 B p99");
    let csv = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), rows.len() + 1);
    let svg = std::fs::read_to_string(dir.join("chart.svg")).unwrap();
    assert!(svg.contains("TCP 1 stream") && svg.contains("n2n-rs"));
}

/// The two-minute hostile soak (`benchmark soak`; the run is 30 minutes): churning
/// edges, a supernode restart and a junk flood at the supernode and edge b, while a pings b.
/// The run fails by itself if a well-behaved daemon dies or a ping gap exceeds 5 s; here we
/// also check that the flood and the churn really happened and were counted.
#[test]
fn two_minute_hostile_soak_keeps_the_well_behaved_edges_talking() {
    let (out, _) = run_benchmark(&["soak", "--seconds", "120", "--junk-pps", "1000"]);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("soak.json")).unwrap())
            .unwrap();
    assert!(json["longest_ping_gap"].as_f64().unwrap() <= 5.0);
    assert!(json["ping_replies"].as_u64().unwrap() > 300, "{json}");
    assert_eq!(json["churn"]["supernode restart"], 1);
    assert!(json["churn"]["join"].as_u64().unwrap() > 0, "{json}");
    for who in ["supernode", "b"] {
        let dropped: u64 = json["drops"][who]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert!(
            dropped > 10_000,
            "{who} counted only {dropped} junk drops: {json}"
        );
    }
    for k in [
        "supernode start",
        "supernode end",
        "edge a end",
        "edge b end",
    ] {
        assert!(json["rss_kib"][k].as_u64().unwrap() > 0, "{k}: {json}");
    }
}

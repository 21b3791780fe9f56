//! `benchmark ab`: two builds of n2n-rs on the direct path, alternating old, new, old, new…
//! in fresh labs, so that both see the same machine noise; prints each run and the medians,
//! and says whether the new build's medians are within a tolerance of the old ones.

use crate::lab::Lab;
use crate::measure::{self, percentile};
use crate::overlays::{Bins, System};
use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Options of `benchmark ab`.
#[derive(clap::Args, Clone, Debug)]
pub struct Options {
    /// Directory holding the old build's `edge` and `supernode`.
    #[arg(long)]
    pub old: PathBuf,
    /// Directory holding the new build's binaries (default: the ones beside this benchmark).
    #[arg(long)]
    pub new: Option<PathBuf>,
    /// Rounds; each runs old then new.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Seconds per iperf3 run.
    #[arg(long, default_value_t = 10)]
    pub seconds: u32,
    /// Largest accepted loss of the new build's median against the old one, percent.
    #[arg(long, default_value_t = 10.0)]
    pub tolerance: f64,
    /// Where ab.csv goes.
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
}

/// What one run measures: (name, unit, higher is better).
const METRICS: [(&str, &str, bool); 4] = [
    ("TCP 1 stream", "Mbit/s", true),
    ("TCP 4 streams", "Mbit/s", true),
    ("ping 100 B p50", "ms", false),
    ("ping 500 B p50", "ms", false),
];

/// Runs the alternation and prints the verdict; fails if a median is outside the tolerance.
pub fn run(o: Options) -> anyhow::Result<()> {
    let old = bins_in(&o.old)?;
    let new = match &o.new {
        Some(dir) => bins_in(dir)?,
        None => Bins::beside_me()?,
    };
    let prefix = format!("nab{}-", std::process::id() % 100_000);
    // (build, metric) → one value per round.
    let mut samples: BTreeMap<(&str, &str), Vec<f64>> = BTreeMap::new();
    let mut csv = String::from("round,build,metric,unit,value\n");
    for round in 1..=o.rounds {
        for (label, bins) in [("old", &old), ("new", &new)] {
            let values = one_run(&prefix, bins, o.seconds)
                .with_context(|| format!("round {round}, {label} build"))?;
            for ((name, unit, _), v) in METRICS.iter().zip(values) {
                println!("round {round} {label:3} {name:15} {v:10.3} {unit}");
                csv += &format!("{round},{label},{name},{unit},{v}\n");
                samples.entry((label, name)).or_default().push(v);
            }
        }
    }
    println!();
    println!(
        "{:15} {:>12} {:>12} {:>9}",
        "median", "old", "new", "new/old"
    );
    let mut worse = Vec::new();
    for (name, unit, higher) in METRICS {
        let median = |build| percentile(samples.get(&(build, name)).map_or(&[][..], |v| v), 50.0);
        let (o_med, n_med) = (median("old"), median("new"));
        let ratio = n_med / o_med;
        println!("{name:15} {o_med:12.3} {n_med:12.3} {ratio:9.3}  {unit}");
        let loss = if higher { 1.0 - ratio } else { ratio - 1.0 };
        if loss * 100.0 > o.tolerance {
            worse.push(format!("{name}: {:.1} % worse", loss * 100.0));
        }
    }
    std::fs::create_dir_all(&o.out)?;
    let path = o.out.join("ab.csv");
    std::fs::write(&path, csv).with_context(|| path.display().to_string())?;
    println!("\nwrote {}", path.display());
    if !worse.is_empty() {
        bail!(
            "the new build's medians are outside {} %: {}",
            o.tolerance,
            worse.join("; ")
        );
    }
    println!(
        "the new build's medians are within {} % of the old build's",
        o.tolerance
    );
    Ok(())
}

fn bins_in(dir: &Path) -> anyhow::Result<Bins> {
    let bins = Bins {
        edge: dir.join("edge"),
        supernode: dir.join("supernode"),
    };
    for b in [&bins.edge, &bins.supernode] {
        if !b.exists() {
            bail!("{} not found", b.display());
        }
    }
    Ok(bins)
}

/// One fresh lab with `bins` on the direct path: the values of [`METRICS`].
fn one_run(prefix: &str, bins: &Bins, seconds: u32) -> anyhow::Result<Vec<f64>> {
    let mut lab = Lab::up(prefix)?;
    let up = System::N2nRs.up(&mut lab, bins)?;
    let tcp1 = measure::iperf(&lab, up.server, seconds, &["-P", "1"])?.mbps;
    let tcp4 = measure::iperf(&lab, up.server, seconds, &["-P", "4"])?.mbps;
    let small = measure::ping(&lab, up.server, 100, 100)?;
    let rtts = measure::ping(&lab, up.server, 500, 100)?;
    lab.check_alive().context("a daemon died during the run")?;
    Ok(vec![
        tcp1,
        tcp4,
        percentile(&small, 50.0),
        percentile(&rtts, 50.0),
    ])
}

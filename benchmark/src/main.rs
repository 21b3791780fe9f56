//! `benchmark`: measures n2n-rs layer by layer, next to the native path measured in the same
//! run. `benchmark` (or `benchmark run`) measures components, the TAP device, the end-to-end
//! path in a namespace lab and the supernode; `benchmark compare` adds the peer VPNs that are
//! installed; `benchmark sn-load` is the large supernode load test; `benchmark ab` alternates
//! two builds on the direct path; `benchmark soak` is the hostile soak.

mod ab;
mod chart;
mod components;
mod fleet;
mod lab;
mod measure;
mod overlays;
mod progress;
mod report;
mod snload;
mod soak;
mod tap;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use overlays::{Bins, System};
use report::{Better, Machine, Report};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "benchmark",
    version,
    about = "n2n-rs benchmark: every layer, next to native and peers"
)]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
    #[command(flatten)]
    run: RunOptions,
}

#[derive(Subcommand)]
enum Mode {
    /// Components, TAP, end to end (native, n2n-rs direct and relayed) and supernode (the default).
    Run(RunOptions),
    /// As `run`, plus tinc, nebula, vpncloud, boringtun and ntop n2n where installed.
    Compare(RunOptions),
    /// Supernode load: N edges in M communities registering and heartbeating.
    SnLoad(snload::Options),
    /// Old against new build on the direct path, alternating, with medians and a verdict.
    Ab(ab::Options),
    /// Hostile soak: churn, a supernode restart and a junk flood around two pinging edges.
    Soak(soak::Options),
    /// (internal) sends junk datagrams.
    #[command(hide = true)]
    Junk {
        /// Destinations (repeatable).
        #[arg(long)]
        to: Vec<std::net::SocketAddr>,
        /// Datagrams per second in total.
        #[arg(long)]
        pps: u32,
        /// How long.
        #[arg(long)]
        seconds: u64,
    },
    /// (internal) prints the body of an API GET.
    #[command(hide = true)]
    ApiGet {
        /// API address.
        api: std::net::SocketAddr,
        /// Path.
        path: String,
    },
    /// (internal) measures a TAP device inside the current namespace.
    #[command(hide = true)]
    TapProbe {
        /// Milliseconds per direction.
        #[arg(long)]
        millis: u64,
    },
}

#[derive(Args, Clone, Debug)]
struct RunOptions {
    /// About one minute: shorter runs, fewer pings, a smaller supernode load.
    #[arg(long)]
    quick: bool,
    /// Seconds: only checks that every measurement produces numbers (used by CI).
    #[arg(long)]
    smoke: bool,
    /// Where results.csv, results.json and chart.svg go.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// Sections to run (comma-separated): components, tap, e2e, supernode.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "components,tap,e2e,supernode"
    )]
    only: Vec<Section>,
    /// UDP offered rate for the end-to-end UDP test, Mbit/s.
    #[arg(long, default_value_t = 500)]
    udp_mbps: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Section {
    Components,
    Tap,
    E2e,
    Supernode,
}

/// Durations and sizes of one run.
struct Profile {
    name: &'static str,
    micro: Duration,
    udp: Duration,
    tap: Duration,
    plan: measure::Plan,
    load_edges: usize,
    load_communities: usize,
    load_hold: u64,
    relay_secs: f64,
}

impl Profile {
    fn of(o: &RunOptions) -> Self {
        let plan = |seconds, pings| measure::Plan {
            seconds,
            pings,
            udp_mbps: o.udp_mbps,
        };
        if o.smoke {
            Self {
                name: "smoke",
                micro: Duration::from_millis(5),
                udp: Duration::from_millis(200),
                tap: Duration::from_millis(200),
                plan: plan(1, 5),
                load_edges: 50,
                load_communities: 5,
                load_hold: 0,
                relay_secs: 0.5,
            }
        } else if o.quick {
            Self {
                name: "quick",
                micro: Duration::from_millis(40),
                udp: Duration::from_secs(1),
                tap: Duration::from_secs(1),
                plan: plan(3, 50),
                load_edges: 1000,
                load_communities: 100,
                load_hold: 2,
                relay_secs: 2.0,
            }
        } else {
            Self {
                name: "full",
                micro: Duration::from_millis(300),
                udp: Duration::from_secs(3),
                tap: Duration::from_secs(2),
                plan: plan(10, 200),
                load_edges: 10_000,
                load_communities: 1000,
                load_hold: 10,
                relay_secs: 5.0,
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(n2n_kit::config::go_style_args(std::env::args()));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("benchmark: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.mode {
        None => rt.block_on(run(cli.run, false)),
        Some(Mode::Run(o)) => rt.block_on(run(o, false)),
        Some(Mode::Compare(o)) => rt.block_on(run(o, true)),
        Some(Mode::SnLoad(o)) => rt.block_on(snload::run(o)),
        Some(Mode::Ab(o)) => ab::run(o),
        Some(Mode::Soak(o)) => soak::run(o),
        Some(Mode::Junk { to, pps, seconds }) => soak::junk(&to, pps, seconds),
        Some(Mode::ApiGet { api, path }) => soak::api_get(api, &path),
        Some(Mode::TapProbe { millis }) => tap::probe(millis),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("benchmark: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(o: RunOptions, compare: bool) -> anyhow::Result<()> {
    let profile = Profile::of(&o);
    let has = |s| o.only.contains(&s);
    let mode = format!(
        "{} {}",
        if compare { "compare" } else { "run" },
        profile.name
    );
    let mut report = Report::new(Machine::detect(&mode));
    // Namespace names unique to this process, so parallel runs (tests) do not collide.
    let prefix = format!("nb{}-", std::process::id() % 100_000);

    let mut systems = vec![
        System::Native,
        System::NativeOffload,
        System::N2nRs,
        System::N2nRsRelayed,
    ];
    if compare {
        for p in overlays::PEERS {
            match p.missing() {
                None => systems.push(p),
                Some(why) => report.skip(why),
            }
        }
    }
    let steps = u64::from(has(Section::Components)) * 10
        + u64::from(has(Section::Tap))
        + u64::from(has(Section::E2e)) * (systems.len() as u64) * (measure::STEPS + 1)
        + u64::from(has(Section::Supernode)) * 2;
    let progress = progress::Steps::new(steps);

    if has(Section::Components) {
        progress.doing("codec and crypto");
        let budget = components::Budget {
            micro: profile.micro,
            udp: profile.udp,
        };
        components::codec_and_crypto(&mut report, budget, &progress);
        progress.doing("UDP on loopback");
        components::udp(&mut report, budget.udp, &progress)?;
    }
    if has(Section::Tap) {
        progress.doing("TAP device");
        if let Err(e) = tap::measure(&mut report, profile.tap, &prefix) {
            report.skip(format!("tap: {e:#}"));
        }
        progress.tick();
    }
    if has(Section::E2e) {
        let bins = Bins::beside_me()?;
        for system in systems {
            progress.doing(format!("{}: bringing it up", system.name()));
            let result = (|| -> anyhow::Result<()> {
                let mut lab = lab::Lab::up(&prefix)?;
                let up = system.up(&mut lab, &bins)?;
                progress.tick();
                let target = measure::Target {
                    subject: &up.subject,
                    server: up.server,
                    pids: &up.pids,
                    mtu: up.mtu,
                };
                measure::run(&lab, &target, profile.plan, &mut report, &progress)?;
                lab.check_alive()
                    .context("a daemon died during the measurement")
            })();
            if let Err(e) = result {
                if !overlays::PEERS.contains(&system) {
                    return Err(e.context(format!("{} end to end", system.name())));
                }
                report.skip(format!("{}: {e:#}", system.name()));
            }
        }
    }
    if has(Section::Supernode) {
        progress.doing(format!(
            "supernode: {} edges registering",
            profile.load_edges
        ));
        let opts = snload::Options {
            edges: profile.load_edges,
            communities: profile.load_communities,
            hold: profile.load_hold,
            supernode: None,
        };
        let load = snload::load(&opts).await?;
        let mib = |k: u64| k as f64 / 1024.0;
        let sn = "supernode";
        report.add(sn, sn, "idle RSS", "MiB", mib(load.idle_kib), Better::Lower);
        report.add(
            sn,
            sn,
            &format!("RSS with {} edges", opts.edges),
            "MiB",
            mib(load.loaded_kib),
            Better::Lower,
        );
        report.add(
            sn,
            sn,
            "memory per edge",
            "KiB",
            load.loaded_kib.saturating_sub(load.idle_kib) as f64 / opts.edges as f64,
            Better::Lower,
        );
        report.add(
            sn,
            sn,
            "registrations",
            "per s",
            load.reg_per_sec,
            Better::Higher,
        );
        progress.tick();
        progress.doing("supernode: relay");
        let (offered, relayed, cpu) = snload::relay(None, 4, 1432, profile.relay_secs).await?;
        report.add(
            sn,
            sn,
            "relay 1432 B offered",
            "kpps",
            offered / 1e3,
            Better::Higher,
        );
        report.add(
            sn,
            sn,
            "relay 1432 B relayed",
            "kpps",
            relayed / 1e3,
            Better::Higher,
        );
        report.add(
            sn,
            sn,
            "CPU while relaying",
            "% of a core",
            cpu,
            Better::Lower,
        );
        if cpu > 0.0 {
            let per_core = relayed / 1e3 / (cpu / 100.0);
            report.add(
                sn,
                sn,
                "relayed per core-second",
                "kpps",
                per_core,
                Better::Higher,
            );
        }
        progress.tick();
    }
    progress.finish();
    report.compute_ratios();
    print!("{}", report.table());
    let files = report.write(&o.out, &chart::svg(&report))?;
    println!();
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(())
}

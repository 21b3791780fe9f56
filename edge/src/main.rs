//! `edge`: the daemon binary and its management commands.

use clap::Parser;
use n2n_edge::config::{Command, Flags, LogsArgs, Settings, parse_when};
use n2n_kit::config::go_style_args;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let flags = Flags::parse_from(go_style_args(std::env::args()));
    let settings = match Settings::load(&flags) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("edge: configuration error:\n{e}");
            return ExitCode::from(2);
        }
    };
    match flags.command {
        Some(Command::Status { json }) => {
            return manage(
                &settings,
                "/status",
                if json { print_json } else { print_status },
            );
        }
        Some(Command::Peers { json }) => {
            return manage(
                &settings,
                "/peers.json",
                if json { print_json } else { print_peers },
            );
        }
        Some(Command::Logs(args)) => return logs(&settings, &args),
        Some(Command::TrustSupernode { address }) => {
            return match n2n_edge::io::seen::forget(&settings.state_dir, address) {
                Ok(n) => {
                    println!(
                        "forgot {n} supernode identit{}; the next contact is trusted",
                        if n == 1 { "y" } else { "ies" }
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("edge: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
        Some(Command::Ctl { args }) => return ctl(&settings, &args),
        Some(Command::Up { .. }) | None => {}
    }
    let resolved = match settings.resolve() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("edge: configuration error:\n{e}");
            return ExitCode::from(2);
        }
    };
    let filter = match tracing_subscriber::EnvFilter::try_new(&resolved.settings.log_level) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("edge: configuration error:\nlog_level: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("edge: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    if resolved.settings.log_store {
        let (layer, rx, _dropped) = n2n_edge::io::logstore::layer();
        let path = resolved
            .settings
            .state_dir
            .join(n2n_edge::io::logstore::LOG_DB);
        let _ = std::fs::create_dir_all(&resolved.settings.state_dir);
        rt.spawn(n2n_edge::io::logstore::write_loop(path, rx));
        tracing_subscriber::registry()
            .with(filter)
            .with(fmt)
            .with(layer)
            .init();
    } else {
        tracing_subscriber::registry().with(filter).with(fmt).init();
    }
    for note in &resolved.settings.notes {
        tracing::warn!("{note}");
    }
    match rt.block_on(n2n_edge::io::run(resolved, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edge: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn get(addr: SocketAddr, path: &str) -> Result<serde_json::Value, String> {
    let r = n2n_kit::http::get(addr, path).map_err(|e| {
        format!("no edge answers on {addr} ({e}); is it running, and is api_listen the same?")
    })?;
    r.json().map_err(|e| format!("bad answer from {addr}: {e}"))
}

fn manage(settings: &Settings, path: &str, print: fn(&serde_json::Value)) -> ExitCode {
    let addr = match settings.api_listen.parse::<n2n_kit::config::ListenAddr>() {
        Ok(a) => {
            let mut a = a.0;
            if a.ip().is_unspecified() {
                a.set_ip([127, 0, 0, 1].into());
            }
            a
        }
        Err(e) => {
            eprintln!("edge: api_listen: {e}");
            return ExitCode::from(2);
        }
    };
    match get(addr, path) {
        Ok(v) => {
            print(&v);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("edge: {e}");
            ExitCode::FAILURE
        }
    }
}

/// n2n-go's `edge ctl COMMAND`: the same answers from the local API.
fn ctl(settings: &Settings, args: &[String]) -> ExitCode {
    match args.first().map(|a| a.to_ascii_lowercase()).as_deref() {
        Some("status") => manage(settings, "/status", print_status),
        Some("peers") => manage(settings, "/peers.json", print_peers),
        Some("ping") => manage(settings, "/status", |_| println!("OK: pong")),
        Some("logs") => {
            let mut argv = vec!["logs".to_string()];
            argv.extend(args.iter().skip(1).filter(|a| *a != "pretty").cloned());
            match <LogsArgs as clap::Args>::augment_args(clap::Command::new("logs"))
                .try_get_matches_from(argv)
                .and_then(|m| <LogsArgs as clap::FromArgMatches>::from_arg_matches(&m))
            {
                Ok(a) => logs(settings, &a),
                Err(e) => {
                    eprintln!("edge ctl logs: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Some("help") | Some("list") | None => {
            println!("commands: status, peers, ping, logs [--since 1h] [--until ...] [-n N], help");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("edge ctl: unknown command {other:?} (try: edge ctl help)");
            ExitCode::from(2)
        }
    }
}

fn logs(settings: &Settings, args: &LogsArgs) -> ExitCode {
    let now = std::time::SystemTime::now();
    let when = |flag: &str, spec: &Option<String>| -> Result<Option<i64>, String> {
        spec.as_deref()
            .map(|s| parse_when(s, now).map_err(|e| format!("--{flag}: {e}")))
            .transpose()
    };
    let (from, until) = match (when("since", &args.since), when("until", &args.until)) {
        (Ok(f), Ok(u)) => (f, u),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("edge: {e}");
            return ExitCode::from(2);
        }
    };
    let Ok(level) = args.level.parse::<tracing::Level>() else {
        eprintln!("edge: --level: want error, warn, info, debug or trace");
        return ExitCode::from(2);
    };
    let path = settings.state_dir.join(n2n_edge::io::logstore::LOG_DB);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("edge: {e}");
            return ExitCode::FAILURE;
        }
    };
    let query = n2n_edge::io::logstore::Query {
        last: args.last.max(1),
        from_ms: from,
        until_ms: until,
        min_level: level,
    };
    match rt.block_on(n2n_edge::io::logstore::read(&path, &query)) {
        Ok(lines) => {
            for l in lines {
                let t = humantime::format_rfc3339_millis(
                    std::time::UNIX_EPOCH + Duration::from_millis(l.ts_ms.max(0) as u64),
                );
                if args.json {
                    let v = serde_json::json!({
                        "time": t.to_string(),
                        "level": l.level,
                        "target": l.target,
                        "message": l.message,
                    });
                    println!("{v}");
                } else {
                    println!("{}", l.to_text(&t.to_string()));
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("edge: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Field `k` of an API answer, for a table: text from peers and supernodes is made printable.
fn s(v: &serde_json::Value, k: &str) -> String {
    match v.get(k) {
        Some(serde_json::Value::String(s)) => n2n_protocol::text::printable(s),
        Some(serde_json::Value::Null) | None => "-".into(),
        Some(x) => x.to_string(),
    }
}

fn print_json(v: &serde_json::Value) {
    println!("{v}");
}

fn print_status(v: &serde_json::Value) {
    for k in [
        "community",
        "registered",
        "ip",
        "prefix",
        "mac",
        "edge_id",
        "supernode",
        "supernode_fingerprint",
        "observed",
        "tap",
        "local",
        "peers",
        "direct_peers",
        "tx_frames",
        "tx_relayed",
        "rx_frames",
        "uptime_secs",
    ] {
        println!("{k:<22} {}", s(v, k));
    }
}

fn print_peers(v: &serde_json::Value) {
    println!(
        "{:<6} {:<16} {:<18} {:<20} {:<9} {:<22} {:>9} {:>10}",
        "ID", "IP", "MAC", "NAME", "PATH", "ENDPOINT", "RTT ms", "LAST SEEN"
    );
    for p in v
        .get("peers")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
    {
        let mut path = s(p, "path");
        if p.get("one_way").and_then(|o| o.as_bool()).unwrap_or(false) {
            path.push_str("/1way");
        }
        let name: String = s(p, "desc")
            .chars()
            .filter(|c| !c.is_control())
            .take(20)
            .collect();
        println!(
            "{:<6} {:<16} {:<18} {:<20} {:<9} {:<22} {:>9} {:>10}",
            s(p, "id"),
            s(p, "ip"),
            s(p, "mac"),
            name,
            path,
            s(p, "endpoint"),
            s(p, "rtt_ms"),
            p.get("last_seen_secs")
                .and_then(|v| v.as_u64())
                .map_or("-".to_string(), |n| format!("{n}s"))
        );
    }
}

//! `supernode`: the daemon binary.

use clap::Parser;
use n2n_kit::config::go_style_args;
use n2n_protocol::crypto::kdf::{CommunityKeys, KdfParams};
use n2n_supernode::config::{Command, Flags, Settings};
use std::process::ExitCode;

fn main() -> ExitCode {
    let flags = Flags::parse_from(go_style_args(std::env::args()));
    if let Some(Command::CommunityKey {
        community,
        passphrase,
    }) = &flags.command
    {
        return community_key(community, passphrase.clone());
    }
    let settings = match Settings::load(&flags) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("supernode: configuration error:\n{e}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::ReleaseLease { community, mac }) = &flags.command {
        return release_lease(&settings, community, mac);
    }
    let filter = match tracing_subscriber::EnvFilter::try_new(&settings.log_level) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("supernode: configuration error:\nlog_level: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    for note in &settings.notes {
        tracing::warn!("{note}");
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("supernode: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        let socket = n2n_supernode::io::bind_udp(settings.listen.0, settings.udp_buffer_size)?;
        let (reload_tx, reloads) = tokio::sync::mpsc::channel(1);
        tokio::spawn(reload_on_sighup(flags, reload_tx));
        n2n_supernode::run(socket, settings, shutdown_signal(), reloads).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("supernode: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the configuration again on every SIGHUP; a bad one is reported and not applied.
async fn reload_on_sighup(flags: Flags, tx: tokio::sync::mpsc::Sender<Settings>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        match Settings::load(&flags) {
            Ok(s) => {
                for note in &s.notes {
                    tracing::warn!("{note}");
                }
                if tx.send(s).await.is_err() {
                    return;
                }
            }
            Err(e) => tracing::error!("configuration not reloaded, keeping the running one:\n{e}"),
        }
    }
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// `supernode release-lease`: one POST to the local API with the state dir's token.
fn release_lease(settings: &Settings, community: &str, mac: &str) -> ExitCode {
    let Some(mut addr) = settings.api_addr() else {
        eprintln!(
            "supernode: the API is off (api_listen is empty); it is needed to release a lease"
        );
        return ExitCode::from(2);
    };
    if addr.ip().is_unspecified() {
        addr.set_ip([127, 0, 0, 1].into());
    }
    let token = match n2n_supernode::io::token::read(&settings.state_dir) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("supernode: {e:#} (run this as the supernode's user, with its state_dir)");
            return ExitCode::FAILURE;
        }
    };
    let path = format!(
        "/leases/{}/{}/release",
        percent_encode(community),
        percent_encode(mac)
    );
    let headers = [(n2n_supernode::api::TOKEN_HEADER, token.as_str())];
    let resp = match n2n_kit::http::Request::post(&path, &headers).send(addr) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("supernode: no supernode answers on {addr} ({e}); is it running?");
            return ExitCode::FAILURE;
        }
    };
    let (ok, body) = (resp.ok(), resp.body.as_str());
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    if ok {
        println!(
            "released {} ({}, edge id {}) in {}: the next member to register with this MAC gets it",
            field("mac").as_deref().unwrap_or(mac),
            field("ip").as_deref().unwrap_or("?"),
            v.get("edge_id").cloned().unwrap_or_default(),
            field("community").as_deref().unwrap_or(community)
        );
        ExitCode::SUCCESS
    } else {
        let why = field("error").unwrap_or_else(|| body.to_string());
        eprintln!("supernode: {}", n2n_protocol::text::printable(&why));
        ExitCode::FAILURE
    }
}

/// Percent-encodes a path segment (community names may hold any character but '/').
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn community_key(community: &str, passphrase: Option<String>) -> ExitCode {
    let pass = match passphrase {
        Some(p) => p,
        None => {
            let mut line = String::new();
            if std::io::stdin().read_line(&mut line).is_err() {
                eprintln!(
                    "supernode: give the passphrase with -passphrase, N2N_PASSPHRASE or on standard input"
                );
                return ExitCode::from(2);
            }
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    if pass.is_empty() {
        eprintln!("supernode: the passphrase is empty; an open community needs no verifier");
        return ExitCode::from(2);
    }
    let keys = CommunityKeys::derive(community, Some(&pass), KdfParams::default());
    match keys.verifier() {
        Some(v) => println!("{}", n2n_kit::config::HexKey(v)),
        None => return ExitCode::FAILURE,
    }
    ExitCode::SUCCESS
}

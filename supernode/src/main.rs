//! `supernode`: the daemon binary.

use clap::Parser;
use n2n_common::config::go_style_args;
use n2n_common::crypto::kdf::{CommunityKeys, KdfParams};
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
        eprintln!("supernode: the passphrase is empty; an open community needs no admission key");
        return ExitCode::from(2);
    }
    let keys = CommunityKeys::derive(community, Some(&pass), KdfParams::default());
    println!("{}", n2n_common::config::HexKey(keys.admission));
    ExitCode::SUCCESS
}

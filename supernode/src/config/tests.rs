//! The configuration's tests: layering, n2n-go names, errors that name the key, and the
//! golden inventory of every key, variable and flag.
#![allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error

use super::*;

fn flags(args: &[&str]) -> Flags {
    let mut v = vec!["supernode".to_string()];
    v.extend(args.iter().map(|s| s.to_string()));
    Flags::parse_from(cfg::go_style_args(v))
}

#[test]
fn layering_is_defaults_then_file_then_env_then_flags() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "supernode.yaml",
            "listen: \":1000\"\nheartbeat: 20s\nexpiry: 90s\nlog_level: warn\nsubnet: 10.200.0.0/16\n",
        )?;
        jail.set_env("N2N_HEARTBEAT", "30s");
        jail.set_env("N2N_LOG_LEVEL", "debug");
        jail.set_env("N2N_COMMUNITY", "ignored: an edge key");
        let s = Settings::load(&flags(&["-log-level", "trace"])).map_err(|e| e.to_string())?;
        assert_eq!(
            s.listen.0,
            "[::]:1000".parse().unwrap(),
            "file over defaults"
        );
        assert_eq!(s.heartbeat, Duration::from_secs(30), "env over file");
        assert_eq!(s.log_level, "trace", "flags over env");
        assert_eq!(s.expiry, Duration::from_secs(90));
        assert_eq!(s.subnet.to_string(), "10.200.0.0/16");
        assert_eq!(s.api_listen, "127.0.0.1:7779", "default kept");
        let s = Settings::load(&flags(&["--listen", "127.0.0.1:9", "-debug"]))
            .map_err(|e| e.to_string())?;
        assert_eq!(s.listen.0, "127.0.0.1:9".parse().unwrap());
        assert_eq!(s.log_level, "debug");
        Ok(())
    });
}

#[test]
fn an_n2n_go_supernode_yaml_and_its_flags_still_start_the_supernode() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "supernode.yaml",
            "listen_address: \":7700\"\ndebug: true\ncommunity_subnet: \"10.128.0.0\"\n\
             community_subnet_cidr: 24\nexpiry_duration: 90s\ncleanup_interval: 30s\n\
             udp_buffer_size: 8388608\nstrict_hash_checking: true\nenable_vfuze: true\n",
        )?;
        let s = Settings::load(&flags(&["-enableFuze=false"])).map_err(|e| e.to_string())?;
        assert_eq!(s.listen.0, "[::]:7700".parse().unwrap());
        assert_eq!(s.subnet.to_string(), "10.128.0.0/9");
        assert_eq!(s.community_prefix, 24);
        assert_eq!(
            (s.expiry, s.sweep_interval),
            (Duration::from_secs(90), Duration::from_secs(30))
        );
        assert_eq!(s.udp_buffer_size, 8 << 20);
        assert_eq!(s.log_level, "debug", "n2n-go's debug: true");
        let all = s.notes.join("\n");
        for key in [
            "listen_address",
            "community_subnet_cidr",
            "strict_hash_checking",
            "-enableFuze",
        ] {
            assert!(all.contains(key), "no note on {key}: {all}");
        }
        let s = Settings::load(&flags(&["-subnet", "172.16.0.0", "-subnetcidr", "24"]))
            .map_err(|e| e.to_string())?;
        assert_eq!(s.subnet.to_string(), "172.16.0.0/12");
        let s = Settings::load(&flags(&["-subnet", "192.168.0.0"])).map_err(|e| e.to_string())?;
        assert_eq!(s.subnet.to_string(), "192.168.0.0/16", "inside 192.168/16");
        jail.set_env("N2N_EXPIRY_DURATION", "2m");
        let s = Settings::load(&flags(&[])).map_err(|e| e.to_string())?;
        assert_eq!(s.expiry, Duration::from_secs(120));
        Ok(())
    });
}

#[test]
fn bad_keys_and_values_name_the_key() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("bad.yaml", "listen: \":7777\"\nlisten_port: 5\n")?;
        let e = Settings::load(&flags(&["-config", "bad.yaml"])).unwrap_err();
        assert!(
            e.contains("listen_port") && e.contains("unknown field"),
            "{e}"
        );
        jail.create_file("bad2.yaml", "communities:\n  acme:\n    verifiers: [xyz]\n")?;
        let e = Settings::load(&flags(&["-config", "bad2.yaml"])).unwrap_err();
        assert!(
            e.contains("communities.acme.verifiers") && e.contains("64 hex"),
            "{e}"
        );
        jail.create_file(
            "v1.yaml",
            &format!(
                "communities:\n  acme:\n    admission_key: \"{}\"\n",
                "ab".repeat(32)
            ),
        )?;
        let e = Settings::load(&flags(&["-config", "v1.yaml"])).unwrap_err();
        assert!(
            e.contains("communities.acme.admission_key") && e.contains("verifiers"),
            "{e}"
        );
        let e = Settings::load(&flags(&["-expiry", "soon"])).unwrap_err();
        assert!(
            e.starts_with("expiry:") && e.contains("command-line flags"),
            "{e}"
        );
        let e = Settings::load(&flags(&["-subnet", "10.0.0.300"])).unwrap_err();
        assert!(e.starts_with("subnet:") && e.contains("CIDR"), "{e}");
        let e = Settings::load(&flags(&["-heartbeat", "60s", "-expiry", "30s"])).unwrap_err();
        assert!(e.starts_with("expiry:"), "{e}");
        let e = Settings::load(&flags(&["-config", "missing.yaml"])).unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
        Ok(())
    });
}

#[test]
fn the_example_config_file_loads_and_matches_the_defaults() {
    // Inside a jail: jails serialize with each other, so no other test's env leaks in.
    figment::Jail::expect_with(|_| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/supernode.yaml");
        let s = Settings::load(&flags(&["-config", path])).map_err(|e| e.to_string())?;
        let d = Settings::default();
        assert_eq!(
            (
                s.listen,
                s.heartbeat,
                s.expiry,
                s.subnet,
                s.limits,
                s.udp_buffer_size
            ),
            (
                d.listen,
                d.heartbeat,
                d.expiry,
                d.subnet,
                d.limits,
                d.udp_buffer_size
            )
        );
        Ok(())
    });
}

#[test]
fn every_key_variable_flag_and_n2n_go_name_is_still_there() {
    let dir = env!("CARGO_MANIFEST_DIR");
    cfg::assert_inventory::<Flags>(&Settings::default(), Settings::KEYS, LEGACY, dir);
}

#[test]
fn a_reload_applies_live_keys_and_keeps_restart_only_ones() {
    assert_eq!(
        Settings::restart_only(),
        [
            "listen",
            "api_listen",
            "state_dir",
            "log_level",
            "udp_buffer_size",
            "debug"
        ]
    );
    let running = Settings::default();
    let new = Settings {
        listen: ListenAddr("127.0.0.1:1".parse().unwrap()),
        heartbeat: Duration::from_secs(3),
        allow_open: !running.allow_open,
        ..Settings::default()
    };
    assert_eq!(new.restart_only_changes(&running), ["listen"]);
    let applied = new.keeping_restart_only(&running);
    assert_eq!(applied.listen, running.listen, "listen waits for a restart");
    assert_eq!(
        (applied.heartbeat, applied.allow_open),
        (Duration::from_secs(3), !running.allow_open),
        "live keys change"
    );
}

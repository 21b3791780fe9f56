//! The configuration's tests: layering, n2n-go names, errors that name the key, and the
//! golden inventory of every key, variable and flag.
#![allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error

use super::*;

fn flags(args: &[&str]) -> Flags {
    let mut v = vec!["edge".to_string()];
    v.extend(args.iter().map(|s| s.to_string()));
    Flags::parse_from(cfg::go_style_args(v))
}

#[test]
fn go_style_and_double_dash_flags_and_n2n_go_aliases_work() {
    figment::Jail::expect_with(|_| {
        let s = Settings::load(&flags(&[
            "-community",
            "acme",
            "-supernode",
            "127.0.0.1:7777,127.0.0.1:7778",
        ]))
        .map_err(|e| e.to_string())?;
        assert_eq!(s.community, "acme");
        assert_eq!(s.supernode, ["127.0.0.1:7777", "127.0.0.1:7778"]);
        let s = Settings::load(&flags(&[
            "--community",
            "x",
            "--supernode",
            "127.0.0.1:1",
            "-id",
            "box",
            "-tap",
            "t0",
            "-port",
            "5000",
            "-encryption-passphrase",
            "pw",
            "-compress-payload",
            "true",
            "-udpbuffersize",
            "1024",
        ]))
        .map_err(|e| e.to_string())?;
        assert_eq!(
            (s.edge_id.as_str(), s.tap_name.as_str(), s.local_port),
            ("box", "t0", 5000)
        );
        assert_eq!(
            (s.passphrase.as_str(), s.compress, s.udp_buffer_size),
            ("pw", true, 1024)
        );
        let r = s.resolve().map_err(|e| e.to_string())?;
        assert_eq!(
            r.supernodes,
            vec!["127.0.0.1:1".parse::<SocketAddr>().unwrap()]
        );
        Ok(())
    });
}

#[test]
fn an_n2n_go_edge_yaml_and_its_flags_still_start_the_edge() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "edge.yaml",
            "edge_id: box\ncommunity: acme\nsupernode_addr: \"127.0.0.1:7777\"\n\
             heartbeat_interval: 20s\napi_listen_address: \"127.0.0.1:9778\"\n\
             encryption_passphrase: pw\ncompress_payload: true\nenable_vfuze: true\n\
             protocol_version: 5\nverify_hash: true\nheartbeat: 15s\n",
        )?;
        let f = flags(&["up", "-i", "other", "-l", "-enableFuze"]);
        assert!(matches!(f.command, Some(Command::Up { stdout_log: true })));
        let s = Settings::load(&f).map_err(|e| e.to_string())?;
        assert_eq!(s.supernode, ["127.0.0.1:7777"]);
        assert_eq!(
            s.heartbeat,
            Duration::from_secs(15),
            "our name wins over n2n-go's"
        );
        assert_eq!(
            (s.api_listen.as_str(), s.passphrase.as_str(), s.compress),
            ("127.0.0.1:9778", "pw", true)
        );
        assert_eq!(s.edge_id, "other", "`edge up -i` names the edge");
        let all = s.notes.join("\n");
        for key in [
            "supernode_addr",
            "encryption_passphrase",
            "enable_vfuze",
            "verify_hash",
        ] {
            assert!(all.contains(key), "no note on {key}: {all}");
        }
        assert!(all.contains("-enableFuze"), "{all}");

        jail.create_file("edge.yaml", "community: acme\n")?;
        // Both names in the environment: ours wins, whatever the order.
        jail.set_env("N2N_HEARTBEAT", "7s");
        jail.set_env("N2N_HEARTBEAT_INTERVAL", "9s");
        let s = Settings::load(&flags(&[])).map_err(|e| e.to_string())?;
        assert_eq!(s.heartbeat, Duration::from_secs(7));
        jail.clear_env();
        jail.set_env("N2N_SUPERNODE_ADDR", "127.0.0.1:7000");
        let s = Settings::load(&flags(&[])).map_err(|e| e.to_string())?;
        assert_eq!(s.supernode, ["127.0.0.1:7000"]);
        assert!(
            s.notes.len() == 1
                && s.notes[0].contains("N2N_")
                && s.notes[0].contains("supernode_addr"),
            "{:?}",
            s.notes
        );
        Ok(())
    });
}

#[test]
fn logs_takes_n2n_go_forms_and_times_ago_or_absolute() {
    let f = flags(&[
        "logs",
        "-l",
        "5",
        "-s",
        "1h",
        "-e",
        "2026-12-01T10:00:00Z",
        "-p",
    ]);
    let Some(Command::Logs(a)) = f.command else {
        panic!("{:?}", f.command)
    };
    assert_eq!(a.last, 5);
    assert_eq!(
        (a.since.as_deref(), a.until.as_deref()),
        (Some("1h"), Some("2026-12-01T10:00:00Z"))
    );
    let f = flags(&["logs", "--count", "7", "--end", "10m"]);
    assert!(matches!(
        f.command,
        Some(Command::Logs(LogsArgs { last: 7, .. }))
    ));
    let now = std::time::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
    assert_eq!(parse_when("1h", now), Ok((2_000_000_000 - 3600) * 1000));
    assert_eq!(
        parse_when("2026-12-01T10:00:00Z", now),
        Ok(1_796_119_200_000)
    );
    assert!(
        parse_when("yesterday-ish", now)
            .unwrap_err()
            .contains("90s")
    );
    let f = flags(&["ctl", "logs", "pretty"]);
    assert!(matches!(f.command, Some(Command::Ctl { ref args }) if args == &["logs", "pretty"]));
}

#[test]
fn layering_file_env_flags_and_errors_name_the_key() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "edge.yaml",
            "community: fromfile\nsupernode: [\"127.0.0.1:7777\"]\nmtu: 1300\nheartbeat: 20s\n",
        )?;
        jail.set_env("N2N_MTU", "1200");
        jail.set_env("N2N_LISTEN", "ignored: a supernode key");
        let s = Settings::load(&flags(&["-heartbeat", "5s"])).map_err(|e| e.to_string())?;
        assert_eq!(s.community, "fromfile");
        assert_eq!(s.mtu, 1200, "env over file");
        assert_eq!(s.heartbeat, Duration::from_secs(5), "flags over file");
        jail.set_env("N2N_SUPERNODE", "127.0.0.1:9,127.0.0.1:10");
        let s = Settings::load(&flags(&[])).map_err(|e| e.to_string())?;
        assert_eq!(s.supernode, ["127.0.0.1:9", "127.0.0.1:10"]);

        jail.create_file("bad.yaml", "community: a\ntapname: x\n")?;
        let e = Settings::load(&flags(&["-config", "bad.yaml"])).unwrap_err();
        assert!(e.contains("tapname") && e.contains("unknown field"), "{e}");
        let e = Settings::load(&flags(&["-heartbeat", "often"])).unwrap_err();
        assert!(e.starts_with("heartbeat:"), "{e}");
        let e = Settings::load(&flags(&[
            "-community",
            "a",
            "-supernode",
            "x:1",
            "-mtu",
            "100",
        ]))
        .and_then(Settings::resolve)
        .unwrap_err();
        assert!(e.starts_with("mtu:"), "{e}");
        std::fs::remove_file("edge.yaml").map_err(|e| e.to_string())?;
        let e = Settings::load(&flags(&["-supernode", "127.0.0.1:1"]))
            .and_then(Settings::resolve)
            .unwrap_err();
        assert!(e.starts_with("community:"), "{e}");
        let e = Settings::load(&flags(&[
            "-community",
            "a",
            "-supernode",
            "127.0.0.1:1",
            "-supernode-fingerprint",
            "nope",
        ]))
        .and_then(Settings::resolve)
        .unwrap_err();
        assert!(e.starts_with("supernode_fingerprint:"), "{e}");
        Ok(())
    });
}

#[test]
fn the_example_config_file_loads() {
    figment::Jail::expect_with(|_| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/edge.yaml");
        let s = Settings::load(&flags(&["-config", path])).map_err(|e| e.to_string())?;
        let d = Settings::default();
        assert_eq!(
            (s.mtu, s.tap_name, s.api_listen, s.heartbeat),
            (d.mtu, d.tap_name, d.api_listen, d.heartbeat)
        );
        Ok(())
    });
}

#[test]
fn every_key_variable_flag_and_n2n_go_name_is_still_there() {
    let dir = env!("CARGO_MANIFEST_DIR");
    cfg::assert_inventory::<Flags>(&Settings::default(), Settings::KEYS, LEGACY, dir);
}

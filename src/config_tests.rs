use super::*;
use clap::Parser;

/// The tests that set `XRG_*` variables hold it, and so does every parse here, so that no
/// test reads another's environment.
static ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn env_lock() -> std::sync::MutexGuard<'static, ()> {
    ENV.lock().unwrap_or_else(|e| e.into_inner())
}

fn parse(args: &[&str]) -> Result<Config, String> {
    let _env = env_lock();
    parse_here(args)
}

/// [`parse`] for a test that holds the lock already.
fn parse_here(args: &[&str]) -> Result<Config, String> {
    let mut all = vec!["xmpp-rest-gateway"];
    all.extend_from_slice(args);
    match Cli::parse_args(all) {
        Ok(cli) => cli.into_config().map_err(|e| e.to_string()),
        Err(CliError::Clap(e)) => Err(e.to_string()),
        Err(CliError::Env(e)) => Err(e),
    }
}

/// Runs `f` with the variables `vars` set, then removes them.
fn with_env<T>(vars: &[(&str, &str)], f: impl FnOnce() -> T) -> T {
    let _env = env_lock();
    for (k, v) in vars {
        std::env::set_var(k, v);
    }
    let out = f();
    for (k, _) in vars {
        std::env::remove_var(k);
    }
    out
}

#[test]
fn a_listen_name_is_resolved_to_its_first_address() {
    let c = parse(&[
        "--listen",
        "localhost:8081",
        "--admin-listen",
        "localhost:9781",
    ])
    .unwrap();
    assert!(c.listen.ip().is_loopback(), "{}", c.listen);
    assert_eq!(c.listen.port(), 8081);
    match c.admin_listen {
        AdminListen::Given(a) => assert!(a.ip().is_loopback() && a.port() == 9781, "{a}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_port_out_of_range_says_so() {
    for (flag, value, says) in [
        ("--upstream", "host:99999", "out of range"),
        ("--upstream", "host:0", "port 0"),
        ("--upstream", "host:x", "not a number"),
        ("--upstream", "host:", "not a number"),
        ("--upstream", "a@host", "HOST:PORT"),
        ("--upstream", "127.0.0.1", "needs its port"),
        ("--upstream", "a:5222,,b:5222", "empty entry"),
        ("--upstream", "a:5222,a:5222", "twice"),
        ("--listen", "127.0.0.1:70000", "out of range"),
        ("--admin-listen", "127.0.0.1:65536", "out of range"),
    ] {
        let e = parse(&[flag, value]).unwrap_err();
        assert!(e.contains(flag) && e.contains(says), "{flag} {value}: {e}");
    }
}

/// Every numeric flag either says what 0 means (`--threads`: one per core) or refuses it
/// under its name.
#[test]
fn zero_is_refused_under_the_flags_name_except_where_it_means_something() {
    for flag in [
        "--connect-timeout",
        "--request-timeout",
        "--body-timeout",
        "--max-body",
        "--max-in-flight",
        "--max-in-flight-per-account",
        "--max-logins",
        "--max-jids",
        "--max-connections",
        "--max-header-bytes",
        "--keepalive-timeout",
        "--reauth-interval",
        "--session-in-flight",
        "--max-sessions",
        "--command-idle",
        "--throttle-pair",
        "--throttle-wide",
        "--throttle-total",
        "--throttle-window",
    ] {
        let e = parse(&[flag, "0"]).unwrap_err();
        assert!(e.contains(flag), "{flag}: {e}");
    }
    assert_eq!(parse(&["--threads", "0"]).unwrap().threads, 0);
    let e = parse(&["--stream-rate", "0/s"]).unwrap_err();
    assert!(e.contains("--stream-rate"), "{e}");
}

#[test]
fn a_bad_value_from_the_environment_names_the_variable() {
    // Read by clap (a number, an enum): the variable, never the flag.
    for (var, value) in [("XRG_MAX_BODY", "abc"), ("XRG_UPSTREAM_TLS", "tls")] {
        let e = with_env(&[(var, value)], || parse_here(&[])).unwrap_err();
        assert!(e.contains(var) && e.contains(value), "{e}");
    }
    // Checked by the gateway.
    for (var, value) in [
        ("XRG_LISTEN", "nonsense"),
        ("XRG_UPSTREAM", "host:99999"),
        ("XRG_THROTTLE_TOTAL", "0"),
        ("XRG_DOMAIN", "a@b.org"),
    ] {
        let e = with_env(&[(var, value)], || parse_here(&[])).unwrap_err();
        assert!(e.contains(var), "{var}: {e}");
        let flag = format!("--{}", var[4..].to_lowercase().replace('_', "-"));
        assert!(!e.contains(&flag), "{var}: {e}");
    }
    // Given on the command line too: the flag wins, and is named.
    let e = with_env(&[("XRG_MAX_BODY", "1")], || {
        parse_here(&["--max-body", "x"])
    })
    .unwrap_err();
    assert!(
        e.contains("--max-body") && !e.contains("XRG_MAX_BODY"),
        "{e}"
    );
    let e = with_env(&[("XRG_LISTEN", "127.0.0.1:1")], || {
        parse_here(&["--listen", "127.0.0.1:99999"])
    })
    .unwrap_err();
    assert!(e.contains("--listen") && !e.contains("XRG_LISTEN"), "{e}");
}

#[test]
fn defaults_are_the_documented_ones() {
    let c = parse(&[]).unwrap();
    assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(
        c.upstream.entries,
        vec![UpstreamEntry::Addr {
            host: "127.0.0.1".into(),
            port: 5222
        }]
    );
    assert_eq!(c.upstream.tls, UpstreamTls::Starttls);
    assert_eq!(c.aliases, vec!["sess-man"]);
    assert_eq!(c.max_body, 262_144);
    assert_eq!(c.pool.reauth_interval, Duration::from_secs(300));
}

#[test]
fn public_listen_without_tls_is_refused() {
    assert!(parse(&["--listen", "0.0.0.0:8080"])
        .unwrap_err()
        .contains("--tls-cert"));
    assert!(parse(&["--listen", "0.0.0.0:8080", "--insecure-http"]).is_ok());
}

#[test]
fn plaintext_upstream_only_on_loopback() {
    assert!(parse(&[
        "--upstream",
        "xmpp.example.org:5222",
        "--upstream-tls",
        "none"
    ])
    .is_err());
    assert!(parse(&["--upstream", "[::1]:5222", "--upstream-tls", "none"]).is_ok());
    assert!(parse(&["--upstream", "localhost:5222", "--upstream-tls", "none"]).is_ok());
}

#[test]
fn invalid_values_are_refused() {
    assert!(parse(&["--upstream", "no host port"]).is_err());
    assert!(parse(&["--connect-timeout", "0"]).is_err());
    assert!(parse(&["--tls-cert", "a.pem"]).is_err());
    assert!(parse(&["--domain", "user@example.org"]).is_err());
    assert!(parse(&["--alias", "a@b"]).is_err());
}

#[test]
fn aliases_repeat() {
    let c = parse(&["--alias", "sess-man", "--alias", "admin-service"]).unwrap();
    assert_eq!(c.aliases, vec!["sess-man", "admin-service"]);
}

#[test]
fn connection_limits_have_their_defaults_and_bounds() {
    let c = parse(&[]).unwrap();
    assert_eq!(c.max_connections, 4096);
    assert_eq!(c.max_header_bytes, 16_384);
    assert_eq!(c.keepalive_timeout, Duration::from_secs(15));
    assert!(parse(&["--max-header-bytes", "8191"]).is_err());
    assert!(parse(&["--max-header-bytes", "8192"]).is_ok());
    assert!(parse(&["--max-connections", "0"]).is_err());
    assert!(parse(&["--keepalive-timeout", "0"]).is_err());
    assert!(parse(&["--keepalive-timeout", "31"]).is_err());
    assert_eq!(c.write_timeout, Duration::from_secs(10));
    assert!(parse(&["--write-timeout", "0"]).is_err());
    assert_eq!(
        parse(&["--write-timeout", "60"]).unwrap().write_timeout,
        Duration::from_secs(60)
    );
}

#[test]
fn the_drain_has_its_defaults_and_bounds() {
    let c = parse(&[]).unwrap();
    assert_eq!(c.drain_delay, Duration::from_secs(5));
    // The grace there always was: a whole request and 2 s, following --request-timeout.
    assert_eq!(c.drain_timeout, Duration::from_secs(32));
    let c = parse(&["--request-timeout", "10"]).unwrap();
    assert_eq!(c.drain_timeout, Duration::from_secs(12));
    let c = parse(&["--drain-delay", "0", "--drain-timeout", "7"]).unwrap();
    assert_eq!(
        (c.drain_delay, c.drain_timeout),
        (Duration::ZERO, Duration::from_secs(7))
    );
    assert!(parse(&["--drain-delay", "3600"]).is_ok());
    let e = parse(&["--drain-delay", "3601"]).unwrap_err();
    assert!(e.contains("--drain-delay"), "{e}");
    for t in ["0", "3601"] {
        let e = parse(&["--drain-timeout", t]).unwrap_err();
        assert!(e.contains("--drain-timeout"), "{e}");
    }
    let e = with_env(&[("XRG_DRAIN_TIMEOUT", "0")], || parse_here(&[])).unwrap_err();
    assert!(e.contains("XRG_DRAIN_TIMEOUT"), "{e}");
    let c = with_env(&[("XRG_DRAIN_DELAY", "1")], || parse_here(&[])).unwrap();
    assert_eq!(c.drain_delay, Duration::from_secs(1));
}

#[test]
fn admission_limits_have_their_defaults_and_bounds() {
    let c = parse(&[]).unwrap();
    assert_eq!(c.body_timeout, Duration::from_secs(10));
    assert_eq!(
        (c.max_jids, c.max_header_bytes, c.max_connections),
        (100, 16 * 1024, 4096)
    );
    assert_eq!(
        (c.pool.max_in_flight_per_account, c.pool.max_logins),
        (256, 32)
    );
    for zero in [
        "--max-jids",
        "--max-logins",
        "--max-in-flight-per-account",
        "--body-timeout",
    ] {
        let e = parse(&[zero, "0"]).unwrap_err();
        assert!(e.contains(zero), "{e}");
    }
    assert!(parse(&["--max-header-bytes", "4096"]).is_err());
}

#[test]
fn an_api_key_requirement_needs_an_access_file() {
    let e = parse(&["--require-api-key"]).unwrap_err();
    assert!(e.contains("--access-file"), "{e}");
    let c = parse(&["--require-api-key", "--access-file", "/x.toml"]).unwrap();
    assert!(c.require_api_key);
}

#[test]
fn token_management_is_a_subcommand_that_takes_no_serving_flags() {
    let _env = env_lock();
    let cli = Cli::try_parse_from(["xmpp-rest-gateway", "token", "list", "--access-file", "/a"]);
    assert!(matches!(cli.unwrap().command, Some(Command::Token { .. })));
    let mixed = Cli::try_parse_from(["xmpp-rest-gateway", "--listen", "127.0.0.1:1", "token"]);
    assert!(mixed.is_err());
}

#[test]
fn cors_origins_repeat_and_split_on_commas() {
    let c = parse(&[
        "--cors-origin",
        "https://app.example, http://localhost:3000",
        "--cors-origin",
        "https://other.example:8443",
    ])
    .unwrap();
    let origins: Vec<String> = c.cors_origins.iter().map(|o| o.to_string()).collect();
    assert_eq!(
        origins,
        [
            "https://app.example",
            "http://localhost:3000",
            "https://other.example:8443"
        ]
    );
    assert!(parse(&[]).unwrap().cors_origins.is_empty());
    let c = parse(&["--public-origin", "https://xrg.example.org:443"]).unwrap();
    assert_eq!(
        c.public_origin.unwrap().to_string(),
        "https://xrg.example.org"
    );
}

#[test]
fn a_bad_origin_is_refused_naming_the_flag_and_the_variable() {
    for (flag, var, value) in [
        ("--cors-origin", "XRG_CORS_ORIGIN", "*"),
        ("--cors-origin", "XRG_CORS_ORIGIN", "https://*.example.org"),
        ("--cors-origin", "XRG_CORS_ORIGIN", "https://app.example/"),
        ("--cors-origin", "XRG_CORS_ORIGIN", "app.example"),
        (
            "--public-origin",
            "XRG_PUBLIC_ORIGIN",
            "https://xrg.example.org/api",
        ),
    ] {
        let e = parse(&[flag, value]).unwrap_err();
        assert!(e.contains(flag) && e.contains(var), "{e}");
    }
}

#[test]
fn the_console_is_on_unless_turned_off() {
    assert!(parse(&[]).unwrap().console);
    assert!(parse(&["--console", "on"]).unwrap().console);
    assert!(!parse(&["--console", "off"]).unwrap().console);
    assert!(parse(&["--console", "maybe"]).is_err());
}

#[test]
fn stream_iq_namespaces_repeat_split_on_commas_and_must_be_namespaces() {
    let c = parse(&[
        "--stream-iq-allow",
        "jabber:iq:private, urn:example:x",
        "--stream-iq-allow",
        "urn:example:y",
    ])
    .unwrap();
    assert_eq!(
        c.stream_iq_allow,
        ["jabber:iq:private", "urn:example:x", "urn:example:y"]
    );
    assert!(parse(&[]).unwrap().stream_iq_allow.is_empty());
    for bad in ["a b", "urn:x'y", "<x>"] {
        let e = parse(&["--stream-iq-allow", bad]).expect_err(bad);
        assert!(e.contains("--stream-iq-allow"), "{e}");
    }
}

#[test]
fn the_stanza_limit_defaults_under_the_servers_and_has_a_floor() {
    let c = parse(&[]).unwrap();
    // Prosody's c2s_stanza_size_limit and ejabberd's shipped max_stanza_size: 256 KiB.
    assert_eq!(c.pool.max_stanza_bytes, 240 * 1024);
    assert!(c.pool.max_stanza_bytes < 256 * 1024);
    assert!(parse(&["--max-stanza-bytes", "4095"]).is_err());
    let c = parse(&["--max-stanza-bytes", "4096"]).unwrap();
    assert_eq!(c.pool.max_stanza_bytes, 4096);
}

#[test]
fn replica_flags_go_together_and_name_each_replica_once() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("xrg-config-replica-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let key = dir.join("key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef\n").expect("write");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let key = key.to_str().expect("utf-8");

    assert!(parse(&[]).expect("none").replica.is_none());
    let c = parse(&[
        "--replica-name",
        "gw-1",
        "--replica-key-file",
        key,
        "--peer",
        "gw-2=http://127.0.0.1:8081",
    ])
    .expect("replicas");
    let r = c.replica.expect("replica");
    assert_eq!(r.name, "gw-1");
    assert_eq!(r.peer("gw-2").expect("peer").authority, "127.0.0.1:8081");
    // A name and a key without peers: marks only.
    assert!(
        parse(&["--replica-name", "gw-1", "--replica-key-file", key])
            .expect("alone")
            .replica
            .is_some()
    );
    for bad in [
        &["--replica-name", "gw-1"][..],
        &["--replica-key-file", key],
        &["--peer", "gw-2=http://127.0.0.1:8081"],
        &[
            "--replica-name",
            "gw-1",
            "--replica-key-file",
            key,
            "--peer",
            "gw-1=http://127.0.0.1:8081",
        ],
        &[
            "--replica-name",
            "gw-1",
            "--replica-key-file",
            key,
            "--peer",
            "gw-2=http://127.0.0.1:8081",
            "--peer",
            "gw-2=http://127.0.0.1:8082",
        ],
        &["--replica-name", "GW", "--replica-key-file", key],
    ] {
        assert!(parse(bad).is_err(), "{bad:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_dns_server_is_an_address_with_port_53_by_default() {
    assert_eq!(parse(&[]).unwrap().dns_server, None);
    let at = |a: &str| parse(&["--dns-server", a]).map(|c| c.dns_server);
    assert_eq!(at("127.0.0.53"), Ok(Some("127.0.0.53:53".parse().unwrap())));
    assert_eq!(
        at("127.0.0.1:5300"),
        Ok(Some("127.0.0.1:5300".parse().unwrap()))
    );
    assert_eq!(at("::1"), Ok(Some("[::1]:53".parse().unwrap())));
    assert_eq!(at("[::1]:5300"), Ok(Some("[::1]:5300".parse().unwrap())));
    for (bad, why) in [
        ("dns.example:53", "not an IP address"),
        ("127.0.0.1:0", "port 0"),
        ("nonsense", "expected IP"),
    ] {
        let e = at(bad).unwrap_err();
        assert!(e.contains("--dns-server") && e.contains(why), "{bad}: {e}");
    }
    let e = with_env(&[("XRG_DNS_SERVER", "dns.example")], || parse_here(&[])).unwrap_err();
    assert!(e.contains("XRG_DNS_SERVER"), "{e}");
}

#[test]
fn the_upstream_list_keeps_its_order_and_its_kinds() {
    let c = parse(&["--upstream", " b.example:5223, [::1]:5222,example.org "]).unwrap();
    assert_eq!(
        c.upstream.entries,
        vec![
            UpstreamEntry::Addr {
                host: "b.example".into(),
                port: 5223
            },
            UpstreamEntry::Addr {
                host: "::1".into(),
                port: 5222
            },
            UpstreamEntry::Srv {
                domain: "example.org".into()
            },
        ]
    );
    let labels: Vec<String> = c.upstream.entries.iter().map(|e| e.label()).collect();
    assert_eq!(labels, ["b.example:5223", "[::1]:5222", "example.org"]);
}

#[test]
fn the_upstream_list_is_bounded() {
    let at_most: Vec<String> = (1..=MAX_UPSTREAMS).map(|p| format!("h:{p}")).collect();
    assert!(parse(&["--upstream", &at_most.join(",")]).is_ok());
    let over: Vec<String> = (1..=MAX_UPSTREAMS + 1).map(|p| format!("h:{p}")).collect();
    let e = parse(&["--upstream", &over.join(",")]).unwrap_err();
    assert!(e.contains("more than 16"), "{e}");
}

#[test]
fn plaintext_upstream_list_refuses_any_literal_non_loopback_entry() {
    let e = parse(&[
        "--upstream",
        "127.0.0.1:5222,192.0.2.1:5222",
        "--upstream-tls",
        "none",
    ])
    .unwrap_err();
    assert!(e.contains("192.0.2.1"), "{e}");
    // A domain's targets are known only when looked up: checked at connect time.
    assert!(parse(&[
        "--upstream",
        "127.0.0.1:5222,example.org",
        "--upstream-tls",
        "none"
    ])
    .is_ok());
}

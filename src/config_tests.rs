use super::*;
use clap::Parser;

fn parse(args: &[&str]) -> Result<Config, String> {
    let mut all = vec!["xmpp-rest-gateway"];
    all.extend_from_slice(args);
    Cli::try_parse_from(all)
        .map_err(|e| e.to_string())?
        .into_config()
        .map_err(|e| e.to_string())
}

#[test]
fn defaults_are_the_documented_ones() {
    let c = parse(&[]).unwrap();
    assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(
        (c.upstream.host.as_str(), c.upstream.port),
        ("127.0.0.1", 5222)
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
    assert!(parse(&["--upstream", "nohostport"]).is_err());
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

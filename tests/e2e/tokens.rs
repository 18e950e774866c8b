//! Least privilege against real Prosody and ejabberd: scoped tokens acting through a service
//! account, api-keys beside Basic, per-account rules, hot revocation. Refusals are checked on
//! the wire through the reading c2s proxy: nothing refused may reach the server.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::proxy::XmppProxy;
use crate::common::victim::Victim;
use crate::common::{self, basic, http, HttpResponse, ServerKind, TestGateway, TestServer};
use base64::Engine;
use serde_json::json;

const PATH: &str = "/rest/adhoc/sess-man@domain.com";
const END_USER_SESSION: &str = "http://jabber.org/protocol/admin#end-user-session";
const USER_STATS: &str = "http://jabber.org/protocol/admin#user-stats";
const DELETE_USER: &str = "http://jabber.org/protocol/admin#delete-user";

on_both_servers!(
    a_helpdesk_token_ends_sessions_and_nothing_else,
    expired_and_out_of_network_tokens_are_refused,
    a_required_api_key_gates_basic_requests,
    an_account_rule_denies_before_any_login,
    a_service_account_that_deletes_itself_gets_its_outcome_and_recovers,
);

/// A scratch folder of this test's own.
fn dir(kind: ServerKind, name: &str) -> PathBuf {
    common::scratch_dir(&format!("tokens-{name}-{kind}-{}", common::random_hex(4)))
}

/// A credentials file readable by its owner alone.
fn credentials(dir: &Path, entries: &[(&str, &str)]) -> PathBuf {
    let path = dir.join("credentials.toml");
    let text: String = entries
        .iter()
        .map(|(jid, pw)| format!("\"{jid}\" = \"{pw}\"\n"))
        .collect();
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// A gateway reading `extra` flags, its c2s stream through a reading proxy.
async fn proxied(s: &TestServer, extra: &[&str], env: &[(&str, &str)]) -> (XmppProxy, TestGateway) {
    let proxy = XmppProxy::start(s.c2s_addr()).await;
    let upstream = proxy.addr.to_string();
    let mut args = vec!["--upstream", upstream.as_str(), "--upstream-tls", "none"];
    args.extend_from_slice(extra);
    let gw = TestGateway::start_with_env(s, &args, env);
    (proxy, gw)
}

fn command(node: &str, fields: serde_json::Value) -> Vec<u8> {
    json!({"command": {"node": node, "fields": fields}})
        .to_string()
        .into_bytes()
}

async fn post(addr: SocketAddr, auth: &[(&str, &str)], body: &[u8]) -> HttpResponse {
    let mut headers = vec![("content-type", "application/json")];
    headers.extend_from_slice(auth);
    http(addr, "POST", PATH, &headers, body).await
}

async fn a_helpdesk_token_ends_sessions_and_nothing_else(kind: ServerKind) {
    let s = common::started(kind).await;
    let d = dir(kind, "helpdesk");
    let access = d.join("access.toml");
    let access_s = access.to_str().unwrap();
    let service = s.jid("admin2");
    let secret = common::token(&[
        "add",
        "helpdesk",
        "--access-file",
        access_s,
        "--account",
        &service,
        "--allow",
        "end-user-session",
    ]);
    assert!(secret.starts_with("xrg_") && secret.len() >= 36, "{secret}");
    let creds = credentials(&d, &[(&service, &s.password("admin2"))]);
    let (proxy, gw) = proxied(
        s,
        &[
            "--access-file",
            access_s,
            "--credentials-file",
            creds.to_str().unwrap(),
        ],
        &[("RUST_LOG", "trace")],
    )
    .await;
    let bearer = format!("Bearer {secret}");
    let auth = [("authorization", bearer.as_str())];

    // An account of this test's own: ending its sessions disturbs no concurrent test.
    let (local, pw) = (
        format!("tok{}", common::random_hex(4)),
        common::random_hex(8),
    );
    s.register(&local, &pw);
    let victim = Victim::connect_with(s, &local, &pw, "phone").await;
    let end = command(
        END_USER_SESSION,
        json!([{"var": "accountjids", "value": [s.jid(&local)]}]),
    );
    let r = post(gw.addr, &auth, &end).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let line = format!("{}/phone", s.jid(&local));
    assert!(r.text().contains(&line), "{}", r.text());
    assert!(
        victim.closed_within(Duration::from_secs(10)).await,
        "the session really ended"
    );

    let before = (proxy.commands(), proxy.seen(|s| s.connections));
    let stats = command(
        USER_STATS,
        json!([{"var": "accountjid", "value": s.jid("test")}]),
    );
    let r = post(gw.addr, &auth, &stats).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.text().contains("user-stats"),
        "names what was refused: {}",
        r.text()
    );
    let delete = command(
        DELETE_USER,
        json!([{"var": "accountjids", "value": [s.jid("test")]}]),
    );
    let r = post(gw.addr, &auth, &delete).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        (proxy.commands(), proxy.seen(|s| s.connections)),
        before,
        "nothing refused reached the server"
    );

    let list = http(
        gw.addr,
        "GET",
        PATH,
        &[("authorization", &bearer), ("accept", "application/json")],
        b"",
    )
    .await;
    assert_eq!(list.status, 200, "{}", list.text());
    let nodes: Vec<String> = list.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["node"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(nodes, [END_USER_SESSION], "only what the token may run");

    // Revoked: refused without a restart, well within the file watcher's period.
    common::token(&["revoke", "helpdesk", "--access-file", access_s]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let r = post(gw.addr, &auth, &end).await;
        if r.status != 200 {
            break r;
        }
        assert!(Instant::now() < deadline, "the revoked token still works");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(refused.status, 401, "{}", refused.text());
    let bearer_challenge = refused
        .headers
        .iter()
        .any(|(k, v)| k == "www-authenticate" && v.contains("error=\"invalid_token\""));
    assert!(bearer_challenge, "{:?}", refused.headers);

    // Nothing secret at trace: the token, the service password, in any form.
    gw.log_when(|l| l.matches(" audit: ").count() >= 5).await;
    let log = gw.log_settled().await;
    // Not vacuous: the log holds the gateway's lines for the requests above (RUST_LOG=trace;
    // tests/secrets.rs shows that dependencies' trace lines come through).
    assert!(log.matches(" audit: ").count() >= 5, "{log}");
    let password = s.password("admin2");
    let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
    for secret in [
        secret.clone(),
        password.clone(),
        b64(&format!("admin2\0{password}")),
        b64(&format!("\0admin2\0{password}")),
        b64(&format!("{service}:{password}")),
    ] {
        assert!(!log.contains(&secret), "a secret reached the log");
    }
}

/// An access file written by hand: tokens whose secrets are `secret-NAME`.
fn hand_written(dir: &Path, tokens: &str) -> PathBuf {
    let path = dir.join("access.toml");
    std::fs::write(&path, tokens).unwrap();
    path
}

fn sha256_hex(s: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, s.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn token_entry(name: &str, extra: &str) -> String {
    format!(
        "[[token]]\nname = \"{name}\"\nsecret_sha256 = \"{}\"\n{extra}\n",
        sha256_hex(&format!("secret-{name}"))
    )
}

async fn expired_and_out_of_network_tokens_are_refused(kind: ServerKind) {
    let s = common::started(kind).await;
    let d = dir(kind, "expired");
    let admin2 = s.jid("admin2");
    let file = hand_written(
        &d,
        &[
            token_entry(
                "old",
                &format!(
                    "account = \"{admin2}\"\nallow = [\"*\"]\nexpires = \"2001-01-01T00:00:00Z\""
                ),
            ),
            token_entry(
                "far",
                &format!("account = \"{admin2}\"\nallow = [\"*\"]\nfrom = [\"10.0.0.0/8\"]"),
            ),
        ]
        .concat(),
    );
    let creds = credentials(&d, &[(&admin2, &s.password("admin2"))]);
    let (proxy, gw) = proxied(
        s,
        &[
            "--access-file",
            file.to_str().unwrap(),
            "--credentials-file",
            creds.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    let stats = command(
        USER_STATS,
        json!([{"var": "accountjid", "value": s.jid("test")}]),
    );
    let r = post(gw.addr, &[("authorization", "Bearer secret-old")], &stats).await;
    assert_eq!(r.status, 401, "expired: {}", r.text());
    let r = post(gw.addr, &[("authorization", "Bearer secret-far")], &stats).await;
    assert_eq!(r.status, 403, "outside its networks: {}", r.text());
    let r = post(
        gw.addr,
        &[("authorization", "Bearer no-such-secret")],
        &stats,
    )
    .await;
    assert_eq!(r.status, 401, "unknown: {}", r.text());
    assert_eq!(proxy.seen(|s| s.connections), 0, "no login was attempted");
}

async fn a_required_api_key_gates_basic_requests(kind: ServerKind) {
    let s = common::started(kind).await;
    let d = dir(kind, "apikey");
    let file = hand_written(&d, &token_entry("script", "allow = [\"*\"]"));
    let gw = TestGateway::start_with_env(
        s,
        &["--access-file", file.to_str().unwrap(), "--require-api-key"],
        &[("RUST_LOG", "trace")],
    );
    let admin = basic(&s.jid("admin"), &s.password("admin"));
    let stats = command(
        USER_STATS,
        json!([{"var": "accountjid", "value": s.jid("test")}]),
    );
    let r = post(gw.addr, &[("authorization", &admin)], &stats).await;
    assert_eq!(r.status, 401, "no api-key: {}", r.text());
    let r = post(
        gw.addr,
        &[("authorization", &admin), ("x-api-key", "secret-script")],
        &stats,
    )
    .await;
    assert_eq!(r.status, 200, "header: {}", r.text());
    let headers = [
        ("authorization", admin.as_str()),
        ("content-type", "application/json"),
    ];
    let r = http(
        gw.addr,
        "POST",
        &format!("{PATH}?api-key=secret-script"),
        &headers,
        &stats,
    )
    .await;
    assert_eq!(r.status, 200, "query: {}", r.text());
    let r = post(
        gw.addr,
        &[("authorization", &admin), ("x-api-key", "wrong")],
        &stats,
    )
    .await;
    assert_eq!(r.status, 401, "a wrong key: {}", r.text());
    assert!(
        !gw.log().contains("secret-script"),
        "the api-key is never logged"
    );
}

async fn an_account_rule_denies_before_any_login(kind: ServerKind) {
    let s = common::started(kind).await;
    let d = dir(kind, "account");
    let admin = s.jid("admin");
    let file = hand_written(
        &d,
        &format!("[[account]]\njid = \"{admin}\"\nallow = [\"*\"]\ndeny = [\"delete-user\", \"shutdown\"]\n"),
    );
    let (proxy, gw) = proxied(s, &["--access-file", file.to_str().unwrap()], &[]).await;
    let auth = basic(&admin, &s.password("admin"));
    let delete = command(
        DELETE_USER,
        json!([{"var": "accountjids", "value": [s.jid("test")]}]),
    );
    let r = post(gw.addr, &[("authorization", &auth)], &delete).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        proxy.seen(|s| (s.connections, s.commands)),
        (0, 0),
        "nothing reached the server"
    );
    let stats = command(
        USER_STATS,
        json!([{"var": "accountjid", "value": s.jid("test")}]),
    );
    let r = post(gw.addr, &[("authorization", &auth)], &stats).await;
    assert_eq!(
        r.status,
        200,
        "what the rule allows still runs: {}",
        r.text()
    );

    // A final dot changes nothing: the same target, the same rules.
    let json = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    for path in [
        "/rest/adhoc/sess-man@domain.com.",
        "/rest/adhoc/domain.com.",
    ] {
        let r = http(gw.addr, "POST", path, &json, &delete).await;
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        let r = http(gw.addr, "POST", path, &json, &stats).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }

    // Truncated in place (`: > access.toml`, an editor's first step): refused once it has
    // settled, and the denies stay.
    let sent = proxy.seen(|s| s.commands);
    std::fs::File::create(&file).unwrap();
    let refused = "the file is empty";
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gw.log().contains(refused) {
        assert!(Instant::now() < deadline, "no refusal:\n{}", gw.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = post(gw.addr, &[("authorization", &auth)], &delete).await;
    assert_eq!(r.status, 403, "the denies stay: {}", r.text());
    assert_eq!(
        proxy.seen(|s| s.commands),
        sent,
        "nothing reached the server"
    );
}

/// `token add` as processes, 20 at once, and a revoke racing adds: the lock beside the file
/// makes them take turns (issue 19: one token of 20 was left, a revoke was lost).
#[test]
fn concurrent_token_commands_lose_nothing() {
    let d = common::scratch_dir(&format!("tokens-lock-{}", common::random_hex(4)));
    let access = d.join("access.toml");
    let access_s = access.to_str().unwrap();
    let run = |args: Vec<String>| {
        std::process::Command::new(common::gateway_binary())
            .arg("token")
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("XRG_ACCESS_FILE")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let add = |name: String| {
        run(vec![
            "add".into(),
            name,
            "--access-file".into(),
            access_s.into(),
        ])
    };
    let children: Vec<_> = (0..20).map(|i| add(format!("t{i}"))).collect();
    let secrets: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        })
        .collect();
    assert_eq!(secrets.len(), 20);
    let listed = common::token(&["list", "--access-file", access_s]);
    assert_eq!(listed.lines().count(), 20, "{listed}");

    let revoke = run(vec![
        "revoke".into(),
        "t0".into(),
        "--access-file".into(),
        access_s.into(),
    ]);
    let racing: Vec<_> = (0..3).map(|i| add(format!("r{i}"))).collect();
    for c in std::iter::once(revoke).chain(racing) {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let listed = common::token(&["list", "--access-file", access_s]);
    let names: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.split('\t').next())
        .collect();
    assert_eq!(names.len(), 22, "{listed}");
    assert!(!names.contains(&"t0"), "the revoke stuck: {listed}");
    let _ = std::fs::remove_dir_all(&d);
}

/// A token that deletes its own service account gets the command's real outcome, not the 502
/// of the stream the deletion ended; its tokens are then refused without a login until the
/// back-off (`--throttle-window`, 2 s here) is over, and work again once the account is back.
async fn a_service_account_that_deletes_itself_gets_its_outcome_and_recovers(kind: ServerKind) {
    let s = common::started(kind).await;
    let d = dir(kind, "selfdelete");
    let (svc, pw) = (s.jid("svcdel"), common::random_hex(8));
    s.register("svcdel", &pw);
    let access = d.join("access.toml");
    let access_s = access.to_str().unwrap();
    let secret = common::token(&[
        "add",
        "self",
        "--access-file",
        access_s,
        "--account",
        &svc,
        "--allow",
        "delete-user",
        "--allow",
        "user-stats",
    ]);
    let creds = credentials(&d, &[(&svc, &pw)]);
    let (proxy, gw) = proxied(
        s,
        &[
            "--access-file",
            access_s,
            "--credentials-file",
            creds.to_str().unwrap(),
            "--throttle-window",
            "2",
        ],
        &[],
    )
    .await;
    let bearer = format!("Bearer {secret}");
    let auth = [("authorization", bearer.as_str())];
    let stats = command(
        USER_STATS,
        json!([{"var": "accountjid", "value": s.jid("test")}]),
    );
    let r = post(gw.addr, &auth, &stats).await;
    assert_eq!(r.status, 200, "{}", r.text());

    let delete = command(DELETE_USER, json!([{"var": "accountjids", "value": [svc]}]));
    let r = post(gw.addr, &auth, &delete).await;
    assert_eq!(
        r.status,
        200,
        "the deletion happened: {}\n{}",
        r.text(),
        gw.log()
    );

    // The account is gone: one login refused (401, the server's word), then none (403, the
    // gateway's) until the back-off is over.
    let r = post(gw.addr, &auth, &stats).await;
    assert_eq!(r.status, 401, "{}", r.text());
    let logins = proxy.seen(|s| s.connections);
    let r = post(gw.addr, &auth, &stats).await;
    assert_eq!(r.status, 403, "within the back-off: {}", r.text());
    s.register("svcdel", &pw);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = post(gw.addr, &auth, &stats).await;
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 403, "{}", r.text());
        assert!(
            Instant::now() < deadline,
            "the tokens never recovered:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        proxy.seen(|s| s.connections),
        logins + 1,
        "one login after the back-off, none while it ran"
    );
}

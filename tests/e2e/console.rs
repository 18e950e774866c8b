//! The web console (`/console/`) in a real browser: tests/console/console_test.py drives
//! Debian's chromium with Playwright against a gateway in front of each server, and asks this
//! side, one `ASK` line at a time, for what only it can see or do: whether a client was really
//! disconnected, how many commands reached the server (through the reading proxy), and a
//! scripted answer slipped to the gateway for the next command (a multi-stage command with
//! `prev`, every XEP-0004 field type, labels holding markup). Missing chromium or the Python
//! environment fails the test with what to install; it never skips.
//! Also: the headers of `/console/` and `--console off` (plain HTTP, no browser).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::common::proxy::proxied;
use crate::common::victim::Victim;
use crate::common::{self, http, ServerKind, TestGateway};

on_both_servers!(
    the_console_works_in_a_browser,
    the_console_is_served_with_its_headers_or_not_at_all
);

const CHROMIUM: &str = "/usr/bin/chromium";
const SCRIPTED_NODE: &str = "urn:example:console-test";
const DENIED_NODE: &str = "http://jabber.org/protocol/admin#user-stats";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What the browser test needs, or a failure naming how to get it.
fn prerequisites() -> (PathBuf, PathBuf) {
    let python = repo().join("target/console-venv/bin/python");
    let axe = repo().join("target/console-node/node_modules/axe-core/axe.min.js");
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: `scripts/apt-install chromium` (the console's browser test)"
    );
    assert!(
        python.exists() && axe.exists(),
        "{} or {} is missing: run scripts/console-deps (scripts/test does)",
        python.display(),
        axe.display()
    );
    (python, axe)
}

/// The scripted answers, as the server would send them (`from` the command's target).
fn scripted(what: &str, id: &str, gateway: &str, domain: &str) -> String {
    let head = format!(
        "<iq type='result' id='{id}' from='{domain}' to='{gateway}'>\
         <command xmlns='http://jabber.org/protocol/commands' node='{SCRIPTED_NODE}' \
         sessionid='scripted-1'"
    );
    let body = match what {
        "stage1" => "status='executing'><actions execute='next'><next/></actions>\
             <x xmlns='jabber:x:data' type='form'><title>Stage &lt;b&gt;one&lt;/b&gt;</title>\
             <field var='name' type='text-single' label='&lt;img src=x onerror=window.__xss=1&gt;'/>\
             </x></command></iq>"
            .to_string(),
        "stage2" => "status='executing'><actions execute='complete'><prev/><complete/></actions>\
             <x xmlns='jabber:x:data' type='form'><title>Stage two</title>\
             <instructions>Every field type</instructions>\
             <field type='fixed'><value>Read this first</value></field>\
             <field var='kept' type='hidden'><value>secret-state</value></field>\
             <field var='confirm' type='boolean' label='Confirm'><value>0</value></field>\
             <field var='colour' type='list-single' label='Colour'>\
             <option label='Red'><value>red</value></option>\
             <option label='Blue'><value>blue</value></option></field>\
             <field var='sizes' type='list-multi' label='Sizes'>\
             <option label='Small'><value>s</value></option>\
             <option label='Medium'><value>m</value></option>\
             <option label='Large'><value>l</value></option></field>\
             <field var='lines' type='text-multi' label='Lines'/>\
             <field var='members' type='jid-multi' label='Members'/>\
             <field var='who' type='jid-single' label='Who'/>\
             <field var='secret' type='text-private' label='Secret'/>\
             <field var='reason' type='text-single' label='Reason'><desc>Why</desc><required/></field>\
             </x></command></iq>"
            .to_string(),
        "result" => format!(
            "status='completed'><note type='warn'>&lt;script&gt;alert(1)&lt;/script&gt;</note>\
             <x xmlns='jabber:x:data' type='result'><title>Done</title>\
             <reported><field var='name' label='Name' type='text-single'/>\
             <field var='groups' label='Groups' type='text-multi'/></reported>\
             <item><field var='name'><value>&lt;i&gt;a&lt;/i&gt;@{domain}</value></field>\
             <field var='groups'><value>g1</value><value>g2</value></field></item>\
             <item><field var='name'><value>b@{domain}</value></field>\
             <field var='groups'><value>g3</value></field></item>\
             </x></command></iq>"
        ),
        _ => "status='completed'/></iq>".to_string(),
    };
    format!("{head} {body}")
}

/// One browser at a time: two chromiums beside the rest of the suite slow every other test.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn the_console_works_in_a_browser(kind: ServerKind) {
    let (python, axe) = prerequisites();
    let _browser = ONE_BROWSER.lock().await;
    let s = common::started(kind).await;
    let dir = common::scratch_dir(&format!("console-{kind}-{}", common::random_hex(4)));

    // The token acts as admin2 and may run anything but user-stats.
    let access = dir.join("access.toml");
    let access_s = access.to_str().unwrap();
    let service = s.jid("admin2");
    let token = common::token(&[
        "add",
        "console",
        "--access-file",
        access_s,
        "--account",
        &service,
        "--allow",
        "*",
        "--deny",
        DENIED_NODE,
    ]);
    // The gateway requires an api-key beside Basic credentials: the console's API key field.
    let api_key = common::token(&["add", "key", "--access-file", access_s, "--allow", "*"]);
    let creds = dir.join("credentials.toml");
    std::fs::write(
        &creds,
        format!("\"{service}\" = \"{}\"\n", s.password("admin2")),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let (proxy, gw) = proxied(
        s,
        &[
            "--access-file",
            access_s,
            "--credentials-file",
            creds.to_str().unwrap(),
            "--require-api-key",
        ],
    )
    .await;

    // An account of this test's own, online, to look at and disconnect.
    let local = format!("console{}", common::random_hex(4));
    let password = common::password_for(&local);
    s.register(&local, &password);
    let resource = format!("web{}", common::random_hex(3));
    let victim = Victim::connect_with(s, &local, &password, &resource).await;

    let shots = std::env::var("XRG_CONSOLE_SHOTS").ok();
    // Below the gateways and servers in the CPU's queue (chromium inherits it): the rest of
    // the suite runs beside.
    let mut child = tokio::process::Command::new("nice")
        .args(["-n", "10"])
        .arg(&python)
        .arg(repo().join("tests/console/console_test.py"))
        .env("XRG_URL", format!("http://{}", gw.addr))
        .env("XRG_DOMAIN", &s.domain)
        .env("XRG_SERVER", kind.to_string())
        .env("XRG_ADMIN", s.jid("admin"))
        .env("XRG_ADMIN_PASSWORD", s.password("admin"))
        .env("XRG_VICTIM", s.jid(&local))
        .env("XRG_VICTIM_RESOURCE", &resource)
        .env("XRG_TOKEN", &token)
        .env("XRG_API_KEY", &api_key)
        .env("XRG_DENIED_NODE", DENIED_NODE)
        .env(
            "XRG_STATS_ACTIONS",
            match kind {
                ServerKind::Prosody => "next,complete",
                ServerKind::Ejabberd => "complete",
            },
        )
        .env("XRG_AXE", &axe)
        .env("XRG_SHOTS", shots.unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", python.display()));
    let mut to_script = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = child.stderr.take().unwrap();
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });

    let mut mark = 0;
    let mut steps = Vec::new();
    let talk = async {
        while let Some(line) = lines.next_line().await.expect("reading the script") {
            let Some(question) = line.strip_prefix("ASK ") else {
                steps.push(line);
                continue;
            };
            let answer = match question {
                "victim-gone" => {
                    let gone = victim.closed_within(Duration::from_secs(10)).await;
                    if gone { "yes" } else { "no" }.to_string()
                }
                "mark" => {
                    mark = proxy.commands();
                    "ok".into()
                }
                "commands-since-mark" => (proxy.commands() - mark).to_string(),
                "await-commands-since-mark 1" => {
                    let what = "a command after the mark";
                    let limit = Duration::from_secs(10);
                    let from = mark;
                    proxy
                        .await_seen(what, limit, |seen| seen.commands > from)
                        .await;
                    "yes".into()
                }
                q if q.starts_with("forge ") => {
                    let what = q["forge ".len()..].to_string();
                    let domain = s.domain.clone();
                    proxy.forge_next(Box::new(move |id, gateway| {
                        scripted(&what, id, gateway, &domain)
                    }));
                    "ok".into()
                }
                other => panic!("the script asked {other:?}"),
            };
            to_script
                .write_all(format!("{answer}\n").as_bytes())
                .await
                .expect("answering the script");
        }
    };
    tokio::time::timeout(Duration::from_secs(150), talk)
        .await
        .unwrap_or_else(|_| panic!("the browser test took over 150 s; steps: {steps:#?}"));
    let status = child.wait().await.expect("the script's status");
    let errors = errors.await.unwrap_or_default();
    assert!(
        status.success(),
        "the console's browser test failed on {kind}:\n{errors}\nsteps: {steps:#?}\ngateway log:\n{}",
        gw.log()
    );
}

/// Plain HTTP: the console's headers, and `--console off`.
async fn the_console_is_served_with_its_headers_or_not_at_all(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = TestGateway::start(s, &[]);
    let r = http(gw.addr, "GET", "/console/", &[], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(
        r.header("content-security-policy"),
        Some(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'; \
             require-trusted-types-for 'script'"
        )
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(r.header("set-cookie").is_none());
    let js = http(gw.addr, "GET", "/console/app.js", &[], b"").await;
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    let api = http(gw.addr, "GET", "/rest/adhoc/sess-man@domain.com", &[], b"").await;
    assert_eq!(api.status, 401);
    assert_eq!(
        api.header("cache-control"),
        Some("no-store"),
        "API answers are not cached"
    );

    let off = TestGateway::start(s, &["--console", "off"]);
    for path in ["/console/", "/console/app.js", "/console"] {
        let r = http(off.addr, "GET", path, &[], b"").await;
        assert_eq!(r.status, 404, "{path} with --console off");
    }
    let health = http(off.addr, "GET", "/healthz", &[], b"").await;
    assert_eq!(health.status, 200, "the rest is unchanged");
}

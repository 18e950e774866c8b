//! Several gateways behind HAProxy (`deploy/haproxy/haproxy.cfg`, run natively by
//! `common::haproxy`): a command through it, the client's address through `X-Forwarded-For`,
//! one account's requests on one gateway, HAProxy's own answers in the error format; under a
//! steady load, a gateway killed with SIGKILL fails only the requests it had in flight, and a
//! rolling restart (SIGTERM, the drain, start again, the other) fails none; with round-robin
//! and no affinity, kept commands go on stage by stage through whichever gateway HAProxy picks
//! (forwarded to the replica that started them). Commands are counted where the server
//! receives them (`common::proxy`): none reaches it twice.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::haproxy::{self, Balance, Replicas};
use crate::common::proxy::XmppProxy;
use crate::common::rest::*;
use crate::common::{self, free_port, http, http_from, try_http, HttpResponse, ServerKind};
use crate::forwarding::{forwards, replica_args, replica_key_file};

on_both_servers!(
    a_command_through_haproxy_names_the_client_and_keeps_to_one_gateway,
    a_killed_gateway_fails_only_the_requests_it_had_in_flight,
    a_rolling_restart_fails_no_request,
    a_kept_command_goes_on_through_haproxy_round_robin,
);

/// The statuses HAProxy 2.6 may answer itself (its `errorfile` codes).
const HAPROXY_STATUSES: [u16; 16] = [
    400, 401, 403, 404, 405, 407, 408, 410, 413, 425, 429, 500, 501, 502, 503, 504,
];

/// An errorfile's body: the gateway's error document in XML (docs/api.md §9).
fn error_body(status: u16, condition: &str, text: &str) -> String {
    format!("<error><status>{status}</status><condition>{condition}</condition><text>{text}</text></error>\n")
}

/// The shipped error page for `status`, split into head and body.
fn errorfile(status: u16) -> (String, String) {
    let path = Path::new(haproxy::SHIPPED_DIR).join(format!("errors/{status}.http"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    (head.to_string(), body.to_string())
}

#[test]
fn every_error_haproxy_answers_is_a_whole_response_in_the_error_format() {
    let shipped = std::fs::read_to_string(Path::new(haproxy::SHIPPED_DIR).join("haproxy.cfg"))
        .expect("the shipped config");
    let named: Vec<u16> = shipped
        .lines()
        .filter_map(|l| l.trim().strip_prefix("errorfile "))
        .map(|rest| {
            let (code, file) = rest.split_once(' ').expect("errorfile CODE FILE");
            assert_eq!(file, format!("errors/{code}.http"));
            code.parse().expect("a status")
        })
        .collect();
    assert_eq!(named, HAPROXY_STATUSES);
    let files = std::fs::read_dir(Path::new(haproxy::SHIPPED_DIR).join("errors")).unwrap();
    assert_eq!(
        files.count(),
        HAPROXY_STATUSES.len(),
        "no error page unnamed"
    );
    for status in HAPROXY_STATUSES {
        let (head, body) = errorfile(status);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        assert!(
            status_line.starts_with(&format!("HTTP/1.1 {status} ")),
            "{status_line}"
        );
        let headers: HashMap<&str, &str> = lines
            .map(|l| {
                l.split_once(": ")
                    .unwrap_or_else(|| panic!("{status}: {l:?}"))
            })
            .collect();
        assert_eq!(headers["content-type"], "application/xml", "{status}");
        assert_eq!(
            headers["content-length"],
            body.len().to_string(),
            "{status}"
        );
        let inner = body
            .strip_prefix(&format!("<error><status>{status}</status><condition>"))
            .unwrap_or_else(|| panic!("{status}: {body}"));
        let (condition, rest) = inner.split_once("</condition><text>").expect("a text");
        let text = rest.strip_suffix("</text></error>\n").expect("the end");
        assert!(
            !condition.is_empty() && !text.is_empty(),
            "{status}: {body}"
        );
        assert!(
            !text.contains(['<', '&']),
            "{status}: text to escape: {text}"
        );
        assert_eq!(body, error_body(status, condition, text));
    }
}

#[test]
fn the_shipped_config_as_the_suite_runs_it_is_valid() {
    let shipped =
        std::fs::read_to_string(Path::new(haproxy::SHIPPED_DIR).join("haproxy.cfg")).unwrap();
    let dir = common::scratch_dir(&format!("haproxy-check-{}", common::random_hex(4)));
    std::fs::create_dir_all(dir.join("errors")).unwrap();
    for status in HAPROXY_STATUSES {
        let name = format!("errors/{status}.http");
        std::fs::copy(Path::new(haproxy::SHIPPED_DIR).join(&name), dir.join(&name)).unwrap();
    }
    let servers: Vec<SocketAddr> = vec!["127.0.0.1:1".parse().unwrap(); 3];
    for balance in [Balance::Shipped, Balance::RoundRobin] {
        let listen = "127.0.0.1:2".parse().unwrap();
        let rendered = haproxy::render(&shipped, listen, &servers, balance, &dir.join("s"));
        // Only the lines a deployment changes differ from the shipped file.
        let kept: Vec<&str> = shipped
            .lines()
            .filter(|l| {
                let first = l.split_whitespace().next().unwrap_or("");
                ![
                    "bind", "server", "stats", "chroot", "user", "group", "balance",
                ]
                .contains(&first)
            })
            .collect();
        let rendered_kept: Vec<&str> = rendered
            .lines()
            .filter(|l| {
                let first = l.split_whitespace().next().unwrap_or("");
                !["bind", "server", "stats", "balance"].contains(&first)
            })
            .collect();
        assert_eq!(rendered_kept, kept);
        assert_eq!(rendered.matches("\n    server gw").count(), 3, "{rendered}");
        let config = dir.join("haproxy.cfg");
        std::fs::write(&config, &rendered).unwrap();
        let out = std::process::Command::new(haproxy::binary())
            .arg("-c")
            .arg("-f")
            .arg(&config)
            .output()
            .expect("haproxy -c");
        assert!(
            out.status.success(),
            "haproxy -c ({balance:?}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

async fn a_command_through_haproxy_names_the_client_and_keeps_to_one_gateway(kind: ServerKind) {
    let s = common::started(kind).await;
    let mut r = Replicas::start(s, 2, Balance::Shipped, |_, _| vec![]).await;
    // From 127.0.0.2, with an X-Forwarded-For of the client's own making: the gateway writes
    // down the address HAProxy saw, and never the forged one.
    let rid = format!("hx-{}", common::random_hex(4));
    let body = user_stats(&s.jid("admin2")).to_string();
    let client: IpAddr = "127.0.0.2".parse().unwrap();
    for k in 0..4 {
        let id = format!("{rid}-{k}");
        let headers = [
            ("authorization", admin()),
            ("content-type", "application/json".to_string()),
            ("x-forwarded-for", "203.0.113.7".to_string()),
            ("x-request-id", id),
        ];
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let addr = r.haproxy.addr;
        let resp = http_from(client, addr, "POST", PATH, &headers, body.as_bytes()).await;
        assert_eq!(resp.status, 200, "{kind}: {}", resp.text());
        assert_eq!(resp.json()["command"]["node"], USER_STATS, "{kind}");
    }
    // One account, one gateway: all four audit lines in one log, none in the other.
    let marker = format!("audit: request_id={rid}-");
    let deadline = Instant::now() + Duration::from_secs(10);
    let logs = loop {
        let logs: Vec<String> = (0..2).map(|i| r.gateway(i).log()).collect();
        let lines = logs
            .iter()
            .map(|l| l.matches(&marker).count())
            .sum::<usize>();
        if lines >= 4 || Instant::now() > deadline {
            break logs;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let counts: Vec<usize> = logs.iter().map(|l| l.matches(&marker).count()).collect();
    assert!(counts == [4, 0] || counts == [0, 4], "{kind}: {counts:?}");
    for line in logs
        .iter()
        .flat_map(|l| l.lines())
        .filter(|l| l.contains(&marker))
    {
        assert!(line.contains(" client=127.0.0.2 "), "{kind}: {line}");
    }

    // Every gateway gone: HAProxy's 503, in the error format, says nothing ran.
    r.kill(0);
    r.kill(1);
    r.haproxy.wait_status(0, "DOWN").await;
    r.haproxy.wait_status(1, "DOWN").await;
    let resp = try_http(
        r.haproxy.addr,
        "POST",
        PATH,
        &json_headers(),
        body.as_bytes(),
    )
    .await
    .expect("HAProxy answers");
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/xml"));
    assert_eq!(resp.header("retry-after"), Some("2"));
    assert_eq!(resp.text(), errorfile(503).1);
    assert!(resp
        .text()
        .contains("<condition>gateway-unavailable</condition>"));
}

fn json_headers() -> Vec<(&'static str, &'static str)> {
    static ADMIN: std::sync::LazyLock<String> = std::sync::LazyLock::new(admin);
    vec![
        ("authorization", ADMIN.as_str()),
        ("content-type", "application/json"),
    ]
}

/// One request of the load: its mark, the local part of the account it asked about (its own,
/// so that the server's copy of its command is found by it), when it was sent and answered,
/// and the answer.
struct Sent {
    mark: String,
    start: Instant,
    end: Instant,
    answer: Result<HttpResponse, String>,
}

/// A steady load through HAProxy: `clients` clients, each sending one request after the other
/// (a pause of 20 ms between), user-stats of an account that does not exist and is named by
/// no other request (`what-HEX-N@domain.com`, N counting the load's requests): a cheap
/// command, known at the server by its account, the mark the reading proxy records.
struct Load {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
    sent: Arc<Mutex<Vec<Sent>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts the load through `addr`, once `proxy` records its marks.
    fn start(addr: SocketAddr, clients: usize, what: &str, proxy: &XmppProxy) -> Load {
        let prefix = format!("{what}-{}-", common::random_hex(3));
        proxy.record_marks(&prefix);
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicUsize::new(0));
        let numbered = Arc::new(AtomicUsize::new(0));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..clients)
            .map(|_| {
                let (stop, answered, sent) = (stop.clone(), answered.clone(), sent.clone());
                let (numbered, prefix) = (numbered.clone(), prefix.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let mark = format!("{prefix}{}", numbered.fetch_add(1, Ordering::Relaxed));
                        let body = user_stats(&format!("{mark}@{}", common::DOMAIN)).to_string();
                        let start = Instant::now();
                        let answer =
                            try_http(addr, "POST", PATH, &json_headers(), body.as_bytes()).await;
                        let end = Instant::now();
                        answered.fetch_add(1, Ordering::Relaxed);
                        sent.lock().unwrap().push(Sent {
                            mark,
                            start,
                            end,
                            answer,
                        });
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
            })
            .collect();
        Load {
            stop,
            answered,
            sent,
            tasks,
        }
    }

    /// Waits until `more` further requests have been answered (by anyone); 30 s at most.
    async fn wait_more(&self, more: usize) {
        let target = self.answered.load(Ordering::Relaxed) + more;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.answered.load(Ordering::Relaxed) < target {
            assert!(Instant::now() < deadline, "the load stalled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the clients once their requests are answered; every request sent.
    async fn finish(self) -> Vec<Sent> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("a load client");
        }
        std::mem::take(&mut *self.sent.lock().unwrap())
    }
}

/// The status a gateway answers the load's command with: Prosody reports the unknown account
/// in an error note (422), ejabberd answers empty statistics (200) (docs/api.md §9).
fn answered_status(kind: ServerKind) -> u16 {
    match kind {
        ServerKind::Prosody => 422,
        ServerKind::Ejabberd => 200,
    }
}

/// Gateways with `extra` flags through a reading proxy (which counts what they send), behind
/// HAProxy balancing round-robin (every gateway carries the load's one account).
async fn replicas_counted(kind: ServerKind, extra: &[&str]) -> (XmppProxy, Replicas) {
    let s = common::started(kind).await;
    let proxy = XmppProxy::start(s.c2s_addr()).await;
    let upstream = proxy.addr.to_string();
    let r = Replicas::start(s, 2, Balance::RoundRobin, |_, _| {
        let mut args = vec!["--upstream", &upstream, "--upstream-tls", "none"];
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect()
    })
    .await;
    (proxy, r)
}

async fn a_killed_gateway_fails_only_the_requests_it_had_in_flight(kind: ServerKind) {
    let (proxy, mut r) = replicas_counted(kind, &[]).await;
    let commands_before = proxy.commands();
    let load = Load::start(r.haproxy.addr, 4, "kill", &proxy);
    load.wait_more(40).await;
    let before = r.haproxy.servers();
    assert!(before.iter().all(|s| s.sessions > 0), "{before:?}");

    // The gateway HAProxy has a request on now, so that one is likely in flight at the kill.
    let deadline = Instant::now() + Duration::from_secs(10);
    let victim = loop {
        if let Some(i) = r.haproxy.servers().iter().position(|s| s.current > 0) {
            break i;
        }
        assert!(Instant::now() < deadline, "{kind}: no request in flight");
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let survivor = 1 - victim;
    // From the signal to the process reaped (its sockets closed): a request sent in between
    // may still have reached it.
    let killed_at = Instant::now();
    r.kill(victim);
    let gone_at = Instant::now();
    let seen_down = r.haproxy.wait_status(victim, "DOWN").await;
    // The next requests: all to the survivor.
    let survivor_before = r.haproxy.servers()[survivor].sessions;
    load.wait_more(40).await;
    // Of those 40, at most one per client was sent before `survivor_before` was read.
    let sent = load.finish().await;
    let after = r.haproxy.servers();
    assert!(
        after[survivor].sessions >= survivor_before + 36,
        "{after:?}"
    );

    let expected = answered_status(kind);
    let at_kill = |q: &Sent| q.start < gone_at && q.end > killed_at;
    let in_flight = sent.iter().filter(|q| at_kill(q)).count();
    let mut failed = Vec::new();
    for q in &sent {
        let a = q
            .answer
            .as_ref()
            .unwrap_or_else(|e| panic!("{kind}: {}: {e}", q.mark));
        if a.status == expected {
            continue;
        }
        // HAProxy's 502: the gateway died with the request; it may have run.
        assert_eq!(a.status, 502, "{kind}: {}: {}", q.mark, a.text());
        assert_eq!(a.text(), errorfile(502).1, "{kind}");
        assert!(
            at_kill(q),
            "{kind}: {} failed but was not in flight at the kill",
            q.mark
        );
        failed.push(q.mark.clone());
    }

    // At the server: each answered request's command once, a failed one's at most once.
    let named = proxy.mark_counts();
    for q in &sent {
        let n = named.get(&q.mark).copied().unwrap_or(0);
        if failed.contains(&q.mark) {
            assert!(n <= 1, "{kind}: {} reached the server {n} times", q.mark);
        } else {
            assert_eq!(n, 1, "{kind}: {} reached the server {n} times", q.mark);
        }
    }
    assert_eq!(
        named.len(),
        sent.len() - failed.len() + reached(&named, &failed)
    );
    let commands = proxy.commands() - commands_before;
    eprintln!(
        "[replicas] {kind} kill -9: {} requests sent, {} failed (HAProxy's 502), {in_flight} \
         in flight at the kill, {} of the failed reached the server; commands naming a request \
         seen at the server: {} (each once), commands in all: {commands}; HAProxy saw the \
         gateway DOWN after {seen_down:?}; {}",
        sent.len(),
        failed.len(),
        reached(&named, &failed),
        named.values().sum::<usize>(),
        retried(&after),
    );
}

/// What HAProxy says it retried, for the report.
fn retried(servers: &[haproxy::ServerStat]) -> String {
    let sum = |f: fn(&haproxy::ServerStat) -> u64| servers.iter().map(f).sum::<u64>();
    format!(
        "connection errors {}, retries {}, redispatches {}",
        sum(|s| s.connection_errors),
        sum(|s| s.retries),
        sum(|s| s.redispatches)
    )
}

/// How many of `failed` reached the server.
fn reached(named: &HashMap<String, usize>, failed: &[String]) -> usize {
    failed.iter().filter(|j| named.contains_key(*j)).count()
}

async fn a_rolling_restart_fails_no_request(kind: ServerKind) {
    // The default delay (the harness's gateways drain for 0 s unless told).
    let (proxy, mut r) = replicas_counted(kind, &["--drain-delay", "5"]).await;
    let commands_before = proxy.commands();
    let load = Load::start(r.haproxy.addr, 4, "roll", &proxy);
    load.wait_more(40).await;
    let mut took = Vec::new();
    for i in 0..2 {
        let (status, log) = r.stop(i, Duration::from_secs(40)).await;
        assert!(
            status.success(),
            "{kind}: gateway {i} exited {status}:\n{log}"
        );
        // It drained (--drain-delay, default 5 s): /readyz answered 503 until HAProxy had
        // taken it out (2 checks 1 s apart), and only then did it stop accepting. HAProxy
        // never found it refusing a connection, so it redispatched nothing: without the
        // drain, the requests sent between its last accept and HAProxy's second failed check
        // are each refused and sent to the other gateway.
        let servers = r.haproxy.servers();
        assert_eq!(servers[i].status, "DOWN", "{kind}: HAProxy still has it");
        let redone: u64 = servers
            .iter()
            .map(|s| s.connection_errors + s.retries + s.redispatches)
            .sum();
        assert_eq!(redone, 0, "{kind}: gateway {i}: {}", retried(&servers));
        let up = r.start_again(i).await;
        took.push(up);
        load.wait_more(20).await;
    }
    let sent = load.finish().await;
    let expected = answered_status(kind);
    for q in &sent {
        let a = q
            .answer
            .as_ref()
            .unwrap_or_else(|e| panic!("{kind}: {}: {e}", q.mark));
        assert_eq!(a.status, expected, "{kind}: {}: {}", q.mark, a.text());
    }
    let named = proxy.mark_counts();
    for q in &sent {
        assert_eq!(named.get(&q.mark), Some(&1), "{kind}: {}", q.mark);
    }
    assert_eq!(named.len(), sent.len());
    let commands = proxy.commands() - commands_before;
    let servers = r.haproxy.servers();
    eprintln!(
        "[replicas] {kind} rolling restart: {} requests sent, 0 failed; commands naming a \
         request seen at the server: {} (each once), commands in all: {commands}; HAProxy saw \
         each restarted gateway UP {took:?} after its start; {}",
        sent.len(),
        named.values().sum::<usize>(),
        retried(&servers),
    );
}

/// Issue 21, part 2 through the balancer itself: two replicas, peers of each other with one
/// key, behind HAProxy balancing round-robin (no affinity), both through one reading proxy.
/// One client's requests alternate between the gateways, so every other stage reaches the
/// replica that did not start the command and is forwarded to the one that did; each stage
/// succeeds, and each command reaches the server once.
async fn a_kept_command_goes_on_through_haproxy_round_robin(kind: ServerKind) {
    const NAMES: [&str; 2] = ["gw-a", "gw-b"];
    let s = common::started(kind).await;
    let key = replica_key_file(&format!("rr-forwarding-{kind}"));
    let proxy = XmppProxy::start(s.c2s_addr()).await;
    let admins: Vec<SocketAddr> = (0..2)
        .map(|_| SocketAddr::from(([127, 0, 0, 1], free_port())))
        .collect();
    let r = Replicas::start(s, 2, Balance::RoundRobin, |i, addrs| {
        let peer = (NAMES[1 - i], addrs[1 - i]);
        replica_args(&proxy, &key, NAMES[i], peer, admins[i])
    })
    .await;
    let commands_before = proxy.commands();
    let rid = format!("rr-{}", common::random_hex(4));
    let auth = admin();
    // The requests in the order sent, by their ids: which replica owned the command each
    // continued, to find where HAProxy sent it (below).
    let mut sent: Vec<(String, usize)> = Vec::new();
    let send = async |step: &str, path: &str, body: serde_json::Value| {
        let id = format!("{rid}-{step}");
        let headers = [
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
            ("x-request-id", id.as_str()),
        ];
        let resp = http(
            r.haproxy.addr,
            "POST",
            path,
            &headers,
            body.to_string().as_bytes(),
        )
        .await;
        (id, resp)
    };
    let owner = |sid: &str| {
        NAMES
            .iter()
            .position(|n| sid.starts_with(&format!("{n}.")))
            .unwrap_or_else(|| panic!("{kind}: {sid} names no replica"))
    };
    let at_server = || proxy.commands() - commands_before;
    let keep = format!("{PATH}?keep=1");
    let me = s.jid("admin");
    let ask = serde_json::json!({"command": {"node": USER_STATS}});
    let complete = |sid: &str| {
        serde_json::json!({"command": {"sessionid": sid, "action": "complete",
            "fields": [{"var": "accountjid", "value": me}]}})
    };

    // Two commands, started through whichever gateway HAProxy picked first and then the
    // other: each id names the gateway that started it.
    let sid_of = |resp: &HttpResponse| {
        assert_eq!(resp.status, 200, "{kind}: {}", resp.text());
        let sid = resp.json()["command"]["sessionid"]
            .as_str()
            .map(String::from);
        sid.unwrap_or_else(|| panic!("{kind}: no sessionid: {}", resp.text()))
    };
    let (id, resp) = send("start1", &keep, ask.clone()).await;
    let sid1 = sid_of(&resp);
    let first = owner(&sid1);
    sent.push((id, first));
    assert_eq!(at_server(), 1, "{kind}");
    let (id, resp) = send("start2", &keep, ask).await;
    let sid2 = sid_of(&resp);
    assert_eq!(
        owner(&sid2),
        1 - first,
        "{kind}: round-robin alternates: {sid1} then {sid2}"
    );
    sent.push((id, 1 - first));
    assert_eq!(at_server(), 2, "{kind}");
    // From here each request reaches the gateway that did not start its command.
    // The second's stage checks run where it is kept: a typo costs a retry, sends nothing.
    let typo = serde_json::json!({"command": {"sessionid": sid2,
        "fields": [{"var": "acountjid", "value": me}]}});
    let (id, resp) = send("typo2", PATH, typo).await;
    assert_eq!(resp.status, 400, "{kind}: {}", resp.text());
    assert_eq!(error_of(&resp)["field"], "acountjid", "{kind}");
    sent.push((id, 1 - first));
    assert_eq!(at_server(), 2, "{kind}");
    // The first completes.
    let (id, resp) = send("complete1", PATH, complete(&sid1)).await;
    assert_eq!(resp.status, 200, "{kind}: {}", resp.text());
    let doc = resp.json();
    assert!(doc["command"].get("sessionid").is_none(), "{kind}: {doc}");
    assert!(field(&doc, "onlineresources").is_object(), "{kind}: {doc}");
    sent.push((id, first));
    assert_eq!(at_server(), 3, "{kind}");
    // The second is cancelled.
    let cancel = serde_json::json!({"command": {"sessionid": sid2, "action": "cancel"}});
    let (id, resp) = send("cancel2", PATH, cancel.clone()).await;
    assert_eq!(resp.status, 200, "{kind}: {}", resp.text());
    assert_eq!(resp.json()["command"]["status"], "canceled", "{kind}");
    sent.push((id, 1 - first));
    assert_eq!(at_server(), 4, "{kind}");
    // Both gone: 404, and nothing more reaches the server.
    let (id, resp) = send("complete1-again", PATH, complete(&sid1)).await;
    assert_eq!(resp.status, 404, "{kind}: {}", resp.text());
    assert_eq!(error_of(&resp)["condition"], "item-not-found", "{kind}");
    sent.push((id, first));
    let (id, resp) = send("cancel2-again", PATH, cancel).await;
    assert_eq!(resp.status, 404, "{kind}: {}", resp.text());
    assert_eq!(error_of(&resp)["condition"], "item-not-found", "{kind}");
    sent.push((id, 1 - first));
    assert_eq!(
        at_server(),
        4,
        "{kind}: each command reached the server once"
    );

    // Request k went to gateway (first + k) % 2, and was forwarded to the command's owner
    // where that is the other one: its audit line there says so, and the owner's says whence.
    let mut forwarded = [0.0, 0.0];
    for (k, (id, owner)) in sent.iter().enumerate() {
        let entry = (first + k) % 2;
        let marker = format!("request_id={id} ");
        let lines = r.gateway(entry).log_lines(&marker, 1).await;
        let line = lines
            .lines()
            .find(|l| l.contains(&marker))
            .unwrap_or_default();
        let to = if entry == *owner { "-" } else { NAMES[*owner] };
        assert!(
            line.contains(&format!(" forwarded_to={to} forwarded_from=-")),
            "{kind}: request {k} at {}: {line}",
            NAMES[entry]
        );
        if entry != *owner {
            forwarded[entry] += 1.0;
            let lines = r.gateway(*owner).log_lines(&marker, 1).await;
            let line = lines
                .lines()
                .find(|l| l.contains(&marker))
                .unwrap_or_default();
            let from = format!(" forwarded_to=- forwarded_from={}", NAMES[entry]);
            assert!(line.contains(&from), "{kind}: request {k}: {line}");
        }
    }
    // Typo, cancel and cancel again went from the first gateway to the second; complete and
    // complete again the other way.
    assert_eq!(forwarded[first], 3.0, "{kind}");
    assert_eq!(forwarded[1 - first], 2.0, "{kind}");
    for i in 0..2 {
        let sent = forwards(admins[i], "sent", "answered").await;
        let received = forwards(admins[i], "received", "accepted").await;
        assert_eq!(
            (sent, received),
            (forwarded[i], forwarded[1 - i]),
            "{kind}: {}",
            NAMES[i]
        );
        assert_eq!(
            forwards(admins[i], "sent", "unreachable").await,
            0.0,
            "{kind}"
        );
    }
}

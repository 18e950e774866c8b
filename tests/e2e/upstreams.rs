//! The upstream list (`--upstream a,b`): a first entry that refuses connections is gone past
//! (readiness 200 naming it, the failover counted), a refused password is tried on one server
//! only, and a warm stream whose server vanished fails over to the next entry at once.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::dns::{Answer, DnsResponder, Srv};
use crate::common::prometheus::{parse_exposition, value, Sample};
use crate::common::proxy::XmppProxy;
use crate::common::rest::*;
use crate::common::{self, basic, http, HttpResponse, ServerKind, TestGateway};

on_both_servers!(
    a_closed_first_entry_is_gone_past_and_named_by_readiness,
    a_refused_password_reaches_one_server_and_a_dead_one_fails_over,
    a_domain_entry_tries_its_srv_targets_in_order,
);

async fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    http(addr, "GET", path, &[("accept", "application/json")], b"").await
}

async fn scrape(admin: SocketAddr) -> Vec<Sample> {
    let r = get(admin, "/metrics").await;
    assert_eq!(r.status, 200);
    parse_exposition(&r.text())
}

/// A loopback port nothing listens on (bound, then let go).
fn closed_port() -> u16 {
    common::free_port()
}

async fn a_closed_first_entry_is_gone_past_and_named_by_readiness(kind: ServerKind) {
    let s = common::started(kind).await;
    let dead = format!("127.0.0.1:{}", closed_port());
    let live = format!("127.0.0.1:{}", s.c2s_port);
    let admin = SocketAddr::from(([127, 0, 0, 1], common::free_port()));
    // STARTTLS to an address: the certificate is checked against the account's domain
    // (domain.com), whichever target the login lands on.
    let list = format!("{dead},{live}");
    let gw = TestGateway::start(
        s,
        &["--upstream", &list, "--admin-listen", &admin.to_string()],
    );
    let r = idle_seed_as_admin(gw.addr).await;
    assert_eq!(r.status, 200, "{}", r.text());

    let r = get(gw.addr, "/readyz").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0], "ready");
    assert!(lines[1].starts_with(&format!("down {dead}: ")), "{text}");

    let m = scrape(admin).await;
    let entry = |upstream: &str, outcome: &str| {
        value(
            &m,
            "xrg_upstream_entry_logins_total",
            &[("upstream", upstream), ("outcome", outcome)],
        )
    };
    assert_eq!(entry(&dead, "error"), 1.0);
    assert_eq!(entry(&live, "ok"), 1.0);
    assert_eq!(
        value(&m, "xrg_upstream_failovers_total", &[("upstream", &dead)]),
        1.0
    );
    assert_eq!(
        value(&m, "xrg_upstream_streams", &[("upstream", &live)]),
        1.0
    );
    assert_eq!(
        value(&m, "xrg_upstream_streams", &[("upstream", &dead)]),
        0.0
    );
}

async fn a_refused_password_reaches_one_server_and_a_dead_one_fails_over(kind: ServerKind) {
    let s = common::started(kind).await;
    // Two entries, both the same server through a reading proxy each: each proxy counts the
    // connections (one per login) that reach the server through it.
    let first = XmppProxy::start(s.c2s_addr()).await;
    let second = XmppProxy::start(s.c2s_addr()).await;
    let list = format!("{},{}", first.addr, second.addr);
    let admin = SocketAddr::from(([127, 0, 0, 1], common::free_port()));
    let gw = TestGateway::start(
        s,
        &[
            "--upstream",
            &list,
            "--upstream-tls",
            "none",
            "--admin-listen",
            &admin.to_string(),
        ],
    );

    let wrong = basic("admin@domain.com", "not-the-password");
    let r = post(gw.addr, PATH, &wrong, "application/xml", &IDLE_SEED_XML).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!((first.connections(), second.connections()), (1, 0));

    let r = idle_seed_as_admin(gw.addr).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!((first.connections(), second.connections()), (2, 0));

    // The first server vanishes: its warm stream is cut and its port refuses connections.
    let first_label = first.addr.to_string();
    drop(first);
    let cut = Instant::now();
    let streams = |m: &[Sample]| value(m, "xrg_upstream_streams", &[("upstream", &first_label)]);
    while streams(&scrape(admin).await) != 0.0 {
        assert!(
            cut.elapsed() < Duration::from_secs(5),
            "the gateway did not notice the cut stream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The dead entry is in back-off: the next login goes to the second at once.
    let r = idle_seed_as_admin(gw.addr).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(second.connections(), 1);
    let took = cut.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "the failover took {took:?}: it must not wait for a timeout"
    );
    let m = scrape(admin).await;
    assert_eq!(
        value(
            &m,
            "xrg_upstream_streams",
            &[("upstream", &second.addr.to_string())]
        ),
        1.0
    );
    // The stream that died with its server put the entry in back-off: the login did not
    // even try it.
    let first_tried = value(
        &m,
        "xrg_upstream_entry_logins_total",
        &[("upstream", &first_label), ("outcome", "error")],
    );
    assert_eq!(first_tried, 0.0);
    assert_eq!(
        value(
            &m,
            "xrg_upstream_failovers_total",
            &[("upstream", &first_label)]
        ),
        0.0
    );
}

/// `--upstream domain.com`, its SRV records served by a DNS responder of the test's own: the
/// first target (by priority) refuses connections, the second is the server under the name
/// `localhost`, which its certificate does not name: a login is verified against the
/// account's domain, never the target's name. One lookup serves the login and the probe.
async fn a_domain_entry_tries_its_srv_targets_in_order(kind: ServerKind) {
    let s = common::started(kind).await;
    let records = vec![
        Srv::new(10, 0, s.c2s_port, "localhost."),
        Srv::new(0, 0, closed_port(), "localhost."),
    ];
    let dns = DnsResponder::start([(
        "_xmpp-client._tcp.domain.com".to_string(),
        Answer::Srv { ttl: 600, records },
    )]);
    let admin = SocketAddr::from(([127, 0, 0, 1], common::free_port()));
    let gw = TestGateway::start(
        s,
        &[
            "--upstream",
            "domain.com",
            "--dns-server",
            &dns.addr().to_string(),
            "--admin-listen",
            &admin.to_string(),
        ],
    );
    let r = idle_seed_as_admin(gw.addr).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = get(gw.addr, "/readyz").await;
    assert_eq!((r.status, r.text().as_str()), (200, "ready\n"));
    assert_eq!(dns.queries(), 1, "one lookup, kept for its TTL");

    let m = scrape(admin).await;
    let entry = |outcome: &str| {
        value(
            &m,
            "xrg_upstream_entry_logins_total",
            &[("upstream", "domain.com"), ("outcome", outcome)],
        )
    };
    assert_eq!((entry("error"), entry("ok")), (1.0, 1.0));
    assert_eq!(
        value(
            &m,
            "xrg_upstream_failovers_total",
            &[("upstream", "domain.com")]
        ),
        1.0
    );
    assert_eq!(
        value(&m, "xrg_upstream_streams", &[("upstream", "domain.com")]),
        1.0
    );
}

/// However many targets stay silent, a login walks them only until `--request-timeout`: 504,
/// not a wait of a connect timeout per target; `/readyz` answers 503 within about one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_targets_are_walked_only_within_the_request_timeout() {
    let s = common::started(ServerKind::Prosody).await;
    let mut silent = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..5 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(l.local_addr().unwrap().to_string());
        // Accepts and holds every connection, never writing a byte.
        silent.push(tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((c, _)) = l.accept().await {
                held.push(c);
            }
        }));
    }
    let list = addrs.join(",");
    let gw = TestGateway::start(
        s,
        &[
            "--upstream",
            &list,
            "--upstream-tls",
            "none",
            "--connect-timeout",
            "1",
            "--request-timeout",
            "2",
        ],
    );
    let started = Instant::now();
    let r = idle_seed_as_admin(gw.addr).await;
    let took = started.elapsed();
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(took < Duration::from_secs(4), "{took:?}");
    // Readiness probes the entries at once, each within one connect timeout.
    let started = Instant::now();
    let r = get(gw.addr, "/readyz").await;
    let took = started.elapsed();
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(took < Duration::from_secs(3), "{took:?}");
    for task in silent {
        task.abort();
    }
}

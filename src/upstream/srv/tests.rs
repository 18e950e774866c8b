//! The order, the caps and the TTL bounds on records built here (pure, seeded RNG, paused
//! clock), and the whole lookup against the loopback responder of `tests/common/dns.rs`.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use hickory_resolver::proto::rr::rdata::{CNAME, SRV};
use hickory_resolver::proto::rr::{Name, RData, Record};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;

#[path = "../../../tests/common/dns.rs"]
mod dns;

use dns::{Answer, DnsResponder, Srv};

const SERVICE: &str = "_xmpp-client._tcp.example.test.";

fn domain() -> Domain {
    Domain::read("example.test").expect("a domain")
}

fn srv(priority: u16, weight: u16, port: u16, target: &str, ttl: u32) -> Record {
    Record::from_rdata(
        Name::from_ascii(SERVICE).expect("the service name"),
        ttl,
        RData::SRV(SRV::new(
            priority,
            weight,
            port,
            dns::wire_name(target).expect("a target name"),
        )),
    )
}

/// A target whose labels hold what no zone file writes plainly (a dot, a space, UTF-8).
fn srv_labels(labels: &[&[u8]]) -> Record {
    let mut name = Name::from_labels(labels.iter().copied()).expect("labels");
    name.set_fqdn(true);
    Record::from_rdata(
        Name::from_ascii(SERVICE).expect("the service name"),
        300,
        RData::SRV(SRV::new(10, 1, 5222, name)),
    )
}

fn target(host: &str, port: u16) -> Target {
    Target {
        host: host.into(),
        port,
    }
}

fn resolve(records: &[Record], seed: u64) -> Result<Resolved, SrvError> {
    from_records(
        &domain(),
        records,
        Instant::now(),
        &mut StdRng::seed_from_u64(seed),
    )
}

fn hosts(resolved: &Resolved) -> Vec<&str> {
    resolved.targets.iter().map(|t| t.host.as_str()).collect()
}

#[test]
fn lowest_priority_first_whatever_the_weights_and_the_draw() {
    let records = [
        srv(20, 1, 5222, "b.example.test.", 300),
        srv(10, 0, 5222, "a.example.test.", 300),
        srv(30, 65535, 5222, "c.example.test.", 300),
        srv(20, 65535, 5222, "b2.example.test.", 300),
    ];
    for seed in 0..200 {
        let got = resolve(&records, seed).expect("targets");
        assert!(got.from_srv);
        assert_eq!(
            got.targets[0],
            target("a.example.test", 5222),
            "seed {seed}"
        );
        let mut middle = hosts(&got)[1..3].to_vec();
        middle.sort();
        assert_eq!(middle, ["b.example.test", "b2.example.test"], "seed {seed}");
        assert_eq!(
            got.targets[3],
            target("c.example.test", 5222),
            "seed {seed}"
        );
    }
}

/// RFC 2782: within a priority, a record comes first with probability (its weight + its
/// share of the 0) / (sum + 1). Seeded, so the counts are the same on every run.
#[test]
fn within_a_priority_the_first_pick_follows_the_weights() {
    let records = [
        srv(10, 10, 5222, "ten.example.test.", 300),
        srv(10, 30, 5222, "thirty.example.test.", 300),
        srv(10, 60, 5222, "sixty.example.test.", 300),
    ];
    let mut rng = StdRng::seed_from_u64(2782);
    let draws = 20_000;
    let mut first: HashMap<String, usize> = HashMap::new();
    for _ in 0..draws {
        let got = from_records(&domain(), &records, Instant::now(), &mut rng).expect("targets");
        assert_eq!(got.targets.len(), 3);
        *first.entry(got.targets[0].host.clone()).or_default() += 1;
    }
    // pick in 0..=100: "ten" for 0..=10 (11 of 101), "thirty" 11..=40, "sixty" 41..=100.
    for (host, expected) in [
        ("ten.example.test", 11.0 / 101.0),
        ("thirty.example.test", 30.0 / 101.0),
        ("sixty.example.test", 60.0 / 101.0),
    ] {
        let share = first[host] as f64 / draws as f64;
        assert!(
            (share - expected).abs() < 0.015,
            "{host}: first in {share:.3} of the draws, expected {expected:.3}"
        );
    }
}

#[test]
fn a_zero_weight_record_comes_first_rarely_but_not_never() {
    let records = [
        srv(10, 0, 5222, "zero.example.test.", 300),
        srv(10, 100, 5222, "heavy.example.test.", 300),
    ];
    let mut rng = StdRng::seed_from_u64(7);
    let draws = 10_000;
    let zero_first = (0..draws)
        .filter(|_| {
            let got = from_records(&domain(), &records, Instant::now(), &mut rng).expect("t");
            got.targets[0].host == "zero.example.test"
        })
        .count();
    // 1 in 101 expected: about 99.
    assert!(
        (50..200).contains(&zero_first),
        "zero first {zero_first} times"
    );
}

#[tokio::test(start_paused = true)]
async fn the_ttl_is_clamped_to_its_bounds() {
    let now = Instant::now();
    let at = |ttl: u32| {
        let records = [srv(10, 1, 5222, "a.example.test.", ttl)];
        from_records(&domain(), &records, now, &mut StdRng::seed_from_u64(1))
            .expect("targets")
            .expires
    };
    assert_eq!(at(0), now + MIN_TTL);
    assert_eq!(at(4), now + MIN_TTL);
    assert_eq!(at(300), now + Duration::from_secs(300));
    assert_eq!(at(86_400), now + MAX_TTL);
    assert_eq!(at(u32::MAX), now + MAX_TTL);
    // Records of one answer with different TTLs: the shortest.
    let mixed = [
        srv(10, 1, 5222, "a.example.test.", 600),
        srv(20, 1, 5222, "b.example.test.", 60),
    ];
    let got = from_records(&domain(), &mixed, now, &mut StdRng::seed_from_u64(1)).expect("t");
    assert_eq!(got.expires, now + Duration::from_secs(60));
    // Time passes on the paused clock: the expiry is counted from the answer's time.
    tokio::time::advance(Duration::from_secs(3)).await;
    let later = Instant::now();
    let got = from_records(&domain(), &mixed, later, &mut StdRng::seed_from_u64(1)).expect("t");
    assert_eq!(got.expires, now + Duration::from_secs(63));
    assert_eq!(fallback(&domain(), later).expires, later + FALLBACK_TTL);
}

#[test]
fn a_lone_dot_target_says_no_service() {
    let got = resolve(&[srv(0, 0, 0, ".", 300)], 1);
    assert_eq!(
        got,
        Err(SrvError::NotServed {
            domain: "example.test".into()
        })
    );
    // Beside real targets, a "." is passed over.
    let got = resolve(
        &[
            srv(0, 0, 0, ".", 300),
            srv(10, 1, 5222, "a.example.test.", 300),
        ],
        1,
    )
    .expect("targets");
    assert_eq!(got.targets, [target("a.example.test", 5222)]);
}

#[test]
fn no_srv_records_falls_back_to_the_domain_on_5222() {
    let cname = Record::from_rdata(
        Name::from_ascii(SERVICE).expect("name"),
        300,
        RData::CNAME(CNAME(
            Name::from_ascii("elsewhere.example.test.").expect("name"),
        )),
    );
    for answers in [vec![], vec![cname]] {
        let got = resolve(&answers, 1).expect("the fallback");
        assert!(!got.from_srv);
        assert_eq!(got.targets, [target("example.test", XMPP_CLIENT_PORT)]);
    }
}

#[test]
fn targets_that_are_not_host_names_are_dropped() {
    let bad = [
        "_xmpp._tcp.example.test.", // underscore
        "-a.example.test.",         // a label starting with a hyphen
        "a-.example.test.",         // ending with one
        "127.0.0.1.",               // reads as an address
        "host.123.",                // an all-digit last label
    ];
    let odd: [&[&[u8]]; 3] = [
        &[b"a.b", b"example", b"test"],     // a dot inside a label
        &[b"sp ace", b"example", b"test"],  // a space
        &["caf\u{e9}".as_bytes(), b"test"], // UTF-8 in a label
    ];
    let mut records: Vec<Record> = bad.iter().map(|n| srv(10, 1, 5222, n, 300)).collect();
    records.extend(odd.iter().map(|labels| srv_labels(labels)));
    for record in &records {
        let got = resolve(std::slice::from_ref(record), 1).expect("the fallback");
        assert!(!got.from_srv, "{record} was taken: {got:?}");
        assert_eq!(got.targets, [target("example.test", 5222)], "{record}");
    }
    // Port 0 is no port.
    let got = resolve(&[srv(10, 1, 0, "a.example.test.", 300)], 1).expect("fallback");
    assert!(!got.from_srv);
    // The good ones beside them stay, in lower case, without the trailing dot.
    records.push(srv(10, 1, 5269, "XMPP-1.Example.TEST.", 300));
    let got = resolve(&records, 1).expect("targets");
    assert!(got.from_srv);
    assert_eq!(got.targets, [target("xmpp-1.example.test", 5269)]);
}

#[test]
fn a_hostile_answer_keeps_at_most_the_cap_from_its_lowest_priorities() {
    // Thousands of records (more than one DNS message can carry), most of them one target
    // said again: 16 distinct targets, all of priority 1 before any of priority 2.
    let mut records = Vec::new();
    for i in 0..3000u16 {
        records.push(srv(2, 1, 5222, &format!("p2-{i}.example.test."), 300));
        records.push(srv(1, 1, 5222, "same.example.test.", 300));
    }
    for i in 0..10u16 {
        records.push(srv(1, i, 5222, &format!("p1-{i}.example.test."), 300));
    }
    let got = resolve(&records, 3).expect("targets");
    assert_eq!(got.targets.len(), MAX_TARGETS);
    let distinct: std::collections::HashSet<_> = got.targets.iter().collect();
    assert_eq!(distinct.len(), MAX_TARGETS, "a target kept twice");
    let p1 = got.targets[..11]
        .iter()
        .all(|t| t.host == "same.example.test" || t.host.starts_with("p1-"));
    assert!(p1, "priority 1 first: {:?}", hosts(&got));
    assert!(got.targets[11..].iter().all(|t| t.host.starts_with("p2-")));
}

#[test]
fn domains_and_addresses_are_read_once() {
    assert_eq!(
        Domain::read("Example.TEST."),
        Ok(Domain::Name {
            ascii: "example.test".into()
        })
    );
    assert_eq!(
        Domain::read("bücher.example"),
        Ok(Domain::Name {
            ascii: "xn--bcher-kva.example".into()
        })
    );
    assert_eq!(
        Domain::read("[::1]"),
        Ok(Domain::Address("::1".parse().expect("ip")))
    );
    for bad in ["", ".", "a b.example", "_x.example", "a..b", "1.2.3.256"] {
        assert!(
            matches!(Domain::read(bad), Err(SrvError::InvalidDomain { .. })),
            "{bad:?} read as a domain"
        );
    }
}

// The whole lookup against the loopback responder.

#[test]
fn a_lookup_can_be_awaited_on_any_task() {
    fn send<T: Send>(_: &T) {}
    let resolver = Resolver::new(Some("127.0.0.1:53".parse().expect("addr"))).expect("resolver");
    send(&resolver.lookup("example.test"));
}

fn responder(answer: Answer) -> (DnsResponder, Resolver) {
    let dns = DnsResponder::start([(SERVICE.to_string(), answer)]);
    let resolver = Resolver::new(Some(dns.addr())).expect("a resolver");
    (dns, resolver)
}

#[tokio::test]
async fn srv_records_are_looked_up_and_ordered() {
    let (dns, resolver) = responder(Answer::Srv {
        ttl: 120,
        records: vec![
            Srv::new(20, 5, 5223, "backup.example.test."),
            Srv::new(10, 5, 5222, "primary.example.test."),
        ],
    });
    let before = Instant::now();
    let got = resolver.lookup("example.test").await.expect("targets");
    let after = Instant::now();
    assert!(got.from_srv);
    assert_eq!(
        got.targets,
        [
            target("primary.example.test", 5222),
            target("backup.example.test", 5223)
        ]
    );
    let ttl = Duration::from_secs(120);
    assert!(before + ttl <= got.expires && got.expires <= after + ttl);
    // Looking up again asks the DNS again (no cache under the caller's): the records changed
    // in between are the answer. (Not a count of queries: hickory repeats a UDP query that
    // waits 333 ms, which a loaded machine can make happen.)
    dns.set(
        SERVICE,
        Answer::Srv {
            ttl: 120,
            records: vec![Srv::new(10, 5, 5222, "moved.example.test.")],
        },
    );
    let got = resolver.lookup("example.test").await.expect("targets");
    assert_eq!(got.targets, [target("moved.example.test", 5222)]);
}

#[tokio::test]
async fn nxdomain_empty_and_servfail_fall_back() {
    for answer in [Answer::NxDomain, Answer::Empty, Answer::ServFail] {
        let (dns, resolver) = responder(answer.clone());
        let before = Instant::now();
        let got = resolver.lookup("example.test").await.expect("the fallback");
        assert!(!got.from_srv, "{answer:?}");
        assert_eq!(got.targets, [target("example.test", 5222)], "{answer:?}");
        assert!(got.expires >= before + FALLBACK_TTL);
        assert!(
            dns.queries() >= 1,
            "{answer:?}: no query reached the responder"
        );
    }
}

#[tokio::test]
async fn a_dot_from_the_dns_is_an_error() {
    let (_dns, resolver) = responder(Answer::Srv {
        ttl: 300,
        records: vec![Srv::new(0, 0, 0, ".")],
    });
    assert_eq!(
        resolver.lookup("example.test").await,
        Err(SrvError::NotServed {
            domain: "example.test".into()
        })
    );
}

/// A server that never answers: the lookup ends within its bound with the fallback (on the
/// paused clock, which jumps each timeout at once; the responder's thread runs on its own).
#[tokio::test(start_paused = true)]
async fn an_unanswered_lookup_ends_within_its_bound() {
    let (_dns, resolver) = responder(Answer::Silent);
    let start = Instant::now();
    let got = resolver.lookup("example.test").await.expect("the fallback");
    let took = start.elapsed();
    // It waited for an answer (a query's timeout at least), and not past its bound.
    assert!(
        QUERY_TIMEOUT <= took && took <= LOOKUP_BOUND,
        "took {took:?}"
    );
    assert!(!got.from_srv);
    assert_eq!(got.targets, [target("example.test", 5222)]);
    assert_eq!(got.expires, start + took + FALLBACK_TTL);
}

#[tokio::test(start_paused = true)]
async fn a_malformed_answer_falls_back() {
    let (_dns, resolver) = responder(Answer::Garbage(vec![0xff; 40]));
    let start = Instant::now();
    let got = resolver.lookup("example.test").await.expect("the fallback");
    assert!(start.elapsed() <= LOOKUP_BOUND);
    assert!(!got.from_srv);
}

/// More records than a UDP answer holds: truncated over UDP, whole over TCP, capped here.
#[tokio::test]
async fn an_enormous_answer_over_tcp_keeps_the_cap() {
    // 700 records of about 70 bytes each: near the 64 KiB a DNS message can hold.
    let records = (0..700u16)
        .map(|i| Srv::new(i % 7, i, 5222 + i, &format!("t{i}.example.test.")))
        .collect();
    let (dns, resolver) = responder(Answer::Srv { ttl: 0, records });
    let before = Instant::now();
    let got = resolver.lookup("example.test").await.expect("targets");
    assert!(got.from_srv);
    assert_eq!(got.targets.len(), MAX_TARGETS);
    assert!(got.expires >= before + MIN_TTL);
    // Priority 0 holds 100 records: every target kept is one of them.
    assert!(
        got.targets.iter().all(|t| (t.port - 5222) % 7 == 0),
        "{got:?}"
    );
    assert!(dns.queries() >= 2, "the TCP retry did not happen");
}

#[tokio::test]
async fn an_address_is_its_own_target_without_a_query() {
    let (dns, resolver) = responder(Answer::NxDomain);
    let got = resolver.lookup("127.0.0.1").await.expect("the address");
    assert_eq!(got.targets, [target("127.0.0.1", 5222)]);
    let got = resolver.lookup("[::1]").await.expect("the address");
    assert_eq!(got.targets, [target("::1", 5222)]);
    assert_eq!(got.targets[0].to_string(), "[::1]:5222");
    assert_eq!(dns.queries(), 0);
    assert!(matches!(
        resolver.lookup("not a domain").await,
        Err(SrvError::InvalidDomain { .. })
    ));
}

#[tokio::test]
async fn the_responder_answers_a_records_too() {
    // For e2e tests whose SRV targets are names of a test zone.
    let dns = DnsResponder::start([(
        "xmpp.example.test".to_string(),
        Answer::A {
            ttl: 60,
            addrs: vec![Ipv4Addr::LOCALHOST],
        },
    )]);
    let resolver = Resolver::new(Some(dns.addr())).expect("a resolver");
    let lookup = resolver
        .inner
        .lookup("xmpp.example.test.", RecordType::A)
        .await
        .expect("the A record");
    let addrs: Vec<_> = lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    assert_eq!(addrs, [Ipv4Addr::LOCALHOST]);
}

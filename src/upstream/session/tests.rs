use tokio::time::{timeout, Instant};
use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::ping::Ping;

use super::driver::FOOTER_WAIT;
use super::trust::{answers_for, fresh_id, from_server};
use super::*;
use crate::upstream::fake::{self, FakeServer};

pub(super) const NS: &str = "urn:xrg:test";

pub(super) fn j(s: &str) -> Jid {
    s.parse().unwrap()
}

pub(super) fn own() -> FullJid {
    "admin@example.org/xrg-1".parse().unwrap()
}

/// A payload that says which request it is.
pub(super) fn marked(mark: &str) -> Element {
    Element::builder("q", NS).append(mark.to_string()).build()
}

pub(super) async fn session(
    max_in_flight: usize,
    buffer: usize,
) -> (Arc<AdminSession>, FakeServer) {
    let (logged_in, server) = fake::logged_in(&own(), buffer).await;
    (
        Arc::new(AdminSession::start(logged_in, max_in_flight)),
        server,
    )
}

/// The answer a server gives: the request's own payload back, from its addressee.
fn echo(iq: Iq) -> Iq {
    match iq {
        Iq::Get {
            to, id, payload, ..
        }
        | Iq::Set {
            to, id, payload, ..
        } => Iq::Result {
            from: to,
            to: None,
            id,
            payload: Some(payload),
        },
        other => panic!("not a request: {other:?}"),
    }
}

fn mark_of(reply: &Result<IqReply, UpstreamError>) -> String {
    match reply {
        Ok(IqReply::Result(Some(p))) => p.text(),
        other => panic!("expected a result with a payload, got {other:?}"),
    }
}

#[tokio::test]
async fn replies_find_their_waiters_when_answered_out_of_order() {
    let (s, mut server) = session(8, 64 * 1024).await;
    let targets = ["a.example.org", "b.example.org", "c.example.org"];
    let requests = targets
        .iter()
        .map(|t| (j(t), IqKind::Get, marked(t)))
        .collect();
    let client = tokio::spawn({
        let s = s.clone();
        async move { s.iqs(requests).await }
    });
    let mut received = Vec::new();
    for _ in targets {
        received.push(server.next_iq().await);
    }
    for iq in received.into_iter().rev() {
        server.send(echo(iq)).await;
    }
    let replies = client.await.unwrap().unwrap();
    let marks: Vec<String> = replies.iter().map(mark_of).collect();
    assert_eq!(marks, targets);
    assert_eq!(s.dropped_stanzas(), 0);
}

#[tokio::test]
async fn forged_and_unknown_replies_are_dropped_and_counted() {
    let (s, mut server) = session(8, 64 * 1024).await;
    let client = tokio::spawn({
        let s = s.clone();
        async move {
            s.iq(j("conference.example.org"), IqKind::Set, marked("asked"))
                .await
        }
    });
    let iq = server.next_iq().await;
    let id = iq.id().to_string();
    // Someone else answering in the addressee's name, then the addressee under an unknown id.
    let forged = Iq::Result {
        from: Some(j("test@example.org/x")),
        to: None,
        id: id.clone(),
        payload: Some(marked("forged")),
    };
    server.send(forged).await;
    let unknown = Iq::Result {
        from: Some(j("conference.example.org")),
        to: None,
        id: fresh_id(),
        payload: Some(marked("unknown")),
    };
    server.send(unknown).await;
    server.send(echo(iq)).await;
    let reply = client.await.unwrap();
    assert_eq!(mark_of(&reply), "asked");
    assert_eq!(s.dropped_stanzas(), 2);
}

#[tokio::test]
async fn only_the_servers_requests_are_answered() {
    let (s, mut server) = session(8, 64 * 1024).await;
    let ping = |id: &str, from: Option<&str>| Iq::Get {
        from: from.map(j),
        to: Some(Jid::from(own())),
        id: id.to_string(),
        payload: Ping.into(),
    };
    server
        .send(ping("from-other", Some("test@example.org/x")))
        .await;
    server.send(ping("from-domain", Some("example.org"))).await;
    server.send(ping("from-nobody", None)).await;
    let mut unknown = ping("unknown-request", Some("example.org"));
    if let Iq::Get { payload, .. } = &mut unknown {
        *payload = marked("what");
    }
    server.send(unknown).await;
    // The other entity's ping gets nothing: the first answer is the domain's.
    let answer = server.next_iq().await;
    assert!(
        matches!(&answer, Iq::Result { id, to: Some(to), .. } if id == "from-domain" && *to == j("example.org")),
        "{answer:?}"
    );
    let answer = server.next_iq().await;
    assert!(
        matches!(&answer, Iq::Result { id, .. } if id == "from-nobody"),
        "{answer:?}"
    );
    let answer = server.next_iq().await;
    assert!(
        matches!(&answer, Iq::Error { id, .. } if id == "unknown-request"),
        "{answer:?}"
    );
    assert_eq!(s.dropped_stanzas(), 1);
}

#[tokio::test]
async fn never_more_iqs_in_flight_than_the_bound() {
    const BOUND: usize = 3;
    const TOTAL: usize = 10;
    let (s, mut server) = session(BOUND, 64 * 1024).await;
    let requests = (0..TOTAL)
        .map(|n| (j("example.org"), IqKind::Get, marked(&n.to_string())))
        .collect();
    let client = tokio::spawn({
        let s = s.clone();
        async move { s.iqs(requests).await }
    });
    let (mut received, mut unanswered) = (0, Vec::new());
    while received < TOTAL || !unanswered.is_empty() {
        if unanswered.len() == BOUND || received == TOTAL {
            if received < TOTAL {
                let more = timeout(Duration::from_millis(50), server.next()).await;
                assert!(more.is_err(), "an IQ beyond the bound: {more:?}");
            }
            // Newest first, so answers also come out of order.
            let iq = unanswered.pop().unwrap();
            server.send(echo(iq)).await;
        } else {
            unanswered.push(server.next_iq().await);
            received += 1;
        }
    }
    let replies = client.await.unwrap().unwrap();
    let marks: Vec<String> = replies.iter().map(mark_of).collect();
    let expected: Vec<String> = (0..TOTAL).map(|n| n.to_string()).collect();
    assert_eq!(marks, expected);
}

#[tokio::test]
async fn a_silent_stream_is_probed_then_given_up() {
    let timeouts = tokio_xmpp::xmlstream::Timeouts {
        read_timeout: Duration::from_millis(200),
        response_timeout: Duration::from_millis(300),
    };
    let (logged_in, mut server) = fake::logged_in_with(&own(), 64 * 1024, timeouts).await;
    let s = AdminSession::start(logged_in, 8);
    let probe = timeout(Duration::from_secs(1), server.next_iq())
        .await
        .unwrap();
    assert!(
        matches!(&probe, Iq::Get { to: Some(to), payload, .. } if *to == j("example.org") && payload.is("ping", tokio_xmpp::parsers::ns::PING)),
        "{probe:?}"
    );
    // The server's answer keeps the stream, and is nobody's reply to drop.
    server.send(echo(probe)).await;
    let probe = timeout(Duration::from_secs(1), server.next_iq())
        .await
        .unwrap();
    assert!(s.is_alive());
    assert_eq!(s.dropped_stanzas(), 0);
    // No answer to the next probe: the stream is given up.
    timeout(Duration::from_secs(2), s.closed()).await.unwrap();
    assert!(!s.is_alive());
    drop(probe);
}

#[tokio::test]
async fn every_waiter_fails_at_once_when_the_stream_dies() {
    let (s, mut server) = session(8, 64 * 1024).await;
    let waiters: Vec<_> = (0..3)
        .map(|n| {
            let s = s.clone();
            tokio::spawn(async move {
                s.iq(j("example.org"), IqKind::Get, marked(&n.to_string()))
                    .await
            })
        })
        .collect();
    for _ in 0..3 {
        server.next_iq().await;
    }
    server.close().await;
    for w in waiters {
        let reply = timeout(Duration::from_secs(1), w).await.unwrap().unwrap();
        assert!(matches!(reply, Err(UpstreamError::Closed(_))), "{reply:?}");
    }
    timeout(Duration::from_secs(1), s.closed()).await.unwrap();
    assert!(!s.is_alive());
    let late = s.iq(j("example.org"), IqKind::Get, marked("late")).await;
    assert!(matches!(late, Err(UpstreamError::Closed(_))), "{late:?}");
}

#[tokio::test]
async fn close_sends_the_footer() {
    let (s, mut server) = session(8, 64 * 1024).await;
    let closing = tokio::spawn({
        let s = s.clone();
        async move { s.close().await }
    });
    assert!(server.next().await.is_none(), "expected the footer");
    server.close().await;
    let outcome = timeout(Duration::from_secs(1), closing).await.unwrap();
    assert_eq!(outcome.unwrap(), CloseOutcome::Closed);
    assert!(!s.is_alive());
}

#[tokio::test]
async fn dropping_the_last_handle_closes_the_stream() {
    let (s, mut server) = session(8, 64 * 1024).await;
    drop(s);
    let end = timeout(Duration::from_secs(1), server.next()).await;
    assert!(matches!(end, Ok(None)), "expected the footer, got {end:?}");
}

#[tokio::test(start_paused = true)]
async fn close_is_bounded_when_the_server_never_closes_its_side() {
    let (s, mut server) = session(8, 64 * 1024).await;
    let started = Instant::now();
    let closing = tokio::spawn({
        let s = s.clone();
        async move { s.close().await }
    });
    assert!(server.next().await.is_none(), "expected the footer");
    // The server holds the stream open and says nothing.
    let outcome = closing.await.unwrap();
    assert_eq!(outcome, CloseOutcome::Closed);
    let took = started.elapsed();
    assert!(
        took >= FOOTER_WAIT && took < CLOSE_BOUND,
        "closed after {took:?}"
    );
    drop(server);
}

#[tokio::test(start_paused = true)]
async fn close_is_bounded_when_the_server_stops_reading() {
    // A pipe smaller than one IQ, and a server that reads nothing: the write stalls.
    let (s, server) = session(8, 512).await;
    let stuck = tokio::spawn({
        let s = s.clone();
        async move {
            s.iq(j("example.org"), IqKind::Set, marked(&"x".repeat(4096)))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    assert_eq!(s.close().await, CloseOutcome::Abandoned);
    assert!(started.elapsed() < CLOSE_BOUND + Duration::from_millis(500));
    assert!(!s.is_alive());
    let reply = timeout(Duration::from_secs(1), stuck)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(reply, Err(UpstreamError::Closed(_))), "{reply:?}");
    drop(server);
}

#[test]
fn only_the_addressee_answers() {
    let to = j("conference.example.org");
    assert!(answers_for(&own(), &to, Some(&to)));
    assert!(!answers_for(&own(), &to, None));
    assert!(!answers_for(&own(), &to, Some(&j("test@example.org/x"))));
    assert!(!answers_for(&own(), &to, Some(&j("example.org"))));
}

#[test]
fn the_server_answers_for_its_domain_and_the_account_without_from() {
    let domain = j("example.org");
    assert!(answers_for(&own(), &domain, None));
    assert!(answers_for(&own(), &domain, Some(&domain)));
    assert!(!answers_for(&own(), &domain, Some(&j("test@example.org"))));
    assert!(!answers_for(
        &own(),
        &domain,
        Some(&j("test@example.org/res"))
    ));
    assert!(!answers_for(&own(), &domain, Some(&j("other.org"))));
    let me = j("admin@example.org");
    assert!(answers_for(&own(), &me, None));
    assert!(answers_for(&own(), &me, Some(&me)));
}

#[test]
fn requests_are_answered_for_the_server_only() {
    assert!(from_server(&own(), None));
    assert!(from_server(&own(), Some(&j("example.org"))));
    assert!(from_server(&own(), Some(&j("admin@example.org"))));
    assert!(!from_server(&own(), Some(&j("test@example.org/x"))));
    assert!(!from_server(&own(), Some(&j("admin@example.org/other"))));
    assert!(!from_server(&own(), Some(&j("conference.example.org"))));
}

#[test]
fn ids_are_unpredictable() {
    let (a, b) = (fresh_id(), fresh_id());
    assert_ne!(a, b);
    assert!(a.len() >= 32, "{a}");
}

//! The stream after bind, as bytes: what tokio-xmpp read behind the login survives, and IQs
//! written by the caller get their replies as bytes, from their addressee only.

use std::time::Duration;

use tokio::time::timeout;
use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::ping::Ping;

use super::tests::{j, marked, own, session, NS};
use super::trust::fresh_id;
use super::*;
use crate::upstream::fake;

#[tokio::test]
async fn a_stanza_read_with_the_last_of_the_login_is_not_lost() {
    let ping = Iq::Get {
        from: Some(j("example.org")),
        to: Some(Jid::from(own())),
        id: "early".into(),
        payload: Ping.into(),
    };
    let (logged_in, mut server) = fake::logged_in_early(&own(), ping).await;
    let _s = AdminSession::start(logged_in, 8);
    let answer = timeout(Duration::from_secs(2), server.next_iq())
        .await
        .unwrap();
    assert!(
        matches!(&answer, Iq::Result { id, to: Some(to), .. } if id == "early" && *to == j("example.org")),
        "{answer:?}"
    );
}

/// What the server answers to a written IQ: `reply` from `from`, under the IQ's id.
fn written_reply(from: &str, id: &str, payload: &str) -> Iq {
    Iq::Result {
        from: Some(j(from)),
        to: None,
        id: id.to_string(),
        payload: Some(marked(payload)),
    }
}

#[tokio::test]
async fn written_iqs_get_their_replies_as_bytes_from_their_addressee_only() {
    let (s, mut server) = session(8, 64 * 1024).await;
    let client = tokio::spawn({
        let s = s.clone();
        async move {
            s.iqs_written::<UpstreamError>(
                vec![j("example.org"), j("conference.example.org")],
                |i, to, id, out| {
                    let q =
                        format!("<iq type='get' to='{to}' id='{id}'><q xmlns='{NS}'>{i}</q></iq>");
                    out.extend_from_slice(q.as_bytes());
                    Ok(())
                },
            )
            .await
        }
    });
    let first = server.next_iq().await;
    let second = server.next_iq().await;
    assert!(
        matches!(&first, Iq::Get { to: Some(to), .. } if *to == j("example.org")),
        "{first:?}"
    );
    // Out of order, a forgery in the addressee's name first, and an unknown id.
    server
        .send(written_reply("test@example.org/x", second.id(), "forged"))
        .await;
    server
        .send(written_reply(
            "conference.example.org",
            &fresh_id(),
            "unknown",
        ))
        .await;
    server
        .send(written_reply("conference.example.org", second.id(), "1"))
        .await;
    server
        .send(written_reply("example.org", first.id(), "0"))
        .await;
    let replies = client.await.unwrap().unwrap();
    let texts: Vec<String> = replies
        .into_iter()
        .map(|r| String::from_utf8(r.unwrap()).unwrap())
        .collect();
    for (n, text) in texts.iter().enumerate() {
        assert!(text.starts_with("<iq "), "{text}");
        let el = super::stanza::tree(text.as_bytes()).unwrap();
        assert_eq!(el.get_child("q", NS).map(|q| q.text()), Some(n.to_string()));
    }
    assert_eq!(s.dropped_stanzas(), 2);
}

#[tokio::test]
async fn a_written_batch_that_fails_to_write_sends_nothing() {
    let (s, mut server) = session(8, 64 * 1024).await;
    let failed = s
        .iqs_written(vec![j("example.org"), j("example.org")], |i, _, _, out| {
            out.extend_from_slice(b"<iq/>");
            if i == 1 {
                Err(UpstreamError::Stream("unwritable".into()))
            } else {
                Ok(())
            }
        })
        .await;
    assert!(
        matches!(failed, Err(UpstreamError::Stream(_))),
        "{failed:?}"
    );
    // The next IQ is the first the server sees.
    let ok = tokio::spawn({
        let s = s.clone();
        async move { s.iq(j("example.org"), IqKind::Get, marked("next")).await }
    });
    let iq = server.next_iq().await;
    assert!(
        matches!(&iq, Iq::Get { payload, .. } if payload.text() == "next"),
        "{iq:?}"
    );
    let id = iq.id().to_string();
    server.send(written_reply("example.org", &id, "next")).await;
    assert!(
        matches!(ok.await.unwrap(), Ok(IqReply::Result(Some(p))) if p.text() == "next"),
        "the answer to the next IQ"
    );
}

/// A message from another account to the gateway's resource, carrying `payload`.
fn foreign_message(payload: Element) -> tokio_xmpp::Stanza {
    let mut m = tokio_xmpp::parsers::message::Message::new(Some(Jid::from(own())));
    m.from = Some(j("other@example.org/x"));
    m.payloads.push(payload);
    tokio_xmpp::Stanza::Message(m)
}

/// `depth` elements, each inside the one before.
fn nested(depth: usize) -> Element {
    (1..depth).fold(Element::builder("a", NS).build(), |inner, _| {
        Element::builder("a", NS).append(inner).build()
    })
}

/// Longer than the driver keeps whole (8 MiB).
fn oversize_text() -> String {
    "x".repeat(8 * 1024 * 1024 + 1024)
}

#[tokio::test]
async fn foreign_stanzas_of_any_depth_or_size_never_end_the_stream() {
    let (s, mut server) = session(8, 64 * 1024).await;
    let client = tokio::spawn({
        let s = s.clone();
        async move { s.iq(j("example.org"), IqKind::Get, marked("asked")).await }
    });
    let iq = server.next_iq().await;
    server.send_stanza(foreign_message(nested(70))).await;
    let large = Element::builder("b", NS).append(oversize_text()).build();
    server.send_stanza(foreign_message(large)).await;
    // Both skipped; the answer behind them still reaches its waiter.
    server
        .send(written_reply("example.org", iq.id(), "answered"))
        .await;
    let reply = timeout(Duration::from_secs(20), client)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&reply, Ok(IqReply::Result(Some(p))) if p.text() == "answered"),
        "{reply:?}"
    );
    assert!(s.is_alive());
    assert_eq!(s.dropped_stanzas(), 2);
    // And the stream goes on: the next IQ is answered too.
    let next = tokio::spawn({
        let s = s.clone();
        async move { s.iq(j("example.org"), IqKind::Get, marked("next")).await }
    });
    let iq = server.next_iq().await;
    server
        .send(written_reply("example.org", iq.id(), "next"))
        .await;
    assert!(next.await.unwrap().is_ok());
}

#[tokio::test]
async fn an_answer_too_large_to_keep_fails_its_request_alone() {
    let (s, mut server) = session(8, 64 * 1024).await;
    let ask = |mark: &'static str| {
        let s = s.clone();
        tokio::spawn(async move { s.iq(j("example.org"), IqKind::Get, marked(mark)).await })
    };
    let (first, second) = (ask("first"), ask("second"));
    let (a, b) = (server.next_iq().await, server.next_iq().await);
    let (big, small) = match &a {
        Iq::Get { payload, .. } if payload.text() == "first" => (a, b),
        _ => (b, a),
    };
    let huge = Iq::Result {
        from: Some(j("example.org")),
        to: None,
        id: big.id().to_string(),
        payload: Some(Element::builder("q", NS).append(oversize_text()).build()),
    };
    server.send(huge).await;
    server
        .send(written_reply("example.org", small.id(), "second"))
        .await;
    let first = timeout(Duration::from_secs(20), first)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(first, Err(UpstreamError::Stream(_))), "{first:?}");
    let second = second.await.unwrap();
    assert!(
        matches!(&second, Ok(IqReply::Result(Some(p))) if p.text() == "second"),
        "{second:?}"
    );
    assert!(s.is_alive());
}

#[tokio::test]
async fn a_stanza_over_the_limit_as_written_is_refused_before_anything_is_sent() {
    let (logged_in, mut server) = fake::logged_in(&own(), 64 * 1024).await;
    let s = Arc::new(AdminSession::start(logged_in, 8).with_max_stanza(1000));
    // 240 characters that are 960 bytes once escaped: the limit is on what is written.
    let mut m = tokio_xmpp::parsers::message::Message::new(Some(j("user@example.org")));
    m.bodies.insert(Default::default(), ">".repeat(240));
    let refused = s.send(OneWay::message(m)).await;
    assert!(
        matches!(refused, Err(UpstreamError::TooLarge { max: 1000, size }) if size > 1000),
        "{refused:?}"
    );
    let refused = s
        .iqs_written::<UpstreamError>(vec![j("example.org")], |_, _, _, out| {
            out.extend_from_slice(&[b' '; 1001]);
            Ok(())
        })
        .await;
    assert!(
        matches!(refused, Err(UpstreamError::TooLarge { .. })),
        "{refused:?}"
    );
    let big = Element::builder("q", NS).append("&".repeat(300)).build();
    let refused = s.iq(j("example.org"), IqKind::Set, big).await;
    assert!(
        matches!(refused, Err(UpstreamError::TooLarge { .. })),
        "{refused:?}"
    );
    // Nothing of them reached the server: the next IQ is the first it sees, on a live stream.
    let ok = tokio::spawn({
        let s = s.clone();
        async move { s.iq(j("example.org"), IqKind::Get, marked("next")).await }
    });
    let iq = server.next_iq().await;
    assert!(
        matches!(&iq, Iq::Get { payload, .. } if payload.text() == "next"),
        "{iq:?}"
    );
    server
        .send(written_reply("example.org", iq.id(), "next"))
        .await;
    assert!(ok.await.unwrap().is_ok());
    assert!(s.is_alive());
}

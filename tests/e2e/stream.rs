//! `POST /rest/stream/` against real Prosody and ejabberd: a message and a subscription reach
//! a real client, an `iq` is answered under the client's own id, and the refusals (foreign
//! `from`, available presence, two stanzas, IQs outside the allow-list, the rate) leave the
//! account's warm stream as it was.

use std::time::Duration;

use minidom::Element;
use tokio_xmpp::parsers::presence;
use tokio_xmpp::Stanza;

use crate::common::proxy::proxied;
use crate::common::victim::Inbox;
use crate::common::{self, basic, http, HttpResponse, ServerKind, TestServer};

on_both_servers!(
    a_message_and_a_subscription_reach_the_recipient,
    an_iq_is_answered_under_the_clients_id,
    the_paths_jid_is_the_destination_and_an_iq_without_id_gets_one,
    refusals_leave_the_accounts_stream_working,
    the_stream_rate_refuses_beyond_its_burst,
    the_access_file_governs_the_stream,
);

const WAIT: Duration = Duration::from_secs(10);
const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
const ADMIN: &str = "http://jabber.org/protocol/admin#";

/// A fresh account of this test's own: its local part and password.
fn fresh(s: &TestServer, what: &str) -> (String, String) {
    let local = format!("stream-{what}-{}", common::random_hex(4));
    let password = format!("pw-{}", common::random_hex(8));
    s.register(&local, &password);
    (local, password)
}

fn domain(s: &TestServer) -> String {
    let jid = s.jid("x");
    jid.split_once('@').map(|(_, d)| d.to_string()).unwrap()
}

async fn post(addr: std::net::SocketAddr, auth: &str, stanza: &str) -> HttpResponse {
    let headers = [("authorization", auth), ("content-type", "application/xml")];
    http(addr, "POST", "/rest/stream/", &headers, stanza.as_bytes()).await
}

fn disco(id: &str, domain: &str) -> String {
    format!("<iq type='get' id='{id}' to='{domain}'><query xmlns='{DISCO_INFO}'/></iq>")
}

/// The answer to a disco#info query of the server, checked to be a result under `id`.
fn assert_disco_result(r: &HttpResponse, id: &str, domain: &str) {
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/xml"));
    let iq: Element = r.text().parse().expect("the body is one stanza");
    assert!(iq.is("iq", "jabber:client"), "{}", r.text());
    assert_eq!(iq.attr("type"), Some("result"), "{}", r.text());
    assert_eq!(
        iq.attr("id"),
        Some(id),
        "the client's id restored: {}",
        r.text()
    );
    assert_eq!(iq.attr("from"), Some(domain), "{}", r.text());
    let query = iq
        .get_child("query", DISCO_INFO)
        .expect("the disco#info payload");
    assert!(
        query
            .children()
            .any(|c| c.name() == "identity" && c.attr("category") == Some("server")),
        "{}",
        r.text()
    );
}

async fn a_message_and_a_subscription_reach_the_recipient(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = crate::gateway(kind).await;
    let (sender, sender_pw) = fresh(s, "from");
    let (recipient, recipient_pw) = fresh(s, "to");
    let mut inbox = Inbox::connect(s, &recipient, &recipient_pw, "phone").await;
    let auth = basic(&s.jid(&sender), &sender_pw);
    let words = format!("hello {}", common::random_hex(6));
    let message = format!(
        "<message to='{}' type='chat' from='{}'><body>{words}</body></message>",
        inbox.jid,
        s.jid(&sender)
    );
    let r = post(gw.addr, &auth, &message).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let got = inbox
        .next(
            WAIT,
            |st| matches!(st, Stanza::Message(m) if m.bodies.values().any(|b| *b == words)),
        )
        .await;
    let Stanza::Message(m) = got else {
        unreachable!()
    };
    let from = m.from.expect("the server stamps from");
    assert_eq!(
        from.to_bare().to_string(),
        s.jid(&sender),
        "sent as the account"
    );

    let subscribe = format!("<presence type='subscribe' to='{}'/>", s.jid(&recipient));
    let r = post(gw.addr, &auth, &subscribe).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let got = inbox
        .next(
            WAIT,
            |st| matches!(st, Stanza::Presence(p) if p.type_ == presence::Type::Subscribe),
        )
        .await;
    let Stanza::Presence(p) = got else {
        unreachable!()
    };
    let from = p.from.map(|f| f.to_bare().to_string());
    assert_eq!(
        from,
        Some(s.jid(&sender)),
        "the subscription request is the account's"
    );
}

async fn an_iq_is_answered_under_the_clients_id(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = crate::gateway(kind).await;
    let (local, pw) = fresh(s, "iq");
    let auth = basic(&s.jid(&local), &pw);
    let domain = domain(s);
    let r = post(gw.addr, &auth, &disco("client-1", &domain)).await;
    assert_disco_result(&r, "client-1", &domain);
    // Without the trailing slash too, and an id the gateway's own could look like.
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "text/xml"),
    ];
    let body = disco("xrg-0", &domain);
    let r = http(gw.addr, "POST", "/rest/stream", &headers, body.as_bytes()).await;
    assert_disco_result(&r, "xrg-0", &domain);
    // A Tigase script: curl's default form type, the format in ?type=; a JSON body is no stanza.
    let form = [
        ("authorization", auth.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let body = disco("form", &domain);
    let path = "/rest/stream/?type=text/xml";
    let r = http(gw.addr, "POST", path, &form, body.as_bytes()).await;
    assert_disco_result(&r, "form", &domain);
    let r = http(gw.addr, "POST", "/rest/stream/", &form, body.as_bytes()).await;
    assert_eq!(r.status, 415, "{}", r.text());
    let r = http(gw.addr, "GET", "/rest/stream/", &headers, b"").await;
    assert_eq!(
        (r.status, r.header("allow")),
        (405, Some("POST")),
        "{}",
        r.text()
    );
    // An error answer: the stanza is the body, under the contract's status for its condition
    // (the time is the server's to tell, not an account's: both servers answer an account's
    // bare JID service-unavailable).
    let unknown = format!(
        "<iq type='get' id='client-2' to='{}'><time xmlns='urn:xmpp:time'/></iq>",
        s.jid(&local)
    );
    let r = post(gw.addr, &auth, &unknown).await;
    assert_eq!(r.header("content-type"), Some("application/xml"));
    let iq: Element = r.text().parse().expect("the body is one stanza");
    assert_eq!(iq.attr("type"), Some("error"), "{}", r.text());
    assert_eq!(iq.attr("id"), Some("client-2"), "{}", r.text());
    let error = iq
        .get_child("error", "jabber:client")
        .expect("the stanza error");
    let condition: Vec<&str> = error.children().map(|c| c.name()).collect();
    assert!(condition.contains(&"service-unavailable"), "{}", r.text());
    assert_eq!(
        r.status, 502,
        "the contract's status for service-unavailable"
    );
}

/// Tigase's `/rest/stream/{to_jid}`: the path names the destination; a body's `to` may only
/// repeat it. An `iq` without an `id` (as quick scripts write it) is answered under one.
async fn the_paths_jid_is_the_destination_and_an_iq_without_id_gets_one(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = crate::gateway(kind).await;
    let (sender, sender_pw) = fresh(s, "path");
    let (recipient, recipient_pw) = fresh(s, "dest");
    let mut inbox = Inbox::connect(s, &recipient, &recipient_pw, "phone").await;
    let auth = basic(&s.jid(&sender), &sender_pw);
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/xml"),
    ];
    let to = |jid: &str| format!("/rest/stream/{jid}");
    let words = format!("by path {}", common::random_hex(6));
    let message = format!("<message type='chat'><body>{words}</body></message>");
    let r = http(
        gw.addr,
        "POST",
        &to(&inbox.jid),
        &headers,
        message.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());
    inbox
        .next(
            WAIT,
            |st| matches!(st, Stanza::Message(m) if m.bodies.values().any(|b| *b == words)),
        )
        .await;
    // A `to` that differs from the path's is refused; nothing is sent.
    let differs = format!("<message to='{}'><body>x</body></message>", s.jid(&sender));
    let r = http(
        gw.addr,
        "POST",
        &to(&inbox.jid),
        &headers,
        differs.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    // An iq without an id, to the server named by the path.
    let domain = domain(s);
    let body = format!("<iq type='get'><query xmlns='{DISCO_INFO}'/></iq>");
    let r = http(gw.addr, "POST", &to(&domain), &headers, body.as_bytes()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let iq: Element = r.text().parse().expect("the body is one stanza");
    let id = iq.attr("id").expect("an id").to_string();
    assert_disco_result(&r, &id, &domain);
    // A stanza the parser refuses is answered in the gateway's words, never a Rust type's.
    let bad = "<iq type='error' id='e'><query xmlns='jabber:iq:version'/></iq>";
    let r = http(gw.addr, "POST", &to(&domain), &headers, bad.as_bytes()).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(!r.text().contains("::"), "{}", r.text());
}

async fn refusals_leave_the_accounts_stream_working(kind: ServerKind) {
    let s = common::started(kind).await;
    let (proxy, gw) = proxied(s, &[]).await;
    let (local, pw) = fresh(s, "refused");
    let (other, other_pw) = fresh(s, "watch");
    let mut inbox = Inbox::connect(s, &other, &other_pw, "desk").await;
    let auth = basic(&s.jid(&local), &pw);
    let domain = domain(s);
    let r = post(gw.addr, &auth, &disco("before", &domain)).await;
    assert_disco_result(&r, "before", &domain);
    let connections = proxy.connections();
    let foreign = format!(
        "<message to='{}' from='{}'><body>forged</body></message>",
        inbox.jid,
        s.jid(&other)
    );
    let available = format!("<presence to='{}'/>", inbox.jid);
    let two = format!("{}{}", disco("one", &domain), disco("two", &domain));
    // IQs outside the allow-list, whatever their `to`: carbons would copy every message of the
    // account to the shared stream, a MAM query's results arrive on it as messages.
    let carbons = "<iq type='set' id='c'><enable xmlns='urn:xmpp:carbons:2'/></iq>";
    let mam = format!(
        "<iq type='set' id='m' to='{}'><query xmlns='urn:xmpp:mam:2' queryid='q'/></iq>",
        s.jid(&local)
    );
    let iqs = proxy.seen(|s| s.iqs);
    for (what, body) in [
        ("a foreign from", foreign.as_str()),
        ("available presence", available.as_str()),
        ("undirected available presence", "<presence/>"),
        ("two stanzas", two.as_str()),
        ("carbons", carbons),
        ("a MAM query of the account", mam.as_str()),
    ] {
        let r = post(gw.addr, &auth, body).await;
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        assert!(r.text().contains("bad-request"), "{what}: {}", r.text());
    }
    for ns in ["urn:xmpp:carbons:2", "urn:xmpp:mam:2"] {
        let r = post(
            gw.addr,
            &auth,
            if ns.contains("mam") { &mam } else { carbons },
        )
        .await;
        let flag = format!("--stream-iq-allow {ns}");
        assert!(
            r.text().contains(&flag),
            "names the namespace and the flag: {}",
            r.text()
        );
    }
    assert_eq!(proxy.seen(|s| s.iqs), iqs, "the server received no IQ");
    let r = post(gw.addr, &auth, &disco("after", &domain)).await;
    assert_disco_result(&r, "after", &domain);
    let words = format!("still here {}", common::random_hex(6));
    let message = format!("<message to='{}'><body>{words}</body></message>", inbox.jid);
    let r = post(gw.addr, &auth, &message).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let got = inbox
        .next(WAIT, |st| matches!(st, Stanza::Message(m) if m.bodies.values().any(|b| b.contains("still here") || b == "forged")))
        .await;
    let Stanza::Message(m) = got else {
        unreachable!()
    };
    assert_eq!(
        m.bodies.values().next().map(String::as_str),
        Some(words.as_str()),
        "the refused message never arrived; the next one did"
    );
    assert_eq!(
        proxy.seen(|s| (s.connections, s.stream_ends)),
        (connections, 0),
        "the same warm stream served the account throughout"
    );
}

async fn the_stream_rate_refuses_beyond_its_burst(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = common::TestGateway::start(s, &["--stream-rate", "2/m"]);
    let (local, pw) = fresh(s, "rate");
    let auth = basic(&s.jid(&local), &pw);
    let domain = domain(s);
    for id in ["r1", "r2"] {
        let r = post(gw.addr, &auth, &disco(id, &domain)).await;
        assert_disco_result(&r, id, &domain);
    }
    let r = post(gw.addr, &auth, &disco("r3", &domain)).await;
    assert_eq!(r.status, 429, "{}", r.text());
    let wait: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(
        (1..=30).contains(&wait),
        "half a minute at most for 2/m: {wait}"
    );
}

fn command_iq(id: &str, domain: &str, node: &str) -> String {
    format!(
        "<iq type='set' id='{id}' to='{domain}'><command \
         xmlns='http://jabber.org/protocol/commands' node='{ADMIN}{node}' action='execute'/></iq>"
    )
}

async fn the_access_file_governs_the_stream(kind: ServerKind) {
    let s = common::started(kind).await;
    let d = common::scratch_dir(&format!("stream-access-{kind}-{}", common::random_hex(4)));
    let access = d.join("access.toml");
    let access = access.to_str().unwrap();
    let plain = common::token(&[
        "add",
        "plain",
        "--access-file",
        access,
        "--allow",
        "user-stats",
    ]);
    let streamer = common::token(&[
        "add",
        "streamer",
        "--access-file",
        access,
        "--allow",
        "user-stats",
        "--stream",
    ]);
    let (proxy, gw) = proxied(s, &["--access-file", access]).await;
    let admin = basic(&s.jid("admin"), &s.password("admin"));
    let domain = domain(s);
    let send = |key: &str, body: String| {
        let (admin, key) = (admin.clone(), key.to_string());
        async move {
            let headers = [
                ("authorization", admin.as_str()),
                ("content-type", "application/xml"),
                ("x-api-key", key.as_str()),
            ];
            http(gw.addr, "POST", "/rest/stream/", &headers, body.as_bytes()).await
        }
    };
    let message = format!("<message to='{}'><body>x</body></message>", s.jid("admin"));
    for body in [message, disco("d1", &domain)] {
        let r = send(&plain, body).await;
        assert_eq!(r.status, 403, "no stream permission: {}", r.text());
    }
    assert_eq!(proxy.connections(), 0, "refused before any login");
    // A command iq follows the node rules, not the stream permission.
    let r = send(&plain, command_iq("c1", &domain, "user-stats")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let iq: Element = r.text().parse().expect("the body is one stanza");
    assert_eq!(iq.attr("id"), Some("c1"), "{}", r.text());
    assert_eq!(proxy.commands(), 1);
    let r = send(&streamer, disco("d2", &domain)).await;
    assert_disco_result(&r, "d2", &domain);
    let r = send(&streamer, command_iq("c2", &domain, "delete-user")).await;
    assert_eq!(r.status, 403, "a node the token may not run: {}", r.text());
    assert_eq!(
        proxy.commands(),
        1,
        "the refused command never reached the server"
    );
}

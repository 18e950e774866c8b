use super::*;
use crate::adhoc::END_USER_SESSION;
use crate::policy::rules::Rate;

fn account() -> BareJid {
    BareJid::new("alice@example.org").unwrap()
}

fn refusal(body: &str) -> String {
    match parse(body.as_bytes(), &account(), None) {
        Ok(o) => panic!("{body} was accepted as {o:?}"),
        Err(Failure::BadRequest(text)) => text,
        Err(other) => panic!("{body} was refused as {other:?}, not as a bad request"),
    }
}

#[test]
fn a_message_without_namespace_is_read_as_jabber_client_and_loses_its_from() {
    let body = "<message from='alice@example.org' to='bob@example.org' type='chat'>\
                <body>hi</body></message>";
    match parse(body.as_bytes(), &account(), None).unwrap() {
        Outbound::OneWay { to, stanza } => {
            assert_eq!(to.unwrap().to_string(), "bob@example.org");
            let text = format!("{stanza:?}");
            assert!(text.contains("hi"), "{text}");
            assert!(!text.contains("from: Some"), "{text}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_foreign_or_full_from_is_refused() {
    for from in [
        "mallory@example.org",
        "alice@example.org/phone",
        "example.org",
        "@@",
    ] {
        let t = refusal(&format!("<message from='{from}' to='bob@example.org'/>"));
        assert!(t.contains("from"), "{t}");
    }
}

#[test]
fn presence_other_than_a_subscription_with_a_to_is_refused() {
    for body in [
        "<presence/>",
        "<presence to='bob@example.org'/>",
        "<presence type='unavailable'/>",
        "<presence type='probe' to='bob@example.org'/>",
        "<presence type='subscribe'/>",
    ] {
        assert!(refusal(body).contains("subscribe"), "{body}");
    }
    let ok = parse(
        b"<presence type='subscribed' to='bob@example.org'/>",
        &account(),
        None,
    );
    assert!(matches!(ok, Ok(Outbound::OneWay { .. })), "{ok:?}");
}

#[test]
fn two_stanzas_a_dtd_stream_elements_and_answers_are_refused() {
    refusal("<message to='a@b'/><message to='a@b'/>");
    refusal("<!DOCTYPE x [<!ENTITY e 'x'>]><message to='a@b'/>");
    refusal("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>");
    refusal("<features xmlns='http://etherx.jabber.org/streams'/>");
    refusal("<iq type='result' id='1'/>");
    refusal("<iq type='get' id='1'/>");
    refusal("<iq type='get' id='1'><a xmlns='urn:a'/><b xmlns='urn:b'/></iq>");
    refusal("<foo/>");
}

#[test]
fn an_iq_keeps_the_clients_id_and_defaults_to_the_account() {
    let body = "<iq type='get' id='mine'><query xmlns='jabber:iq:version'/></iq>";
    match parse(body.as_bytes(), &account(), None).unwrap() {
        Outbound::Iq {
            id, to, payload, ..
        } => {
            assert_eq!(id, "mine");
            assert_eq!(to.to_string(), "alice@example.org");
            assert!(payload.is("query", "jabber:iq:version"));
            assert_eq!(command_node(&payload).unwrap(), None);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_iq_without_an_id_gets_one() {
    let body = "<iq type='get' to='example.org'><ping xmlns='urn:xmpp:ping'/></iq>";
    match parse(body.as_bytes(), &account(), None).unwrap() {
        Outbound::Iq { id, to, .. } => {
            assert!(id.starts_with("xrg-") && id.len() == 20, "{id}");
            assert_eq!(to.to_string(), "example.org");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_paths_jid_is_the_stanzas_to() {
    let bob: Jid = "bob@example.org/phone".parse().unwrap();
    for body in [
        "<message type='chat'><body>hi</body></message>",
        "<message to='bob@example.org/phone'><body>hi</body></message>",
    ] {
        match parse(body.as_bytes(), &account(), Some(&bob)).unwrap() {
            Outbound::OneWay { to, .. } => assert_eq!(to.as_ref(), Some(&bob), "{body}"),
            other => panic!("{other:?}"),
        }
    }
    let iq = "<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>";
    match parse(iq.as_bytes(), &account(), Some(&bob)).unwrap() {
        Outbound::Iq { to, .. } => assert_eq!(to, bob),
        other => panic!("{other:?}"),
    }
    let differs = "<message to='carol@example.org'><body>hi</body></message>";
    match parse(differs.as_bytes(), &account(), Some(&bob)) {
        Err(Failure::BadRequest(text)) => assert!(text.contains("path"), "{text}"),
        other => panic!("{other:?}"),
    }
    assert!(path_jid("bob@@example.org").is_err());
    assert!(path_jid("bob@example.org/phone").is_ok());
}

/// The parser's own errors name its Rust types ("Required attribute field 'id' on Iq::Get
/// element missing"): none reaches a client.
#[test]
fn no_refusal_names_a_rust_type() {
    for body in [
        "<iq id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
        "<iq type='got' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
        "<iq type='get' id='1' to='@@'><ping xmlns='urn:xmpp:ping'/></iq>",
        "<message type='shout' to='bob@example.org'/>",
        "<presence type='subscribe' to='bob@example.org'><priority>high</priority></presence>",
        "<presence type='subscribe' to='bob@example.org'><show>sleeping</show></presence>",
        "<presence type='away' to='bob@example.org'/>",
        "<iq type='set' id='1'><query xmlns='jabber:iq:version'/><error/></iq>",
        "<iq type='error' id='1'><query xmlns='jabber:iq:version'/></iq>",
        "<iq type='result' id='1' to='a@b' from='alice@example.org'><x xmlns='urn:x'/></iq>",
        "<message to='bob@example.org'",
        "<message to='bob@example.org'><body>a</message>",
    ] {
        let text = refusal(body);
        assert!(!text.contains("::"), "{body}: {text}");
    }
}

#[test]
fn a_command_payload_names_its_node() {
    let el: Element = "<command xmlns='http://jabber.org/protocol/commands' node=' n '/>"
        .parse()
        .unwrap();
    assert_eq!(command_node(&el).unwrap(), Some("n"));
    let el: Element = "<command xmlns='http://jabber.org/protocol/commands'/>"
        .parse()
        .unwrap();
    assert!(command_node(&el).is_err());
    for other in [
        "<command xmlns='http://jabber.org/protocol/commands' node='n' sessionid='s'/>",
        "<command xmlns='http://jabber.org/protocol/commands' node='n' action='complete'/>",
        "<command xmlns='http://jabber.org/protocol/commands' node='n' action='cancel'/>",
    ] {
        let el: Element = other.parse().unwrap();
        assert!(command_node(&el).is_err(), "{other}");
    }
}

#[test]
fn end_user_session_with_a_form_is_not_relayed_and_its_form_request_is() {
    let ask =
        format!("<command xmlns='http://jabber.org/protocol/commands' node='{END_USER_SESSION}'/>");
    let el: Element = ask.parse().unwrap();
    assert_eq!(command_node(&el).unwrap(), Some(END_USER_SESSION));
    // A bare JID of an account a gateway is logged in as would end its stream.
    let submit = format!(
        "<command xmlns='http://jabber.org/protocol/commands' node=' {END_USER_SESSION}'>\
         <x xmlns='jabber:x:data' type='submit'>\
         <field var='accountjids'><value>admin@a.org</value></field></x></command>"
    );
    let el: Element = submit.parse().unwrap();
    match command_node(&el) {
        Err(Failure::BadRequest(text)) => assert!(text.contains("/rest/adhoc"), "{text}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_submitted_forms_jids_are_targets() {
    let el: Element = "<command xmlns='http://jabber.org/protocol/commands' node='n'>\
        <x xmlns='jabber:x:data' type='submit'>\
        <field var='accountjid'><value>victim@b.org</value></field>\
        <field var='reason'><value>maintenance</value></field></x></command>"
        .parse()
        .unwrap();
    let to: Jid = "a.org".parse().unwrap();
    assert_eq!(form_domains(&to, &el), ["a.org", "b.org"]);
}

#[test]
fn the_rate_refuses_beyond_its_burst() {
    let rates = StreamRates::new(Rate::parse("2/m").unwrap());
    let a = account();
    assert!(rates.take(&a).is_ok());
    assert!(rates.take(&a).is_ok());
    match rates.take(&a) {
        Err(Failure::StreamRate(wait)) => assert!(wait > std::time::Duration::ZERO),
        other => panic!("{other:?}"),
    }
    let other = BareJid::new("bob@example.org").unwrap();
    assert!(rates.take(&other).is_ok(), "budgets are per account");
}

/// The IQ of `body` checked against `allow`: `Ok` or the 400's text.
fn allowed(allow: &IqAllowList, body: &str) -> Result<(), String> {
    match parse(body.as_bytes(), &account(), None).expect("parses") {
        Outbound::Iq { kind, payload, .. } => allow.check(kind, &payload).map_err(|e| match e {
            Failure::BadRequest(text) => text,
            other => panic!("{body} refused as {other:?}, not as a bad request"),
        }),
        other => panic!("{other:?}"),
    }
}

#[test]
fn only_answer_only_gets_and_commands_are_relayed_unless_the_operator_allows_more() {
    let builtin = IqAllowList::default();
    for (ns, _) in ANSWER_ONLY {
        let get = format!("<iq type='get' id='1' to='example.org'><query xmlns='{ns}'/></iq>");
        assert_eq!(allowed(&builtin, &get), Ok(()), "{ns}");
        let set = get.replace("type='get'", "type='set'");
        let t = allowed(&builtin, &set).expect_err(&set);
        assert!(
            t.contains("get only") && t.contains(&format!("--stream-iq-allow {ns}")),
            "{t}"
        );
    }
    let command = "<iq type='set' id='1' to='example.org'>\
        <command xmlns='http://jabber.org/protocol/commands' node='n'/></iq>";
    assert_eq!(allowed(&builtin, command), Ok(()), "node rules decide");
    // Whatever the `to`: the account itself, a room, another user, the server.
    for (payload, ns) in [
        ("<enable xmlns='urn:xmpp:carbons:2'/>", "urn:xmpp:carbons:2"),
        ("<enable xmlns='urn:xmpp:push:0' jid='push.example.org'/>", "urn:xmpp:push:0"),
        ("<query xmlns='urn:xmpp:mam:2'/>", "urn:xmpp:mam:2"),
        ("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>x</resource></bind>", "urn:ietf:params:xml:ns:xmpp-bind"),
        ("<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/>", "urn:ietf:params:xml:ns:xmpp-session"),
        ("<query xmlns='jabber:iq:privacy'><active name='x'/></query>", "jabber:iq:privacy"),
        ("<query xmlns='jabber:iq:register'><remove/></query>", "jabber:iq:register"),
        ("<block xmlns='urn:xmpp:blocking'><item jid='example.org'/></block>", "urn:xmpp:blocking"),
        ("<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node='n' jid='alice@example.org'/></pubsub>", "http://jabber.org/protocol/pubsub"),
    ] {
        for to in ["", " to='alice@example.org'", " to='room@muc.example.org'", " to='example.org'"] {
            let body = format!("<iq type='set' id='1'{to}>{payload}</iq>");
            let t = allowed(&builtin, &body).expect_err(&body);
            assert!(t.contains(&format!("xmlns='{ns}'")) && t.contains(&format!("--stream-iq-allow {ns}")), "{t}");
        }
    }
    for get in [
        "<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>",
        "<iq type='get' id='1' to='room@muc.example.org'><query xmlns='urn:xmpp:mam:2'/></iq>",
        "<iq type='get' id='1'><query xmlns='jabber:iq:privacy'/></iq>",
    ] {
        assert!(allowed(&builtin, get).is_err(), "{get}");
    }
    let operator = IqAllowList::new(&["jabber:iq:private".to_owned()]);
    let private =
        "<iq type='set' id='1'><query xmlns='jabber:iq:private'><x xmlns='urn:x'/></query></iq>";
    assert!(allowed(&builtin, private).is_err());
    assert_eq!(
        allowed(&operator, private),
        Ok(()),
        "an operator's namespace: get or set"
    );
    let carbons = "<iq type='set' id='1'><enable xmlns='urn:xmpp:carbons:2'/></iq>";
    assert!(
        allowed(&operator, carbons).is_err(),
        "only what the operator named"
    );
}

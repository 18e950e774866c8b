//! CPU per command IQ on the two XML paths, in this process, no network: the tree path
//! (minidom element, xso `Iq`, serialised; a reply parsed by rxml into minidom, then `Iq` and
//! `CommandReply::parse`) against `adhoc::wire` (`write_command`, `read_reply`). The reply is
//! the ejabberd user-stats answer of the recorded transcripts. Run in release:
//! `cargo run --release --example wire_cost`.

use std::hint::black_box;
use std::time::Instant;

use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::jid::Jid;
use xmpp_rest_gateway::adhoc::wire::{read_reply, write_command};
use xmpp_rest_gateway::adhoc::xep0050::{Command, CommandReply, Field, Form};

const REPLY: &[u8] =
    include_bytes!("../tests/fixtures/fuzz/xep0050-reply/ejabberd-h-user-stats-cmd3.xml");
const ROUNDS: u32 = 50_000;

fn command() -> Command {
    Command::execute(
        "http://jabber.org/protocol/admin#user-stats",
        Some(Form::submit(vec![
            Field {
                var: Some("FORM_TYPE".into()),
                type_: Some("hidden".into()),
                values: vec!["http://jabber.org/protocol/admin".into()],
                ..Field::default()
            },
            Field {
                var: Some("accountjid".into()),
                type_: Some("jid-single".into()),
                values: vec!["user11@example.test".into()],
                ..Field::default()
            },
        ])),
    )
}

fn per_round(what: &str, mut f: impl FnMut()) {
    for _ in 0..ROUNDS / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..ROUNDS {
        f();
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS);
    println!("{what:<40} {us:>7.2} µs");
}

fn main() {
    let cmd = command();
    let to: Jid = "example.test".parse().expect("a JID");
    per_round("tree: write the command IQ", || {
        let iq = Iq::Set {
            from: None,
            to: Some(to.clone()),
            id: "abcdef0123456789".into(),
            payload: cmd.to_element(),
        };
        black_box(String::from(&Element::from(iq)));
    });
    let mut buf = Vec::with_capacity(1024);
    per_round("wire: write the command IQ", || {
        buf.clear();
        write_command(&mut buf, "example.test", "abcdef0123456789", &cmd).expect("writes");
        black_box(&buf);
    });
    per_round("tree: read the user-stats reply", || {
        let el = Element::from_reader_with_prefixes(REPLY, String::from("jabber:client"))
            .expect("parses");
        if let Ok(Iq::Result {
            payload: Some(p), ..
        }) = Iq::try_from(el)
        {
            black_box(CommandReply::parse(&p));
        }
    });
    per_round("wire: read the user-stats reply", || {
        black_box(read_reply(REPLY).expect("reads"));
    });
}

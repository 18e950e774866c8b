use super::*;

fn text(s: &str) -> String {
    Value {
        s: s.into(),
        json: false,
    }
    .to_string()
}

#[test]
fn a_sane_request_id_is_kept_and_anything_else_refused() {
    assert_eq!(sane_request_id(b"abc-DEF_1.2"), Some("abc-DEF_1.2"));
    assert_eq!(sane_request_id(&[b'a'; 64]), Some(&*"a".repeat(64)));
    for insane in [
        &b""[..],
        &[b'a'; 65][..],
        b"a b",
        b"a\nb",
        b"a=b",
        b"\"a\"",
        "é".as_bytes(),
        b"a/b",
    ] {
        assert_eq!(sane_request_id(insane), None, "{insane:?}");
    }
}

#[test]
fn generated_request_ids_are_sane_and_differ() {
    let (a, b) = (new_request_id(), new_request_id());
    assert_eq!(a.len(), 16);
    assert_eq!(sane_request_id(a.as_bytes()), Some(a.as_str()));
    assert_ne!(a, b);
}

#[test]
fn text_values_are_dashes_bare_or_quoted() {
    assert_eq!(text(""), "-");
    assert_eq!(text("admin@example.org"), "admin@example.org");
    assert_eq!(text("a@x,b@y/phone"), "a@x,b@y/phone");
    assert_eq!(text("2001:db8::1"), "2001:db8::1");
    // A literal dash must not read as "not applicable".
    assert_eq!(text("-"), "\"-\"");
    assert_eq!(text("a b"), "\"a b\"");
    assert_eq!(text("x\ny status=200"), "\"x\\ny status=200\"");
    assert_eq!(text("a=b"), "\"a=b\"");
    assert_eq!(text("q\"uote"), "\"q\\\"uote\"");
}

#[test]
fn json_values_are_as_is() {
    assert_eq!(
        Value {
            s: "".into(),
            json: true
        }
        .to_string(),
        ""
    );
    assert_eq!(
        Value {
            s: "a b".into(),
            json: true
        }
        .to_string(),
        "a b"
    );
}

/// The line `emit_as` writes, in text or JSON.
fn line(json: bool, rec: &Record, status: u16, condition: &str) -> String {
    let out = Arc::new(Mutex::new(Vec::new()));
    let w = out.clone();
    let make = move || Sink(w.clone());
    let sub = tracing_subscriber::fmt().with_writer(make).with_ansi(false);
    let sub: Box<dyn tracing::Subscriber + Send + Sync> = match json {
        true => Box::new(sub.json().finish()),
        false => Box::new(sub.finish()),
    };
    tracing::subscriber::with_default(sub, || rec.emit_as(json, status, condition));
    let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
    text
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn refused() -> Record {
    let mut r = Record::new("r1".into(), "10.0.0.1".into(), "x y".into(), "POST");
    r.account = "admin@example.org".into();
    r
}

#[test]
fn the_text_line_has_every_key_once_with_dashes() {
    let l = line(false, &refused(), 403, "forbidden");
    let want = "request_id=r1 client=10.0.0.1 account=admin@example.org token=- \
                jid=\"x y\" node=- action=POST subjects=- status=403 condition=forbidden ms=";
    assert!(l.contains(want), "{l}");
    assert!(
        l.trim_end().ends_with(" forwarded_to=- forwarded_from=-"),
        "{l}"
    );
    assert_eq!(l.lines().count(), 1, "{l}");
    assert!(l.contains(" audit: "), "{l}");
}

#[test]
fn the_json_line_has_every_key_with_empty_strings() {
    let l = line(true, &refused(), 200, "");
    let v: serde_json::Value = serde_json::from_str(l.trim()).unwrap();
    assert_eq!(v["target"], "audit");
    let f = &v["fields"];
    for (k, want) in [
        ("request_id", "r1"),
        ("client", "10.0.0.1"),
        ("account", "admin@example.org"),
        ("token", ""),
        ("jid", "x y"),
        ("node", ""),
        ("action", "POST"),
        ("subjects", ""),
        ("condition", ""),
        ("forwarded_to", ""),
        ("forwarded_from", ""),
    ] {
        assert_eq!(f[k], want, "{k}: {l}");
    }
    assert_eq!(f["status"], 200);
    assert!(f["ms"].is_u64(), "{l}");
}

#[tokio::test]
async fn notes_fill_the_record_in_scope_and_nothing_outside() {
    note_account(&"outside@example.org");
    let rec = Arc::new(Mutex::new(Record::new(
        "r1".into(),
        "127.0.0.1".into(),
        "example.org".into(),
        "POST",
    )));
    scope(rec.clone(), async {
        note_account(&"admin@example.org");
        note_token("ops");
        note_node("http://jabber.org/protocol/admin#end-user-session");
        note_action("execute");
        note_subjects(["a@example.org", " b@example.org ", "a@example.org", ""]);
    })
    .await;
    let r = rec.lock().unwrap().clone();
    assert_eq!(r.account, "admin@example.org");
    assert_eq!(r.token, "ops");
    assert_eq!(r.node, "http://jabber.org/protocol/admin#end-user-session");
    assert_eq!(r.action, "execute");
    assert_eq!(r.subjects, ["a@example.org", "b@example.org"]);
}

#[tokio::test]
async fn what_a_client_chooses_is_bounded_on_the_line() {
    let rec = Arc::new(Mutex::new(Record::new(
        "r2".into(),
        "127.0.0.1".into(),
        "example.org".into(),
        "POST",
    )));
    let many: Vec<String> = (0..MAX_SUBJECTS + 5)
        .map(|i| format!("u{i}@example.org"))
        .collect();
    let long = format!("{}é", "n".repeat(MAX_VALUE - 1));
    scope(rec.clone(), async {
        note_subjects(many.iter().map(String::as_str));
        note_node(&long);
        note_action(&"a".repeat(10 * MAX_VALUE));
    })
    .await;
    let r = rec.lock().unwrap().clone();
    assert_eq!(r.subjects.len(), MAX_SUBJECTS);
    assert_eq!(r.more_subjects, 5);
    // é does not fit whole: cut before it, with the marker.
    assert_eq!(r.node, format!("{}...[+2]", "n".repeat(MAX_VALUE - 1)));
    assert_eq!(
        r.action,
        format!("{}...[+{}]", "a".repeat(MAX_VALUE), 9 * MAX_VALUE)
    );
    // The URL's JID and every other value, on the line itself.
    let long_jid = Record::new("r3".into(), "c".into(), "j".repeat(15_000), "POST");
    for json in [false, true] {
        let l = line(json, &long_jid, 400, "bad-request");
        assert!(l.len() < 2 * MAX_VALUE + 300, "{} bytes", l.len());
        assert!(l.contains(&format!("...[+{}]", 15_000 - MAX_VALUE)), "{l}");
    }
}

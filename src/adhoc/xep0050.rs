//! XEP-0050 `<command/>` and the XEP-0004 data form it carries, including the multi-item
//! `<reported/>` + `<item/>` tables that xmpp-parsers drops. The gateway writes and reads them
//! as bytes (`adhoc::wire`); the minidom tree path here (`to_element`, `parse`: built with
//! minidom's builder, so every value is escaped by construction; parsed leniently, since
//! servers differ) is the reference `wire` is held equal to, and builds only for the tests,
//! the fuzz targets and the examples (`cfg(test)` or the `test-client` feature).

#[cfg(any(test, feature = "test-client"))]
use tokio_xmpp::minidom::Element;

/// The ad-hoc commands namespace.
pub const NS_COMMANDS: &str = "http://jabber.org/protocol/commands";
/// The data forms namespace.
pub const NS_DATA: &str = "jabber:x:data";

/// A `<command/>` request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Command {
    pub node: String,
    pub action: Option<String>,
    pub sessionid: Option<String>,
    pub form: Option<Form>,
}

impl Command {
    /// `action='execute'` of `node`, with a submitted form or none.
    pub fn execute(node: &str, form: Option<Form>) -> Self {
        Self {
            node: node.to_string(),
            action: Some("execute".into()),
            sessionid: None,
            form,
        }
    }

    /// The next step of the upstream session `sessionid`.
    pub fn step(node: &str, action: &str, sessionid: &str, form: Option<Form>) -> Self {
        Self {
            node: node.to_string(),
            action: Some(action.to_string()),
            sessionid: Some(sessionid.to_string()),
            form,
        }
    }

    /// The `<command/>` payload of an `<iq type='set'/>`.
    #[cfg(any(test, feature = "test-client"))]
    pub fn to_element(&self) -> Element {
        let mut b = Element::builder("command", NS_COMMANDS).attr(name("node"), self.node.as_str());
        if let Some(a) = &self.action {
            b = b.attr(name("action"), a.as_str());
        }
        if let Some(s) = &self.sessionid {
            b = b.attr(name("sessionid"), s.as_str());
        }
        if let Some(f) = &self.form {
            b = b.append(f.to_element());
        }
        b.build()
    }
}

/// `executing`, `completed` or `canceled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Executing,
    Completed,
    Canceled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Executing => "executing",
            Status::Completed => "completed",
            Status::Canceled => "canceled",
        }
    }
}

/// A `<note/>` of a command result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub type_: String,
    pub text: String,
}

/// A `<command/>` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandReply {
    pub node: String,
    pub sessionid: Option<String>,
    pub status: Status,
    /// The actions offered (`<actions>` children), in order.
    pub actions: Vec<String>,
    /// The `execute` attribute of `<actions>`: the default action.
    pub default_action: Option<String>,
    pub notes: Vec<Note>,
    pub form: Option<Form>,
}

impl CommandReply {
    /// Reads a `<command/>` answer; `None` when the element is not one.
    #[cfg(any(test, feature = "test-client"))]
    pub fn parse(el: &Element) -> Option<Self> {
        if !el.is("command", NS_COMMANDS) {
            return None;
        }
        let status = match el.attr("status") {
            Some("executing") => Status::Executing,
            Some("canceled") => Status::Canceled,
            // Servers omit it for a finished one-stage command now and then.
            _ => Status::Completed,
        };
        let actions_el = el.get_child("actions", NS_COMMANDS);
        Some(Self {
            node: el.attr("node").unwrap_or_default().to_string(),
            sessionid: el.attr("sessionid").map(str::to_string),
            status,
            actions: actions_el
                .map(|a| a.children().map(|c| c.name().to_string()).collect())
                .unwrap_or_default(),
            default_action: actions_el
                .and_then(|a| a.attr("execute"))
                .map(str::to_string),
            notes: el
                .children()
                .filter(|c| c.is("note", NS_COMMANDS))
                .map(|n| Note {
                    type_: n.attr("type").unwrap_or("info").to_string(),
                    text: n.text(),
                })
                .collect(),
            form: el.get_child("x", NS_DATA).map(Form::parse),
        })
    }

    /// The action that submits the current stage: the server's default, else `complete`
    /// when offered, else `execute`.
    pub fn submit_action(&self) -> &str {
        match &self.default_action {
            Some(a) => a,
            None if self.actions.iter().any(|a| a == "complete") => "complete",
            None => "execute",
        }
    }
}

/// A data form (`<x xmlns='jabber:x:data'/>`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    /// `form`, `submit`, `result` or `cancel`.
    pub type_: String,
    pub title: Option<String>,
    pub instructions: Option<String>,
    pub fields: Vec<Field>,
    /// The columns of a multi-item result.
    pub reported: Option<Vec<Field>>,
    /// The rows of a multi-item result.
    pub items: Vec<Vec<Field>>,
}

/// One `<field/>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Field {
    pub var: Option<String>,
    pub type_: Option<String>,
    pub label: Option<String>,
    pub desc: Option<String>,
    pub required: bool,
    pub values: Vec<String>,
    pub options: Vec<FieldOption>,
}

/// One `<option/>` of a list field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldOption {
    pub label: Option<String>,
    pub value: String,
}

/// XEP-0004's field types that take several values (the wire model's own list; the REST
/// document's is `rest::MULTI_TYPES`, and a test holds the two equal).
pub const MULTI_TYPES: [&str; 3] = ["jid-multi", "list-multi", "text-multi"];

impl Field {
    /// Whether the field takes several values (`*-multi`); a field without a type does not.
    pub fn is_multi(&self) -> bool {
        self.type_
            .as_deref()
            .is_some_and(|t| MULTI_TYPES.contains(&t))
    }

    #[cfg(any(test, feature = "test-client"))]
    fn parse(el: &Element) -> Self {
        let text_of = |n: &str| el.get_child(n, NS_DATA).map(|c| c.text());
        Self {
            var: el.attr("var").map(str::to_string),
            type_: el.attr("type").map(str::to_string),
            label: el.attr("label").map(str::to_string),
            desc: text_of("desc"),
            required: el.has_child("required", NS_DATA),
            values: el
                .children()
                .filter(|c| c.is("value", NS_DATA))
                .map(|v| v.text())
                .collect(),
            options: el
                .children()
                .filter(|c| c.is("option", NS_DATA))
                .map(|o| FieldOption {
                    label: o.attr("label").map(str::to_string),
                    value: o
                        .get_child("value", NS_DATA)
                        .map(|v| v.text())
                        .unwrap_or_default(),
                })
                .collect(),
        }
    }

    #[cfg(any(test, feature = "test-client"))]
    fn to_element(&self) -> Element {
        let mut b = Element::builder("field", NS_DATA);
        if let Some(v) = &self.var {
            b = b.attr(name("var"), v.as_str());
        }
        if let Some(t) = &self.type_ {
            b = b.attr(name("type"), t.as_str());
        }
        b.append_all(self.values.iter().map(|v| {
            Element::builder("value", NS_DATA)
                .append(v.as_str())
                .build()
        }))
        .build()
    }
}

impl Form {
    /// Reads a data form leniently: unknown children are ignored.
    #[cfg(any(test, feature = "test-client"))]
    pub fn parse(el: &Element) -> Self {
        let text_of = |n: &str| el.get_child(n, NS_DATA).map(|c| c.text());
        let fields_of = |e: &Element| -> Vec<Field> {
            e.children()
                .filter(|c| c.is("field", NS_DATA))
                .map(Field::parse)
                .collect()
        };
        Self {
            type_: el.attr("type").unwrap_or("form").to_string(),
            title: text_of("title"),
            instructions: text_of("instructions"),
            fields: fields_of(el),
            reported: el.get_child("reported", NS_DATA).map(fields_of),
            items: el
                .children()
                .filter(|c| c.is("item", NS_DATA))
                .map(fields_of)
                .collect(),
        }
    }

    /// A submit form with these fields (var, type and values only, as XEP-0004 wants).
    pub fn submit(fields: Vec<Field>) -> Self {
        Self {
            type_: "submit".into(),
            fields,
            ..Self::default()
        }
    }

    /// The `<x/>` element; only what a submission carries.
    #[cfg(any(test, feature = "test-client"))]
    pub fn to_element(&self) -> Element {
        Element::builder("x", NS_DATA)
            .attr(name("type"), self.type_.as_str())
            .append_all(self.fields.iter().map(Field::to_element))
            .build()
    }

    /// The field named `var`.
    pub fn field(&self, var: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.var.as_deref() == Some(var))
    }
}

#[cfg(any(test, feature = "test-client"))]
fn name(s: &'static str) -> rxml::NcName {
    // The attribute names used here are constant and valid NCNames.
    rxml::NcName::try_from(s).expect("constant attribute name")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(s: &str) -> Element {
        s.parse().unwrap()
    }

    #[test]
    fn parses_an_executing_stage_with_its_form() {
        let e = el(
            "<command xmlns='http://jabber.org/protocol/commands' node='n' \
            sessionid='s1' status='executing'><actions execute='complete'><next/><complete/>\
            </actions><x xmlns='jabber:x:data' type='form'><title>T</title>\
            <instructions>I</instructions><field type='hidden' var='FORM_TYPE'><value>x</value>\
            </field><field type='list-single' var='max' label='Max'><required/><desc>d</desc>\
            <value>25</value><option label='25'><value>25</value></option><option>\
            <value>50</value></option></field></x></command>",
        );
        let r = CommandReply::parse(&e).unwrap();
        assert_eq!(r.status, Status::Executing);
        assert_eq!(r.sessionid.as_deref(), Some("s1"));
        assert_eq!(r.actions, vec!["next", "complete"]);
        assert_eq!(r.submit_action(), "complete");
        let f = r.form.unwrap();
        assert_eq!(f.title.as_deref(), Some("T"));
        let max = f.field("max").unwrap();
        assert!(max.required);
        assert_eq!(max.desc.as_deref(), Some("d"));
        assert_eq!(max.options.len(), 2);
        assert_eq!(max.options[1].label, None);
    }

    #[test]
    fn parses_notes_and_reported_tables() {
        let e = el(
            "<command xmlns='http://jabber.org/protocol/commands' node='n' \
            status='completed'><note type='warn'>a &amp; b</note><note>c</note>\
            <x xmlns='jabber:x:data' type='result'><reported><field var='jid' label='JID'/>\
            </reported><item><field var='jid'><value>a@b</value></field></item>\
            <item><field var='jid'><value>c@d</value></field></item></x></command>",
        );
        let r = CommandReply::parse(&e).unwrap();
        assert_eq!(r.status, Status::Completed);
        assert_eq!(r.notes[0].text, "a & b");
        assert_eq!(r.notes[1].type_, "info");
        let f = r.form.unwrap();
        assert_eq!(f.reported.unwrap()[0].label.as_deref(), Some("JID"));
        assert_eq!(f.items.len(), 2);
        assert_eq!(f.items[1][0].values, vec!["c@d"]);
    }

    #[test]
    fn builds_a_submission_with_escaped_values() {
        let form = Form::submit(vec![Field {
            var: Some("x".into()),
            type_: Some("text-single".into()),
            values: vec!["<a & 'b'>".into()],
            ..Field::default()
        }]);
        let iq = Command::step("n", "complete", "s", Some(form)).to_element();
        let back = Form::parse(iq.get_child("x", NS_DATA).unwrap());
        assert_eq!(back.fields[0].values, vec!["<a & 'b'>"]);
        assert_eq!(iq.attr("sessionid"), Some("s"));
    }

    #[test]
    fn other_elements_are_not_commands() {
        assert!(CommandReply::parse(&el("<query xmlns='jabber:iq:version'/>")).is_none());
    }

    #[test]
    fn the_wire_and_the_document_agree_on_multi_valued_types() {
        assert_eq!(MULTI_TYPES, crate::rest::MULTI_TYPES);
        let typed = |t: Option<&str>| Field {
            type_: t.map(str::to_string),
            ..Field::default()
        };
        assert!(typed(Some("jid-multi")).is_multi());
        assert!(!typed(Some("jid-single")).is_multi());
        assert!(!typed(None).is_multi());
    }
}

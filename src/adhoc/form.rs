//! Filling a server's form from the client's fields, and the checks that make a mistake a 400
//! naming the field, the same on both servers (Prosody would answer an error note, ejabberd
//! an `item-not-found`, neither naming the field).

use std::collections::HashSet;

use super::address::parse_jid;
use super::xep0050::{Field, Form};
use crate::rest::RequestField;

/// A client field the form cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {field:?}: {text}")]
pub struct FieldError {
    pub field: String,
    pub text: String,
}

fn err(field: &str, text: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_string(),
        text: text.into(),
    }
}

/// The submit form for `form` filled from `client`: every field of the form that has a value
/// (the client's, else the form's default; `FORM_TYPE` copied), checked. A JID-list field
/// takes at most `max_jids` JIDs, so that no request fans out without bound.
pub fn fill(form: &Form, client: &[RequestField], max_jids: usize) -> Result<Form, FieldError> {
    let mut seen = HashSet::with_capacity(client.len());
    for c in client {
        if form.field(&c.var).is_none() {
            return Err(err(&c.var, "the command's form has no such field"));
        }
        if !seen.insert(c.var.as_str()) {
            return Err(err(&c.var, "given more than once"));
        }
    }
    let mut out = Vec::with_capacity(form.fields.len());
    for f in &form.fields {
        let Some(var) = f.var.as_deref() else {
            continue;
        };
        if f.type_.as_deref() == Some("fixed") {
            continue;
        }
        let given = client.iter().find(|c| c.var == var);
        // An empty answer to a required field falls back to the form's default, if any.
        let values = match given.and_then(|c| c.value.as_ref()) {
            Some(v) if !f.required || v.as_slice().iter().any(|s| !s.is_empty()) => {
                v.as_slice().to_vec()
            }
            _ => f.values.clone(),
        };
        check(f, var, &values)?;
        if f.type_.as_deref() == Some("jid-multi") && values.len() > max_jids {
            return Err(too_many_jids(var, max_jids));
        }
        if given.is_some() && matches!(f.type_.as_deref(), Some("jid-single" | "jid-multi")) {
            // The accounts the command acts on, for the audit line: JID fields only.
            crate::audit::note_subjects(values.iter().map(String::as_str));
        }
        if !values.is_empty() {
            out.push(Field {
                var: Some(var.to_string()),
                type_: f.type_.clone(),
                values,
                ..Field::default()
            });
        }
    }
    Ok(Form::submit(out))
}

/// The error for a JID list longer than the gateway takes.
pub fn too_many_jids(var: &str, max_jids: usize) -> FieldError {
    err(
        var,
        format!("at most {max_jids} JIDs per request (the gateway's --max-jids)"),
    )
}

/// The checks of one field's values against its definition.
fn check(f: &Field, var: &str, values: &[String]) -> Result<(), FieldError> {
    let nonempty = values.iter().any(|v| !v.is_empty());
    if f.required && !nonempty {
        return Err(err(var, "a value is required"));
    }
    if !f.is_multi() && values.len() > 1 {
        return Err(err(var, "takes a single value"));
    }
    let type_ = f.type_.as_deref().unwrap_or("text-single");
    for v in values.iter().filter(|v| !v.is_empty()) {
        match type_ {
            "jid-single" | "jid-multi" if parse_jid(v).is_none() => {
                return Err(err(var, format!("{v:?} is not a JID")));
            }
            "boolean" if !matches!(v.as_str(), "0" | "1" | "true" | "false") => {
                return Err(err(var, "takes true, false, 1 or 0"));
            }
            "list-single" | "list-multi"
                if !f.options.is_empty() && !f.options.iter().any(|o| &o.value == v) =>
            {
                let allowed: Vec<&str> = f.options.iter().map(|o| o.value.as_str()).collect();
                return Err(err(var, format!("{v:?} is not one of {allowed:?}")));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adhoc::xep0050::FieldOption;
    use crate::rest::FieldValue;

    fn field(var: &str, type_: &str, required: bool, values: &[&str]) -> Field {
        Field {
            var: Some(var.into()),
            type_: Some(type_.into()),
            required,
            values: values.iter().map(|v| v.to_string()).collect(),
            ..Field::default()
        }
    }

    fn form() -> Form {
        let mut max = field("max_items", "list-single", false, &["25"]);
        max.options = ["25", "50"]
            .iter()
            .map(|v| FieldOption {
                label: None,
                value: v.to_string(),
            })
            .collect();
        Form {
            type_: "form".into(),
            fields: vec![
                field(
                    "FORM_TYPE",
                    "hidden",
                    false,
                    &["http://jabber.org/protocol/admin"],
                ),
                field("accountjids", "jid-multi", true, &[]),
                field("details", "boolean", false, &[]),
                field("note", "fixed", false, &["read me"]),
                max,
            ],
            ..Form::default()
        }
    }

    fn c(var: &str, v: FieldValue) -> RequestField {
        RequestField {
            var: var.into(),
            value: Some(v),
        }
    }

    fn one(v: &str) -> FieldValue {
        FieldValue::Single(v.into())
    }

    #[test]
    fn fills_with_form_type_and_defaults() {
        let f = fill(
            &form(),
            &[c("accountjids", FieldValue::List(vec!["a@b".into()]))],
            100,
        )
        .unwrap();
        let vars: Vec<_> = f.fields.iter().map(|f| f.var.clone().unwrap()).collect();
        assert_eq!(vars, ["FORM_TYPE", "accountjids", "max_items"]);
        assert_eq!(f.type_, "submit");
    }

    #[test]
    fn names_the_field_at_fault() {
        let cases = [
            (vec![], "accountjids"),
            (vec![c("accountjids", one("@@bad jid"))], "accountjids"),
            (
                vec![c("accountjids", one("a@b")), c("nope", one("x"))],
                "nope",
            ),
            (
                vec![c("accountjids", one("a@b")), c("max_items", one("7"))],
                "max_items",
            ),
            (
                vec![c("accountjids", one("a@b")), c("details", one("yes"))],
                "details",
            ),
            (
                vec![
                    c("accountjids", one("a@b")),
                    c(
                        "max_items",
                        FieldValue::List(vec!["25".into(), "50".into()]),
                    ),
                ],
                "max_items",
            ),
        ];
        for (client, at_fault) in cases {
            assert_eq!(fill(&form(), &client, 100).unwrap_err().field, at_fault);
        }
    }

    #[test]
    fn a_jid_list_beyond_the_bound_names_the_field() {
        let jids = |n: usize| FieldValue::List((0..n).map(|i| format!("u{i}@b")).collect());
        assert!(fill(&form(), &[c("accountjids", jids(3))], 3).is_ok());
        let e = fill(&form(), &[c("accountjids", jids(4))], 3).unwrap_err();
        assert_eq!(e.field, "accountjids");
        assert!(e.text.contains("at most 3"), "{}", e.text);
    }

    #[test]
    fn a_one_element_list_fills_a_single_field() {
        let client = [
            c("accountjids", one("a@b")),
            c("max_items", FieldValue::List(vec!["50".into()])),
        ];
        let f = fill(&form(), &client, 100).unwrap();
        assert_eq!(f.field("max_items").unwrap().values, vec!["50"]);
    }

    #[test]
    fn a_required_field_with_a_default_takes_it() {
        let mut fm = form();
        fm.fields[1].values = vec!["d@e".into()];
        let f = fill(&fm, &[], 100).unwrap();
        assert_eq!(f.field("accountjids").unwrap().values, vec!["d@e"]);
    }
}

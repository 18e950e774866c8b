//! Which format a request body and a response speak. Tigase's `?type=` decides both when given
//! (`text/xml` and `application/xml` mean XML, `application/json` JSON), so a Tigase script may
//! post with curl's default form content type. Otherwise the body is read by its
//! `Content-Type`, and the response speaks what an `Accept` header prefers, then the request's
//! `Content-Type`, then XML (Tigase's default).

use crate::rest::Format;

/// The format of a request body, from its `Content-Type`; `None` for anything else.
pub fn body_format(content_type: Option<&str>) -> Option<Format> {
    match essence(content_type?).as_str() {
        "application/xml" | "text/xml" => Some(Format::Xml),
        "application/json" => Some(Format::Json),
        _ => None,
    }
}

/// The format `?type=` names.
pub fn type_param(t: &str) -> Result<Format, NotAcceptable> {
    match essence(t).as_str() {
        "application/json" => Ok(Format::Json),
        "application/xml" | "text/xml" => Ok(Format::Xml),
        _ => Err(NotAcceptable(format!(
            "type={t:?}: only text/xml, application/xml and application/json are served"
        ))),
    }
}

/// The format of a request body: `?type=`'s when given, else its `Content-Type`'s (`None`:
/// neither XML nor JSON, a 415).
pub fn request_format(
    query_type: Option<&str>,
    content_type: Option<&str>,
) -> Result<Option<Format>, NotAcceptable> {
    match query_type {
        Some(t) => type_param(t).map(Some),
        None => Ok(body_format(content_type)),
    }
}

/// Why no format could be chosen: the client asked for one we do not speak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAcceptable(pub String);

/// Chooses the response format, first match wins.
pub fn response_format(
    query_type: Option<&str>,
    accept: Option<&str>,
    content_type: Option<&str>,
) -> Result<Format, NotAcceptable> {
    if let Some(t) = query_type {
        return type_param(t);
    }
    if let Some(accept) = accept.filter(|a| !a.trim().is_empty()) {
        let xml = preference(accept, &["application/xml", "text/xml"]);
        let json = preference(accept, &["application/json"]);
        match (xml.q > 0.0, json.q > 0.0) {
            (false, false) => {
                return Err(NotAcceptable(
                    "Accept admits neither application/xml nor application/json".into(),
                ))
            }
            (true, false) => return Ok(Format::Xml),
            (false, true) => return Ok(Format::Json),
            (true, true) if xml.explicit != json.explicit => {
                return Ok(if xml.explicit {
                    Format::Xml
                } else {
                    Format::Json
                });
            }
            (true, true) if xml.q != json.q => {
                return Ok(if xml.q > json.q {
                    Format::Xml
                } else {
                    Format::Json
                });
            }
            _ => {}
        }
    }
    Ok(body_format(content_type).unwrap_or(Format::Xml))
}

/// How much an `Accept` header wants one of `types`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Preference {
    q: f32,
    /// Named exactly rather than matched by `*/*` or `type/*`.
    explicit: bool,
}

fn preference(accept: &str, types: &[&str]) -> Preference {
    // The most specific matching range decides, as RFC 9110 wants.
    let mut best: Option<(u8, f32)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
            .filter_map(|v| v.trim().parse::<f32>().ok())
            .next()
            .unwrap_or(1.0)
            .clamp(0.0, 1.0);
        let specificity = types
            .iter()
            .filter_map(|t| {
                let major = t.split('/').next().unwrap_or_default();
                if media == *t {
                    Some(2)
                } else if media == format!("{major}/*") {
                    Some(1)
                } else if media == "*/*" {
                    Some(0)
                } else {
                    None
                }
            })
            .max();
        if let Some(s) = specificity {
            match best {
                Some((bs, bq)) if bs > s || (bs == s && bq >= q) => {}
                _ => best = Some((s, q)),
            }
        }
    }
    match best {
        Some((s, q)) => Preference {
            q,
            explicit: s == 2,
        },
        None => Preference {
            q: 0.0,
            explicit: false,
        },
    }
}

/// `Application/JSON; charset=utf-8` -> `application/json`.
fn essence(media: &str) -> String {
    media
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Format::*;

    fn f(q: Option<&str>, a: Option<&str>, c: Option<&str>) -> Result<Format, NotAcceptable> {
        response_format(q, a, c)
    }

    #[test]
    fn curl_default_accept_is_no_preference() {
        assert_eq!(f(None, Some("*/*"), Some("application/json")), Ok(Json));
        assert_eq!(f(None, Some("*/*"), Some("application/xml")), Ok(Xml));
        assert_eq!(
            f(None, None, Some("application/json; charset=utf-8")),
            Ok(Json)
        );
        assert_eq!(f(None, None, None), Ok(Xml));
    }

    #[test]
    fn query_type_wins_and_other_values_are_406() {
        assert_eq!(
            f(Some("application/json"), Some("application/xml"), None),
            Ok(Json)
        );
        assert!(f(Some("text/html"), None, None).is_err());
        assert_eq!(f(Some("text/xml"), Some("application/json"), None), Ok(Xml));
    }

    #[test]
    fn the_type_parameter_reads_the_body_whatever_its_content_type() {
        let form = Some("application/x-www-form-urlencoded");
        assert_eq!(request_format(Some("text/xml"), form), Ok(Some(Xml)));
        assert_eq!(request_format(Some("application/xml"), form), Ok(Some(Xml)));
        assert_eq!(
            request_format(Some("application/json"), form),
            Ok(Some(Json))
        );
        assert!(request_format(Some("text/html"), form).is_err());
        assert_eq!(request_format(None, form), Ok(None), "415 without type");
        assert_eq!(request_format(None, Some("text/xml")), Ok(Some(Xml)));
    }

    #[test]
    fn accept_with_q_values() {
        let ct = Some("application/xml");
        assert_eq!(f(None, Some("application/json"), ct), Ok(Json));
        assert_eq!(
            f(None, Some("application/xml;q=0.5, application/json"), ct),
            Ok(Json)
        );
        assert_eq!(
            f(
                None,
                Some("application/json;q=0.2, application/xml;q=0.9"),
                None
            ),
            Ok(Xml)
        );
        assert_eq!(f(None, Some("application/json;q=0.1, */*"), ct), Ok(Json));
        assert_eq!(f(None, Some("text/*"), Some("application/json")), Ok(Xml));
        assert_eq!(
            f(None, Some("application/json, application/xml"), ct),
            Ok(Xml)
        );
        assert_eq!(
            f(
                None,
                Some("application/json, text/xml"),
                Some("application/json")
            ),
            Ok(Json)
        );
        assert_eq!(f(None, Some("*/*, application/json;q=0"), ct), Ok(Xml));
    }

    #[test]
    fn accept_admitting_neither_is_406() {
        assert!(f(None, Some("text/html"), None).is_err());
        assert!(f(
            None,
            Some("application/json;q=0, application/xml;q=0"),
            None
        )
        .is_err());
    }

    #[test]
    fn body_formats() {
        assert_eq!(body_format(Some("text/xml")), Some(Xml));
        assert_eq!(body_format(Some("application/x-www-form-urlencoded")), None);
        assert_eq!(body_format(None), None);
    }
}

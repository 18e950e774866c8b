//! The query string of a request: `type` (Tigase's way to choose the response format), `keep`
//! (hold the upstream command session open) and `api-key`, decoded the way browsers and curl
//! encode forms (`application/x-www-form-urlencoded`: `%XX` escapes, `+` for a space).

use serde::Deserialize;

/// The parameters the gateway reads; any other parameter is ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct QueryParams {
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub keep: Option<String>,
    #[serde(rename = "api-key")]
    pub api_key: Option<String>,
}

/// Decodes a raw query string (without the `?`). A parameter given twice is an error, since
/// picking one of them would be a guess; invalid escapes and invalid UTF-8 are kept lossily,
/// as form decoding does.
pub fn parse_query(raw: &str) -> Result<QueryParams, String> {
    serde_urlencoded::from_str(raw).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_known_parameters_percent_decoded() {
        let q = parse_query("type=application%2Fjson&keep&api-key=a+b&other=1").unwrap();
        assert_eq!(q.type_.as_deref(), Some("application/json"));
        assert_eq!(q.keep.as_deref(), Some(""));
        assert_eq!(q.api_key.as_deref(), Some("a b"));
    }

    #[test]
    fn an_empty_query_has_no_parameters() {
        assert_eq!(parse_query("").unwrap(), QueryParams::default());
    }

    #[test]
    fn a_repeated_parameter_is_an_error_that_does_not_quote_values() {
        let e = parse_query("api-key=unit-test-key&api-key=other").unwrap_err();
        assert!(e.contains("api-key"), "{e}");
        assert!(!e.contains("unit-test-key"), "{e}");
    }

    #[test]
    fn broken_escapes_are_kept_lossily() {
        let q = parse_query("type=%zz%C3%28%").unwrap();
        assert_eq!(q.type_.as_deref(), Some("%zz\u{FFFD}(%"));
    }
}

//! RFC 6120's stanza error conditions and types as xmpp-parsers' types, read from and named by
//! their XML names. Every decision on an IQ error is taken on these types, never on text: the
//! byte reader (`wire::read`) and the tree path both land here.

pub use tokio_xmpp::parsers::stanza_error::{DefinedCondition, ErrorType};

/// The condition an XML element name stands for (`gone` and `redirect` without their address:
/// the gateway never follows one).
pub fn parse_condition(name: &str) -> Option<DefinedCondition> {
    use DefinedCondition as C;
    Some(match name {
        "bad-request" => C::BadRequest,
        "conflict" => C::Conflict,
        "feature-not-implemented" => C::FeatureNotImplemented,
        "forbidden" => C::Forbidden,
        "gone" => C::Gone { new_address: None },
        "internal-server-error" => C::InternalServerError,
        "item-not-found" => C::ItemNotFound,
        "jid-malformed" => C::JidMalformed,
        "not-acceptable" => C::NotAcceptable,
        "not-allowed" => C::NotAllowed,
        "not-authorized" => C::NotAuthorized,
        "policy-violation" => C::PolicyViolation,
        "recipient-unavailable" => C::RecipientUnavailable,
        "redirect" => C::Redirect { new_address: None },
        "registration-required" => C::RegistrationRequired,
        "remote-server-not-found" => C::RemoteServerNotFound,
        "remote-server-timeout" => C::RemoteServerTimeout,
        "resource-constraint" => C::ResourceConstraint,
        "service-unavailable" => C::ServiceUnavailable,
        "subscription-required" => C::SubscriptionRequired,
        "undefined-condition" => C::UndefinedCondition,
        "unexpected-request" => C::UnexpectedRequest,
        _ => return None,
    })
}

/// The XML name of a condition (the word the REST error body carries).
pub fn condition_name(c: &DefinedCondition) -> &'static str {
    use DefinedCondition as C;
    match c {
        C::BadRequest => "bad-request",
        C::Conflict => "conflict",
        C::FeatureNotImplemented => "feature-not-implemented",
        C::Forbidden => "forbidden",
        C::Gone { .. } => "gone",
        C::InternalServerError => "internal-server-error",
        C::ItemNotFound => "item-not-found",
        C::JidMalformed => "jid-malformed",
        C::NotAcceptable => "not-acceptable",
        C::NotAllowed => "not-allowed",
        C::NotAuthorized => "not-authorized",
        C::PolicyViolation => "policy-violation",
        C::RecipientUnavailable => "recipient-unavailable",
        C::Redirect { .. } => "redirect",
        C::RegistrationRequired => "registration-required",
        C::RemoteServerNotFound => "remote-server-not-found",
        C::RemoteServerTimeout => "remote-server-timeout",
        C::ResourceConstraint => "resource-constraint",
        C::ServiceUnavailable => "service-unavailable",
        C::SubscriptionRequired => "subscription-required",
        C::UndefinedCondition => "undefined-condition",
        C::UnexpectedRequest => "unexpected-request",
    }
}

/// The error type an attribute value stands for.
pub fn parse_type(value: &str) -> Option<ErrorType> {
    Some(match value {
        "auth" => ErrorType::Auth,
        "cancel" => ErrorType::Cancel,
        "continue" => ErrorType::Continue,
        "modify" => ErrorType::Modify,
        "wait" => ErrorType::Wait,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_xmpp::minidom::Element;

    /// Every name reads back as the condition xmpp-parsers writes under that name.
    #[test]
    fn names_are_the_xml_names() {
        let names = [
            "bad-request",
            "conflict",
            "feature-not-implemented",
            "forbidden",
            "gone",
            "internal-server-error",
            "item-not-found",
            "jid-malformed",
            "not-acceptable",
            "not-allowed",
            "not-authorized",
            "policy-violation",
            "recipient-unavailable",
            "redirect",
            "registration-required",
            "remote-server-not-found",
            "remote-server-timeout",
            "resource-constraint",
            "service-unavailable",
            "subscription-required",
            "undefined-condition",
            "unexpected-request",
        ];
        for name in names {
            let c = parse_condition(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(condition_name(&c), name);
            assert_eq!(Element::from(c).name(), name);
        }
        assert_eq!(parse_condition("malformed-action"), None);
        assert_eq!(parse_condition("Forbidden"), None);
        for t in ["auth", "cancel", "continue", "modify", "wait"] {
            assert_eq!(parse_type(t).map(|t| t.to_string()), Some(t.to_string()));
        }
        assert_eq!(parse_type("fatal"), None);
    }
}

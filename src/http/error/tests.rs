use super::*;

#[test]
fn the_table_and_the_defaults_by_type() {
    let cases = [
        ("cancel", "bad-request", 400),
        ("modify", "not-acceptable", 400),
        ("auth", "forbidden", 403),
        ("cancel", "not-allowed", 403),
        ("cancel", "item-not-found", 404),
        ("cancel", "conflict", 409),
        ("cancel", "service-unavailable", 502),
        ("cancel", "internal-server-error", 502),
        ("wait", "resource-constraint", 503),
        ("wait", "unexpected-request", 503),
        ("cancel", "remote-server-timeout", 504),
        ("auth", "registration-required", 403),
        ("modify", "gone", 400),
        ("cancel", "undefined-condition", 400),
    ];
    for (t, c, s) in cases {
        let (type_, condition) = (
            crate::adhoc::condition::parse_type(t).unwrap(),
            crate::adhoc::condition::parse_condition(c).unwrap(),
        );
        assert_eq!(status_for(type_, &condition).as_u16(), s, "{t}/{c}");
    }
}

#[test]
fn a_failed_login_is_401_with_a_challenge() {
    let failure = Failure::from(crate::upstream::UpstreamError::AuthFailed(
        "not-authorized".into(),
    ));
    let r = ApiError::from(failure).into_response_in(Format::Json);
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
}

#[test]
fn retry_after_rounds_up() {
    let r = ApiError::throttled(Duration::from_millis(1500)).into_response_in(Format::Xml);
    assert_eq!(r.headers()[header::RETRY_AFTER], "2");
}

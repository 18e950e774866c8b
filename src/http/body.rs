//! Reading a request body, the second step of admission: only `chunked` as a transfer coding,
//! at most `--max-body` bytes, all of it within `--body-timeout`. It runs before credentials
//! are read and before a place in flight is taken, so a client that never finishes its body
//! holds nothing.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};

use super::error::ApiError;
use super::negotiate;
use crate::rest::Format;

/// A document body and its format: `?type=`'s when given, else its `Content-Type`'s (406 for
/// another `type`, 415 for another content type), then read as [`read`] does.
pub async fn read_document(
    body: Body,
    headers: &HeaderMap,
    query_type: Option<&str>,
    limit: usize,
    deadline: Duration,
) -> Result<(Format, Bytes), ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let format = negotiate::request_format(query_type, ct)
        .map_err(|e| ApiError::not_acceptable(e.0))?
        .ok_or_else(ApiError::unsupported_media_type)?;
    Ok((format, read(body, headers, limit, deadline).await?))
}

/// The whole body, or the error that answers it (413, 408, 501, 400).
pub async fn read(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, ApiError> {
    unsupported_coding(headers)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::payload_too_large(limit));
    }
    let read = tokio::time::timeout(deadline, axum::body::to_bytes(body, limit))
        .await
        .map_err(|_| ApiError::request_timeout(deadline))?;
    read.map_err(|e| {
        let length_limit = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if length_limit {
            ApiError::payload_too_large(limit)
        } else {
            ApiError::bad_request("the request body could not be read")
        }
    })
}

/// 501 for a body in a transfer coding other than `chunked` alone: hyper undoes `chunked`
/// and would hand on a gzip body as if it were plain.
fn unsupported_coding(headers: &HeaderMap) -> Result<(), ApiError> {
    let codings: Vec<String> = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("?").split(','))
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty())
        .collect();
    if codings.is_empty() || codings == ["chunked"] {
        return Ok(());
    }
    Err(ApiError::not_implemented(format!(
        "Transfer-Encoding {:?}: only chunked is supported",
        codings.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn coded(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static(v));
        h
    }

    #[test]
    fn only_chunked_alone_is_undone() {
        assert!(unsupported_coding(&HeaderMap::new()).is_ok());
        assert!(unsupported_coding(&coded("chunked")).is_ok());
        assert!(unsupported_coding(&coded("Chunked")).is_ok());
        for bad in [
            "gzip, chunked",
            "gzip",
            "chunked, gzip",
            "identity, chunked",
        ] {
            let e = unsupported_coding(&coded(bad)).unwrap_err();
            assert_eq!(e.status, 501, "{bad}");
        }
    }

    #[tokio::test]
    async fn a_body_that_does_not_arrive_in_time_is_408() {
        let (_tx, body) = {
            let (tx, rx) =
                tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(1);
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            });
            (tx, Body::from_stream(stream))
        };
        let e = read(body, &HeaderMap::new(), 100, Duration::from_millis(20))
            .await
            .unwrap_err();
        assert_eq!(e.status, 408);
        let e = read(
            Body::from(vec![0u8; 101]),
            &HeaderMap::new(),
            100,
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert_eq!(e.status, 413);
    }
}

//! Errors as grpc-gateway v1 (etcd 3.4's 1.9.5, 3.5's 1.16) writes them.
//!
//! A unary call's error is an HTTP status chosen from the gRPC code and
//! the body `{"error":msg,"message":msg,"code":n}`; an error inside a
//! response stream is one chunk `{"error":{"grpc_code":n,"http_code":h,
//! "message":msg,"http_status":text}}`. Paths and methods the gateway does
//! not serve are answered in Go's `http.Error` plain text.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use serde::Serialize;
use tonic::{Code, Status};

/// The content type of every JSON answer (grpc-gateway's JSONPb).
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// grpc-gateway v1's `HTTPStatusFromCode`. `FailedPrecondition` is 412 in
/// v1 (v2 changed it to 400); etcd 3.4 answers a promote of a voter so.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::Aborted => StatusCode::CONFLICT,
        Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// grpc-gateway v1's `errorBody`, in the order etcd 3.4 writes it.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
    code: i32,
}

/// grpc-gateway v1's `StreamError` (its `details` are always empty here).
#[derive(Serialize)]
struct StreamError<'a> {
    grpc_code: i32,
    http_code: u16,
    message: &'a str,
    http_status: &'a str,
}

/// A stream chunk carrying an error.
#[derive(Serialize)]
struct ErrorChunk<'a> {
    error: StreamError<'a>,
}

/// The unary answer to a failed call.
pub fn unary_error(status: &Status) -> Response {
    let body = ErrorBody {
        error: status.message(),
        message: status.message(),
        code: status.code() as i32,
    };
    json_response(
        http_status(status.code()),
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}

/// The chunk a response stream ends with when the call fails.
pub fn stream_error_chunk(status: &Status) -> Vec<u8> {
    let http = http_status(status.code());
    let chunk = ErrorChunk {
        error: StreamError {
            grpc_code: status.code() as i32,
            http_code: http.as_u16(),
            message: status.message(),
            http_status: http.canonical_reason().unwrap_or(""),
        },
    };
    serde_json::to_vec(&chunk).unwrap_or_default()
}

/// The answer to a streaming call that fails before its first message
/// (grpc-gateway's `handleForwardResponseStreamError` with no header
/// written): the HTTP status from the code, and the error chunk. etcd
/// answers a watch refused for want of a leader so.
pub fn stream_error(status: &Status) -> Response {
    json_response(http_status(status.code()), stream_error_chunk(status))
}

/// A JSON response with `status` and `body`.
pub fn json_response(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    response
}

/// Go's `http.Error(w, http.StatusText(code), code)`: what etcd's gateway
/// answers for a method other than POST (405) on a path it serves.
pub fn plain_text(status: StatusCode) -> Response {
    let text = format!("{}\n", status.canonical_reason().unwrap_or(""));
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn unary_errors_have_grpc_gateway_shape() {
        let response = unary_error(&Status::invalid_argument("etcdserver: key is not provided"));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[header::CONTENT_TYPE], JSON_CONTENT_TYPE);
        assert_eq!(
            body_text(response).await,
            r#"{"error":"etcdserver: key is not provided","message":"etcdserver: key is not provided","code":3}"#
        );
        let response = unary_error(&Status::failed_precondition("x"));
        assert_eq!(response.status(), StatusCode::PRECONDITION_FAILED);
    }

    #[test]
    fn stream_errors_carry_both_codes() {
        let chunk = stream_error_chunk(&Status::unavailable("etcdserver: no leader"));
        assert_eq!(
            String::from_utf8(chunk).unwrap(),
            r#"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}"#
        );
    }

    #[tokio::test]
    async fn plain_text_is_go_http_error() {
        let response = plain_text(StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body_text(response).await, "Method Not Allowed\n");
    }

    #[test]
    fn every_code_has_a_status() {
        assert_eq!(http_status(Code::OutOfRange), StatusCode::BAD_REQUEST);
        assert_eq!(http_status(Code::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(
            http_status(Code::Unavailable),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            http_status(Code::Unimplemented),
            StatusCode::NOT_IMPLEMENTED
        );
        assert_eq!(
            http_status(Code::ResourceExhausted),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
}

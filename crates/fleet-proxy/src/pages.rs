//! The pages the proxy answers with itself: no route, body too large, backend failed.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::RouteName;
use crate::body::ResponseBody;

/// Why the proxy answers itself.
pub(crate) enum Page<'a> {
    /// No route for the request's port and host.
    NoRoute,
    /// The declared or streamed request body is over the limit.
    BodyTooLarge,
    /// The backend refused, reset or closed the connection.
    BadGateway {
        route: &'a RouteName,
        reason: &'a str,
    },
    /// The backend did not start its response in time.
    GatewayTimeout { route: &'a RouteName },
}

impl Page<'_> {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Page::NoRoute => StatusCode::NOT_FOUND,
            Page::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Page::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            Page::GatewayTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    fn detail(&self) -> String {
        // Route names hold no markup characters (see `RouteName`), so they need no escaping.
        match self {
            Page::NoRoute => "No application answers for this host name and port.".to_owned(),
            Page::BodyTooLarge => "The request body is larger than this server accepts.".to_owned(),
            Page::BadGateway { route, reason } => {
                format!("The application <b>{route}</b> is not answering ({reason}).")
            }
            Page::GatewayTimeout { route } => {
                format!("The application <b>{route}</b> did not answer in time.")
            }
        }
    }

    pub(crate) fn response(&self) -> Response<ResponseBody> {
        let status = self.status();
        let title = format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("Error")
        );
        let html = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
             <body><h1>{title}</h1>\n<p>{}</p>\n<hr><p>fleet-proxy</p></body></html>\n",
            self.detail()
        );
        let mut response = Response::new(ResponseBody::Page(Full::new(Bytes::from(html))));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

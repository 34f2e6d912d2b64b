//! Caravan's web UI.
//!
//! The UI is a one-page application of plain HTML, CSS and JavaScript modules (no build step, no
//! Node at run time, no CDN) under `assets/`, embedded in the binary at compile time
//! ([`assets`]). It talks to the server's JSON API with the token the user logs in with; this
//! crate only serves the files, under `/ui/` ([`router`]).
//!
//! `GET /` stays the Elasticsearch root document that clients probe: the UI never takes it.

mod assets;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

pub use assets::{ASSETS, Asset};

/// Where the UI is served from; its start page is `{PREFIX}/`.
pub const PREFIX: &str = "/ui";

/// The Content-Security-Policy of every UI answer: the UI's own files only, and calls to the API
/// of the same origin. Inline styles are allowed because the chart library sets them.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The router serving the UI: `/ui` redirects to `/ui/`, which is `index.html`; `/ui/PATH` is the
/// asset at `PATH`. Answers carry a strong `ETag` and `Cache-Control: no-cache` (browsers
/// revalidate, so a new binary's UI is never mixed with an old one's), and `304 Not Modified`
/// when `If-None-Match` matches.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(PREFIX, get(|| async { Redirect::permanent("/ui/") }))
        .route(
            "/ui/",
            get(|headers: HeaderMap| async move { serve("index.html", &headers) }),
        )
        .route(
            "/ui/{*path}",
            get(|Path(path): Path<String>, headers: HeaderMap| async move {
                serve(&path, &headers)
            }),
        )
}

/// The answer for the asset at `path` (relative to `assets/`).
fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(asset) = assets::find(path) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("no UI file {path}; the UI starts at /ui/\n"),
        )
            .into_response();
    };
    let etag = asset.etag();
    let common = [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    let etag = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\""));
    if matches {
        return (StatusCode::NOT_MODIFIED, common, [(header::ETAG, etag)]).into_response();
    }
    (
        common,
        [
            (header::ETAG, etag),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
        ],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get_path(path: &str, if_none_match: Option<&str>) -> Response {
        let mut request = Request::get(path);
        if let Some(tag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        router::<()>()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_start_page_is_index_html_with_its_headers() {
        let response = get_path("/ui/", None).await;
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
        assert!(headers.contains_key(header::CONTENT_SECURITY_POLICY));
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert!(
            std::str::from_utf8(&body)
                .unwrap()
                .contains("<title>Caravan</title>")
        );
    }

    #[tokio::test]
    async fn ui_without_slash_redirects() {
        let response = get_path("/ui", None).await;
        assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(response.headers()[header::LOCATION], "/ui/");
    }

    #[tokio::test]
    async fn assets_have_their_content_type_and_revalidate_with_etags() {
        for (path, content_type) in [
            ("/ui/js/main.js", "text/javascript; charset=utf-8"),
            ("/ui/app.css", "text/css; charset=utf-8"),
            (
                "/ui/vendor/uplot/uPlot.iife.min.js",
                "text/javascript; charset=utf-8",
            ),
        ] {
            let response = get_path(path, None).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                content_type,
                "{path}"
            );
            let etag = response.headers()[header::ETAG]
                .to_str()
                .unwrap()
                .to_owned();
            let again = get_path(path, Some(&etag)).await;
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
            let other = get_path(path, Some("\"something-else\"")).await;
            assert_eq!(other.status(), StatusCode::OK, "{path}");
        }
    }

    #[tokio::test]
    async fn unknown_files_and_escapes_are_not_found() {
        for path in [
            "/ui/nope.js",
            "/ui/../Cargo.toml",
            "/ui/js/../../src/lib.rs",
        ] {
            let response = get_path(path, None).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        }
    }
}

//! The console's pages and their assets, compiled into the binary (no build step, no CDN).
//!
//! Every asset is served under a URL holding a hash of its content
//! (`/assets/search.3f9a0c1b2d4e.js`) with a year-long, immutable cache lifetime: a new
//! release changes the URL of what changed, so a browser never runs a stale script. The pages
//! (`/`, `/tail`, ... and the sign-in page) name those URLs, are never cached, and like every
//! answer of the console carry a strict Content-Security-Policy: scripts and styles only from
//! the console's own assets (no inline script or style, no `eval`), nothing from elsewhere,
//! no framing. A browser reports a violation to `/csp-report`, which the console logs
//! (throttled): a page needing something the policy refuses is a bug, and says so.

use std::fmt::Write as _;
use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::telemetry::Throttle;

/// The policy every answer carries.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'; report-uri /csp-report";

/// Where browsers report violations of the policy.
pub const CSP_REPORT_PATH: &str = "/csp-report";

/// The largest violation report read (a report is a few hundred bytes).
const MAX_REPORT_BYTES: usize = 16 * 1024;

/// Cache lifetime of a hashed asset.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The page scripts, in the order the page loads them: the shared helpers, one script per
/// page (search first: it is the router's last resort), the router.
const SCRIPTS: [(&str, &str); 10] = [
    ("common.js", include_str!("assets/common.js")),
    ("search.js", include_str!("assets/search.js")),
    ("context.js", include_str!("assets/context.js")),
    ("tail.js", include_str!("assets/tail.js")),
    ("collect.js", include_str!("assets/collect.js")),
    ("hosts.js", include_str!("assets/hosts.js")),
    ("pipeline.js", include_str!("assets/pipeline.js")),
    ("storage.js", include_str!("assets/storage.js")),
    ("alerts.js", include_str!("assets/alerts.js")),
    ("app.js", include_str!("assets/app.js")),
];
const STYLE: (&str, &str) = ("app.css", include_str!("assets/app.css"));
const INDEX_HTML: &str = include_str!("assets/index.html");
const LOGIN_HTML: &str = include_str!("assets/login.html");

/// One asset: its hashed file name, its type and its content.
struct Asset {
    name: String,
    content_type: &'static str,
    body: &'static str,
}

/// Every asset and the console page naming them, made once.
struct Assets {
    assets: Vec<Asset>,
    style_url: String,
    index: String,
}

fn hashed(name: &str, body: &str) -> String {
    let hash = xxhash_rust::xxh3::xxh3_64(body.as_bytes());
    match name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.{:012x}.{ext}", hash & 0xffff_ffff_ffff),
        None => format!("{name}.{:012x}", hash & 0xffff_ffff_ffff),
    }
}

fn assets() -> &'static Assets {
    static ASSETS: OnceLock<Assets> = OnceLock::new();
    ASSETS.get_or_init(|| {
        let mut assets = Vec::new();
        let mut tags = String::new();
        for (name, body) in SCRIPTS {
            let name = hashed(name, body);
            let _ = writeln!(tags, "<script src=\"/assets/{name}\"></script>");
            assets.push(Asset {
                name,
                content_type: "text/javascript; charset=utf-8",
                body,
            });
        }
        let style = hashed(STYLE.0, STYLE.1);
        let style_url = format!("/assets/{style}");
        assets.push(Asset {
            name: style,
            content_type: "text/css; charset=utf-8",
            body: STYLE.1,
        });
        let index = INDEX_HTML
            .replace("{{app.css}}", &style_url)
            .replace("{{scripts}}", tags.trim_end());
        Assets {
            assets,
            style_url,
            index,
        }
    })
}

/// An HTML page: never cached (it names the assets of this release).
fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The console's page (one for every view: its scripts read the URL).
pub async fn page() -> Response {
    html(StatusCode::OK, assets().index.clone())
}

/// The sign-in page with `note` (HTML, already escaped) and the escaped `next` target.
pub fn login(status: StatusCode, note: &str, next: &str) -> Response {
    let page = LOGIN_HTML
        .replace("{{app.css}}", &assets().style_url)
        .replace("{{note}}", note)
        .replace("{{next}}", next);
    html(status, page)
}

/// `GET /assets/{name}`: a hashed asset, cached for a year; 404 for any other name.
pub async fn asset(Path(name): Path<String>) -> Response {
    match assets().assets.iter().find(|asset| asset.name == name) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, asset.content_type),
                (header::CACHE_CONTROL, IMMUTABLE),
            ],
            asset.body,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CACHE_CONTROL, "no-store")],
            "no such asset (the page naming it is from another release: reload it)",
        )
            .into_response(),
    }
}

/// Adds the security headers to every answer of the console.
pub async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// `POST /csp-report`: a browser reporting a violation of the policy. Logged (throttled) as a
/// warning naming the directive and what was blocked; answered 204 whatever it holds.
pub async fn csp_report(body: axum::body::Bytes) -> StatusCode {
    static THROTTLE: OnceLock<Throttle> = OnceLock::new();
    let report: serde_json::Value =
        serde_json::from_slice(&body[..body.len().min(MAX_REPORT_BYTES)])
            .unwrap_or(serde_json::Value::Null);
    let report = &report["csp-report"];
    let field = |name: &str| {
        report[name]
            .as_str()
            .unwrap_or("?")
            .chars()
            .take(200)
            .collect::<String>()
    };
    if let Some(held_back) = THROTTLE.get_or_init(Throttle::default).admit() {
        tracing::warn!(
            directive = %field("violated-directive"),
            blocked = %field("blocked-uri"),
            page = %field("document-uri"),
            source = %field("source-file"),
            line = report["line-number"].as_u64().unwrap_or(0),
            held_back,
            "content security policy violation: the page needed something the console's policy refuses"
        );
    }
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_every_script_and_the_style_by_content_hash_in_order() {
        let page = &assets().index;
        assert!(!page.contains("{{"), "{page}");
        let mut at = 0;
        for (name, body) in SCRIPTS {
            let tag = format!("<script src=\"/assets/{}\"></script>", hashed(name, body));
            let found = page[at..]
                .find(&tag)
                .unwrap_or_else(|| panic!("{tag} in order"));
            at += found + tag.len();
        }
        assert!(page.contains(&format!("href=\"{}\"", assets().style_url)));
        assert_ne!(hashed("a.js", "x"), hashed("a.js", "y"));
        assert!(hashed("a.js", "x").starts_with("a.") && hashed("a.js", "x").ends_with(".js"));
    }

    #[test]
    fn no_page_holds_an_inline_script_style_or_handler() {
        let login = LOGIN_HTML;
        for (name, html) in [("index.html", INDEX_HTML), ("login.html", login)] {
            let lower = html.to_ascii_lowercase();
            assert!(!lower.contains("<style"), "{name}: inline <style>");
            assert!(!lower.contains("style=\""), "{name}: style attribute");
            assert!(
                !lower.contains(" onclick") && !lower.contains(" onload"),
                "{name}: inline handler"
            );
            for script in lower.match_indices("<script").map(|(i, _)| &lower[i..]) {
                let open = &script[..script.find('>').unwrap_or(script.len())];
                assert!(open.contains(" src="), "{name}: inline <script>: {open}");
            }
        }
        for (name, body) in SCRIPTS {
            assert!(!body.contains("eval("), "{name}: eval");
            assert!(
                !body.contains("style: "),
                "{name}: a style attribute through el()"
            );
        }
    }

    #[test]
    fn the_policy_allows_nothing_inline_and_nothing_from_elsewhere() {
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-eval"));
        assert!(CONTENT_SECURITY_POLICY.contains("script-src 'self'"));
        assert!(CONTENT_SECURITY_POLICY.contains("style-src 'self'"));
        assert!(CONTENT_SECURITY_POLICY.contains(CSP_REPORT_PATH));
    }
}

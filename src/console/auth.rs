//! Who is asking, and what they may do: sign-in against `[[users]]` (argon2 hashes), sessions
//! in cookies, roles, CSRF protection on every write, and throttled sign-in attempts.
//!
//! Promises:
//! - With `[[users]]`, every page and API answer except the sign-in page and the static assets
//!   needs a session: pages redirect to `/login`, the API answers 401.
//! - A session is a random 256-bit token in the `logship_session` cookie (`HttpOnly`,
//!   `SameSite=Lax`, `Secure` when the console serves TLS), kept in memory only: a restart
//!   signs everyone out. It expires [`SESSION_TTL`] after sign-in.
//! - Every request that is not `GET`/`HEAD` must carry the session's CSRF token in the
//!   `X-CSRF-Token` header (a cross-site form or `fetch` cannot set it), and, when the browser
//!   sends `Origin`, come from the console's own origin. Sign-in itself needs only the origin.
//!   Without `[[users]]` the same rule holds with one token per process, so a page on another
//!   site cannot drive a loopback console either.
//! - After [`FREE_FAILURES`] failed sign-ins for one name or from one address, further
//!   attempts (right or wrong) are refused with 429 and `Retry-After` for 1 s, then 2 s, 4 s …
//!   up to [`MAX_LOCK`]; a success clears the count. Unknown names cost the same time as known
//!   ones.
//! - Passwords and hashes are never logged; a failed sign-in is logged with the name and
//!   address only.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

use crate::config::{ConsoleUser, Role};

/// How long a session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Failed sign-ins allowed before attempts are slowed down.
pub const FREE_FAILURES: u32 = 5;
/// The longest wait between attempts once slowed down.
pub const MAX_LOCK: Duration = Duration::from_secs(300);
/// Failures are forgotten this long after the last one.
const FAILURE_MEMORY: Duration = Duration::from_secs(900);
/// The session cookie's name.
pub const COOKIE: &str = "logship_session";
/// The header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The caller of one request, as handlers see it (a request extension).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The signed-in user (`None` on a console without `[[users]]`).
    pub user: Option<String>,
    /// Their rights.
    pub role: Role,
    /// The token writes must carry.
    pub csrf: String,
}

struct Session {
    user: String,
    role: Role,
    csrf: String,
    expires: Instant,
}

#[derive(Default)]
struct Failures {
    count: u32,
    last: Option<Instant>,
}

impl Failures {
    /// When the next attempt is allowed, if not now.
    fn locked_until(&self) -> Option<Instant> {
        let last = self.last?;
        if self.count < FREE_FAILURES {
            return None;
        }
        let shift = (self.count - FREE_FAILURES).min(16);
        let wait = Duration::from_secs(1u64 << shift).min(MAX_LOCK);
        Some(last + wait)
    }
}

/// Users, sessions and attempt counts of one console.
pub struct Auth {
    users: HashMap<String, (String, Role)>,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<String, Failures>>,
    /// The CSRF token of a console without users.
    open_csrf: String,
    secure_cookie: bool,
    /// Verified against for unknown names, so they take as long as known ones.
    decoy_hash: String,
}

/// Why a token or hash could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The system's random source failed.
    #[error("no randomness: {0}")]
    Random(String),
    /// Hashing failed.
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// A fresh random 256-bit token, hex.
fn token() -> Result<String, AuthError> {
    let mut bytes = [0u8; 32];
    openssl::rand::rand_bytes(&mut bytes).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Equal strings, compared in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a.as_bytes(), b.as_bytes())
}

/// Hashes `password` with argon2id and a random salt, in PHC form (what `[[users]]` takes).
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    openssl::rand::rand_bytes(&mut salt).map_err(|e| AuthError::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

fn verify(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// What a sign-in attempt came to.
#[derive(Debug)]
pub enum SignIn {
    /// A new session: its cookie value.
    Session(String),
    /// Wrong name or password.
    Refused,
    /// Too many failures: try again after this long.
    Slowed(Duration),
}

impl Auth {
    /// Users from the configuration; `secure_cookie` when the console serves TLS.
    pub fn new(users: &[ConsoleUser], secure_cookie: bool) -> Result<Auth, AuthError> {
        Ok(Auth {
            users: users
                .iter()
                .map(|u| (u.name.clone(), (u.password_hash.clone(), u.role)))
                .collect(),
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            open_csrf: token()?,
            secure_cookie,
            decoy_hash: hash_password(&token()?)?,
        })
    }

    /// Whether anyone may use the console without signing in (no `[[users]]`).
    pub fn is_open(&self) -> bool {
        self.users.is_empty()
    }

    /// The caller holding `cookie`, if it names a live session (or anyone, when open).
    fn caller(&self, cookies: Option<&str>) -> Option<Caller> {
        if self.is_open() {
            return Some(Caller {
                user: None,
                role: Role::Editor,
                csrf: self.open_csrf.clone(),
            });
        }
        let token = session_cookie(cookies?)?;
        let sessions = crate::sync::lock(&self.sessions);
        let session = sessions.get(token).filter(|s| s.expires > Instant::now())?;
        Some(Caller {
            user: Some(session.user.clone()),
            role: session.role,
            csrf: session.csrf.clone(),
        })
    }

    /// Checks `name` and `password` from `peer`, under the attempt limits.
    pub async fn sign_in(
        &self,
        name: &str,
        password: &str,
        peer: IpAddr,
    ) -> Result<SignIn, AuthError> {
        let keys = [format!("user:{name}"), format!("addr:{peer}")];
        let now = Instant::now();
        {
            let mut failures = crate::sync::lock(&self.failures);
            failures.retain(|_, f| f.last.is_some_and(|l| now - l < FAILURE_MEMORY));
            let until = keys
                .iter()
                .filter_map(|k| failures.get(k).and_then(Failures::locked_until))
                .max();
            if let Some(until) = until.filter(|u| *u > now) {
                return Ok(SignIn::Slowed(until - now));
            }
        }
        let (hash, role) = match self.users.get(name) {
            Some((hash, role)) => (hash.clone(), Some(*role)),
            None => (self.decoy_hash.clone(), None),
        };
        let password = password.to_string();
        let matched = tokio::task::spawn_blocking(move || verify(&password, &hash))
            .await
            .unwrap_or(false);
        match role.filter(|_| matched) {
            Some(role) => {
                let mut failures = crate::sync::lock(&self.failures);
                for key in &keys {
                    failures.remove(key);
                }
                drop(failures);
                let id = token()?;
                let mut sessions = crate::sync::lock(&self.sessions);
                // Expired sessions go here, not on every request.
                let now = Instant::now();
                sessions.retain(|_, s| s.expires > now);
                sessions.insert(
                    id.clone(),
                    Session {
                        user: name.to_string(),
                        role,
                        csrf: token()?,
                        expires: Instant::now() + SESSION_TTL,
                    },
                );
                tracing::info!(user = name, %peer, "console sign-in");
                Ok(SignIn::Session(id))
            }
            None => {
                let mut failures = crate::sync::lock(&self.failures);
                for key in keys {
                    let entry = failures.entry(key).or_default();
                    entry.count += 1;
                    entry.last = Some(Instant::now());
                }
                tracing::warn!(user = name, %peer, "console sign-in refused");
                Ok(SignIn::Refused)
            }
        }
    }

    /// Ends the session held in `cookies`, if any.
    pub fn sign_out(&self, cookies: Option<&str>) {
        if let Some(token) = cookies.and_then(session_cookie) {
            crate::sync::lock(&self.sessions).remove(token);
        }
    }

    /// The `Set-Cookie` value for a new session (or, with `None`, one that clears it).
    pub fn cookie(&self, session: Option<&str>) -> String {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        match session {
            Some(token) => format!(
                "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
                SESSION_TTL.as_secs()
            ),
            None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
        }
    }
}

/// The session token in a `Cookie` header.
fn session_cookie(cookies: &str) -> Option<&str> {
    cookies
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

fn cookies(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::COOKIE).and_then(|v| v.to_str().ok())
}

/// Paths anyone may fetch.
fn is_public(path: &str) -> bool {
    path == "/login" || path.starts_with("/assets/") || path == super::assets::CSP_REPORT_PATH
}

fn refuse(status: StatusCode, message: &str) -> Response {
    super::json_response(status, &json!({ "error": message }))
}

/// Whether the request's `Origin` (when the browser sent one) is the console's own.
fn same_origin(headers: &HeaderMap, tls: bool) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let scheme = if tls { "https" } else { "http" };
    match (origin.to_str().ok(), host) {
        (Some(origin), Some(host)) => origin == format!("{scheme}://{host}"),
        _ => false,
    }
}

/// The middleware in front of every route: finds the caller, turns the anonymous away, checks
/// the origin and CSRF token of writes, and hands the [`Caller`] to the handler.
pub async fn guard(
    State(auth): State<std::sync::Arc<Auth>>,
    mut request: Request<Body>,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    let write = !matches!(*request.method(), Method::GET | Method::HEAD);
    // A violation report comes from the browser itself, with whatever origin it gives (it
    // changes nothing: it is only logged).
    let report = path == super::assets::CSP_REPORT_PATH;
    if write && !report && !same_origin(request.headers(), auth.secure_cookie) {
        return refuse(StatusCode::FORBIDDEN, "cross-site request refused");
    }
    if is_public(&path) {
        return next.run(request).await;
    }
    let Some(caller) = auth.caller(cookies(request.headers())) else {
        if path.starts_with("/api/") {
            return refuse(StatusCode::UNAUTHORIZED, "sign in first");
        }
        let target = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let mut location = String::from("/login?next=");
        for byte in target.bytes() {
            if byte.is_ascii_alphanumeric() || b"/-_.~".contains(&byte) {
                location.push(byte as char);
            } else {
                location.push_str(&format!("%{byte:02X}"));
            }
        }
        return Redirect::to(&location).into_response();
    };
    if write {
        let sent = request
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok());
        if !sent.is_some_and(|sent| same(sent, &caller.csrf)) {
            return refuse(StatusCode::FORBIDDEN, "missing or wrong CSRF token");
        }
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// A request refused before any work: its status and reason (answered as `{"error": ...}`).
#[derive(Debug)]
pub struct Refusal(pub StatusCode, pub String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        refuse(self.0, &self.1)
    }
}

/// Requires the editor role.
pub fn require_editor(caller: &Caller) -> Result<(), Refusal> {
    match caller.role {
        Role::Editor => Ok(()),
        Role::Viewer => Err(Refusal(
            StatusCode::FORBIDDEN,
            "viewers cannot change collect entries (this needs the editor role)".into(),
        )),
    }
}

/// The sign-in form posted to `/login`.
#[derive(serde::Deserialize)]
pub struct LoginForm {
    name: String,
    password: String,
    #[serde(default)]
    next: String,
}

#[derive(serde::Deserialize)]
/// `GET /login?next=`: where to go after signing in.
pub struct LoginQuery {
    #[serde(default)]
    next: String,
}

/// Only paths on this console: no `//host` or `scheme:` redirects.
fn local_target(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/"
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The sign-in page, with an optional message.
pub fn login_page(status: StatusCode, message: &str, next: &str) -> Response {
    let note = if message.is_empty() {
        String::new()
    } else {
        format!(
            "<p id=\"login-error\" class=\"error\" role=\"alert\">{}</p>",
            escape(message)
        )
    };
    super::assets::login(status, &note, &escape(local_target(next)))
}

/// `GET /login`: the form (or, when already signed in or open, the page asked for).
pub async fn login_get(
    State(auth): State<std::sync::Arc<Auth>>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<LoginQuery>,
) -> Response {
    if auth.caller(cookies(&headers)).is_some() {
        return Redirect::to(local_target(&query.next)).into_response();
    }
    login_page(StatusCode::OK, "", &query.next)
}

/// `POST /login`: signs in and redirects to `next`, or shows the form again with the reason.
pub async fn login_post(
    State(auth): State<std::sync::Arc<Auth>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    if auth.is_open() {
        return Redirect::to(local_target(&form.next)).into_response();
    }
    match auth.sign_in(&form.name, &form.password, peer.ip()).await {
        Ok(SignIn::Session(token)) => {
            let mut response = Redirect::to(local_target(&form.next)).into_response();
            if let Ok(value) = HeaderValue::from_str(&auth.cookie(Some(&token))) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Ok(SignIn::Refused) => login_page(
            StatusCode::UNAUTHORIZED,
            "Wrong name or password.",
            &form.next,
        ),
        Ok(SignIn::Slowed(wait)) => {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut response = login_page(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("Too many failed sign-ins: try again in {seconds} s."),
                &form.next,
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            response
        }
        Err(error) => {
            tracing::error!(%error, "console sign-in failed");
            login_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The console cannot sign anyone in now (see its log).",
                &form.next,
            )
        }
    }
}

/// `POST /logout`: ends the session (a write: needs the CSRF token).
pub async fn logout(State(auth): State<std::sync::Arc<Auth>>, headers: HeaderMap) -> Response {
    auth.sign_out(cookies(&headers));
    let mut response = super::json_response(StatusCode::OK, &json!({ "signed_out": true }));
    if let Ok(value) = HeaderValue::from_str(&auth.cookie(None)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `GET /api/me`: who the caller is, their role and CSRF token (the page needs it for writes).
pub async fn me(
    State(auth): State<std::sync::Arc<Auth>>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Response {
    super::json_response(
        StatusCode::OK,
        &json!({
            "user": caller.user,
            "role": caller.role,
            "csrf": caller.csrf,
            "sign_in": !auth.is_open(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, password: &str, role: Role) -> ConsoleUser {
        ConsoleUser {
            name: name.into(),
            password_hash: hash_password(password).unwrap(),
            role,
        }
    }

    #[tokio::test]
    async fn sign_in_checks_the_hash_and_slows_down_after_five_failures() {
        let auth = Auth::new(&[user("ann", "right", Role::Editor)], false).unwrap();
        let peer: IpAddr = [10, 0, 0, 1].into();
        assert!(matches!(
            auth.sign_in("ann", "right", peer).await.unwrap(),
            SignIn::Session(_)
        ));
        let third: IpAddr = [10, 0, 0, 3].into();
        assert!(matches!(
            auth.sign_in("nobody", "right", third).await.unwrap(),
            SignIn::Refused
        ));
        for _ in 0..FREE_FAILURES {
            assert!(matches!(
                auth.sign_in("ann", "wrong", peer).await.unwrap(),
                SignIn::Refused
            ));
        }
        // Five failures: even the right password waits now.
        match auth.sign_in("ann", "right", peer).await.unwrap() {
            SignIn::Slowed(wait) => assert!(wait <= Duration::from_secs(1), "{wait:?}"),
            other => panic!("not slowed: {other:?}"),
        }
        // Another address is limited by the name's count.
        let other: IpAddr = [10, 0, 0, 2].into();
        assert!(matches!(
            auth.sign_in("ann", "right", other).await.unwrap(),
            SignIn::Slowed(_)
        ));
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(matches!(
            auth.sign_in("ann", "right", peer).await.unwrap(),
            SignIn::Session(_)
        ));
    }

    #[test]
    fn sessions_cookies_and_targets() {
        let auth = Auth::new(&[user("bob", "pw", Role::Viewer)], true).unwrap();
        assert!(auth.caller(None).is_none());
        assert!(auth.caller(Some("logship_session=forged")).is_none());
        let cookie = auth.cookie(Some("abc"));
        for part in ["HttpOnly", "SameSite=Lax", "Secure", "logship_session=abc"] {
            assert!(cookie.contains(part), "{cookie}");
        }
        assert!(!Auth::new(&[user("bob", "pw", Role::Viewer)], false)
            .unwrap()
            .cookie(Some("x"))
            .contains("Secure"));
        assert_eq!(session_cookie("a=1; logship_session=t0k; b=2"), Some("t0k"));
        assert_eq!(local_target("//evil.example/x"), "/");
        assert_eq!(local_target("https://evil.example"), "/");
        assert_eq!(local_target("/context/abc?x=1"), "/context/abc?x=1");
        let open = Auth::new(&[], false).unwrap();
        assert_eq!(open.caller(None).unwrap().role, Role::Editor);
    }

    #[test]
    fn origins() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:9700"));
        assert!(same_origin(&headers, false));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:9700"),
        );
        assert!(same_origin(&headers, false));
        assert!(!same_origin(&headers, true));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8000"),
        );
        assert!(!same_origin(&headers, false));
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&headers, false));
    }
}

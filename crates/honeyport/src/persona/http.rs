//! The `http` persona: a web server face (Apache on Ubuntu, nginx, or a router's admin panel)
//! that records every request (method, target, version, headers in order, body length) and the
//! credentials sent with Basic auth or a login form, exactly as sent.
//!
//! ```toml
//! [personas.web]
//! type = "http"
//! profile = "apache"                 # "apache" (default), "nginx" or "router"
//! [[personas.web.routes]]
//! prefix = "/wp-admin"
//! status = 200
//! headers = ["X-Powered-By: PHP/7.4.3"]
//! body = "<html>...%TIME_GMT_RFC2822%</html>"   # or { file = "pages/wp.html" }
//! [personas.web.credentials]          # default: refuse every credential
//! accept = ["admin:admin"]
//! ```
//!
//! The dialogue is a pure state machine ([`Session::on_input`]) tested with byte strings;
//! [`Http::serve`] only moves bytes and events. Routes are tried in order (the config's, then
//! the profile's); the first whose path, prefix or regex (and method, if given) matches answers.
//!
//! Limits, each with its reason (the defaults are Apache's):
//! - `max_line` (8190, `LimitRequestLine`): a longer request line gets 414 and the connection
//!   closes; a longer header line gets 400. Either is tagged `http.line_too_long`.
//! - `Expect: 100-continue` gets an interim `100 Continue` when the client waits for it; any
//!   other expectation gets 417 (tagged `http.expectation_failed`).
//! - `max_headers` (100, `LimitRequestFields`): one more gets 400, tagged `http.too_many_headers`.
//! - `max_head` (64KiB): the whole head (request line and headers); beyond it 400,
//!   tagged `http.head_too_large`. The buffer never holds more than this plus one read.
//! - `max_body` (1MiB): a longer `Content-Length` or chunked body gets 413 (tagged
//!   `http.body_too_large`) and the connection closes; the body is never read into memory.
//! - `max_requests` (100, `MaxKeepAliveRequests`): after that many requests on one
//!   connection the reply says `Connection: close` and the connection closes.
//!
//! Requests that are not HTTP/1.x get 400, tagged `http.bad_request`, and the connection
//! closes (the raw bytes are in the session's input events). A session that ends in the middle
//! of a request is tagged `http.request_unfinished`.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use base64::Engine as _;
use chrono::Utc;
use honeyport_event::{EventKind, Payload, Transport};
use regex::bytes::{Regex, RegexBuilder};
use serde::Deserialize;

use super::bytes::BytesSpec;
use super::creds::{CredPolicy, CredentialsRaw};
use super::template::Template;
use crate::config::units::NumOrStr;
use crate::config::Problems;
use crate::listener::conn::{Conn, End};

/// `type = "http"`. Every field optional (inheritance and overrides fill them).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRaw {
    /// Another persona whose fields this one starts from.
    pub inherit: Option<String>,
    /// Free text for people; not used.
    pub description: Option<String>,
    /// Which server to imitate: "apache" (2.4.41 on Ubuntu, default), "nginx" (1.18.0 on
    /// Ubuntu) or "router" (a home router's login page and Basic-auth admin area).
    pub profile: Option<String>,
    /// The `Server:` header instead of the profile's; "" sends none.
    pub server: Option<String>,
    /// Responses tried before the profile's, first match wins.
    pub routes: Option<Vec<RouteRaw>>,
    /// Which credentials get in (see [`super::creds`]). Default: none.
    pub credentials: Option<CredentialsRaw>,
    /// Longest request or header line in bytes. Default 8190.
    pub max_line: Option<NumOrStr>,
    /// Most header fields per request. Default 100.
    pub max_headers: Option<u32>,
    /// Largest request head (request line and headers) in bytes. Default 64KiB.
    pub max_head: Option<NumOrStr>,
    /// Largest request body in bytes, e.g. "1MiB". Default 1MiB.
    pub max_body: Option<NumOrStr>,
    /// Most requests on one keep-alive connection. Default 100.
    pub max_requests: Option<u32>,
}

/// One `[[personas.NAME.routes]]` entry. Exactly one of `path`, `prefix`, `regex`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRaw {
    /// The path (target without `?query`) equals this.
    pub path: Option<String>,
    /// The path starts with this.
    pub prefix: Option<String>,
    /// The whole target (with query) matches this regex (unanchored).
    pub regex: Option<String>,
    /// Only for this method (case-sensitive, e.g. "POST"). Default: any.
    pub method: Option<String>,
    /// Status code. Default 200.
    pub status: Option<u16>,
    /// Reason phrase. Default: the standard one for `status`.
    pub reason: Option<String>,
    /// Extra headers, each `"Name: value"`; values may use the template aliases.
    pub headers: Option<Vec<String>>,
    /// `Content-Type`. Default "text/html; charset=UTF-8".
    pub content_type: Option<String>,
    /// The body: text (template aliases apply) or `{ file = "..." }` etc. Default empty.
    pub body: Option<BytesSpec>,
    /// Ask for Basic auth with this realm; the body is only served to accepted credentials.
    pub basic_auth: Option<String>,
}

const DEFAULT_MAX_LINE: u64 = 8190;
const DEFAULT_MAX_HEADERS: u32 = 100;
const DEFAULT_MAX_HEAD: u64 = 64 << 10;
const DEFAULT_MAX_BODY: u64 = 1 << 20;
const DEFAULT_MAX_REQUESTS: u32 = 100;
/// Longest chunk-size line (with extensions) in a chunked body.
const MAX_CHUNK_LINE: usize = 1024;
/// Most trailer lines after a chunked body.
const MAX_TRAILERS: u32 = 32;

fn size(v: &Option<NumOrStr>, d: u64) -> Result<u64, String> {
    v.as_ref().map(|v| v.size()).unwrap_or(Ok(d))
}

fn compile(re: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(re)
        .unicode(false)
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .build()
}

impl HttpRaw {
    /// A copy with unset fields taken from `base`; `inherit` comes from `base`.
    pub fn merged_over(&self, base: &HttpRaw) -> HttpRaw {
        let mut m = crate::persona::merge_fields!(
            HttpRaw,
            self,
            base,
            [inherit, description, profile, server, routes, max_line, max_headers, max_head, max_body, max_requests], credentials: None
        );
        m.inherit = base.inherit.clone();
        m.credentials = match (&self.credentials, &base.credentials) {
            (Some(a), Some(b)) => Some(a.merged_over(b)),
            (a, b) => a.clone().or_else(|| b.clone()),
        };
        m
    }

    pub fn validate(&self, at: &str, base_dir: &Path, p: &mut Problems<'_>) {
        if let Some(pr) = &self.profile {
            if Profile::parse(pr).is_none() {
                p.at(
                    &format!("{at}.profile"),
                    format!("{pr:?} is not apache, nginx or router"),
                );
            }
        }
        if let Some(s) = &self.server {
            if s.contains('\r') || s.contains('\n') {
                p.at(&format!("{at}.server"), "one line, without CR/LF");
            }
        }
        for (i, r) in self.routes.iter().flatten().enumerate() {
            r.validate(&format!("{at}.routes[{i}]"), base_dir, p);
        }
        if let Some(c) = &self.credentials {
            c.validate(&format!("{at}.credentials"), p);
        }
        for (name, v, lo, hi) in [
            ("max_line", &self.max_line, 64, 1 << 20),
            ("max_head", &self.max_head, 256, 16 << 20),
            ("max_body", &self.max_body, 0, 64 << 20),
        ] {
            if let Some(m) = v {
                match m.size() {
                    Ok(n) if (lo..=hi).contains(&n) => {}
                    Ok(_) => p.at(
                        &format!("{at}.{name}"),
                        format!("must be {lo} to {hi} bytes"),
                    ),
                    Err(e) => p.at(&format!("{at}.{name}"), e),
                }
            }
        }
        if self.max_headers == Some(0) {
            p.at(&format!("{at}.max_headers"), "must be at least 1");
        }
        if self.max_requests == Some(0) {
            p.at(&format!("{at}.max_requests"), "must be at least 1");
        }
    }

    /// Checks that only make sense on the merged persona.
    pub fn validate_final(&self, at: &str, transports: &[Transport], p: &mut Problems<'_>) {
        if transports.contains(&Transport::Udp) {
            p.at(&format!("{at}.persona"), "the http persona needs TCP");
        }
    }

    pub fn build(&self, base_dir: &Path) -> Result<Http, String> {
        let profile = self
            .profile
            .as_deref()
            .map(|p| Profile::parse(p).ok_or_else(|| format!("unknown profile {p:?}")))
            .transpose()?
            .unwrap_or(Profile::Apache);
        let mut routes = Vec::new();
        for r in self.routes.iter().flatten() {
            routes.push(r.build(base_dir)?);
        }
        routes.extend(profile.routes());
        // The default refuses every credential: a web login that lets bots in would only
        // invite requests for pages that do not exist.
        let creds = match &self.credentials {
            Some(c) => c.clone(),
            None => CredentialsRaw {
                accept: Some(Vec::new()),
                accept_any_after: Some(0),
                ..CredentialsRaw::default()
            },
        };
        Ok(Http {
            profile,
            server: self
                .server
                .clone()
                .unwrap_or_else(|| profile.server().to_string()),
            routes,
            creds: creds.build()?,
            max_line: size(&self.max_line, DEFAULT_MAX_LINE)? as usize,
            max_headers: self.max_headers.unwrap_or(DEFAULT_MAX_HEADERS) as usize,
            max_head: size(&self.max_head, DEFAULT_MAX_HEAD)? as usize,
            max_body: size(&self.max_body, DEFAULT_MAX_BODY)?,
            max_requests: self.max_requests.unwrap_or(DEFAULT_MAX_REQUESTS),
        })
    }
}

impl RouteRaw {
    fn validate(&self, at: &str, base_dir: &Path, p: &mut Problems<'_>) {
        let given = [
            self.path.is_some(),
            self.prefix.is_some(),
            self.regex.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if given != 1 {
            p.at(at, "give exactly one of path, prefix, regex");
        }
        if let Some(re) = &self.regex {
            if let Err(e) = compile(re) {
                let msg = e
                    .to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                p.at(&format!("{at}.regex"), format!("bad regex: {msg}"));
            }
        }
        if let Some(s) = self.status {
            if !(100..=999).contains(&s) {
                p.at(&format!("{at}.status"), "must be 100 to 999");
            }
        }
        for (i, h) in self.headers.iter().flatten().enumerate() {
            let ok = h
                .split_once(':')
                .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(is_tchar));
            if !ok || h.contains('\r') || h.contains('\n') {
                p.at(&format!("{at}.headers[{i}]"), "must be one \"Name: value\"");
            }
        }
        for (name, v) in [
            ("reason", &self.reason),
            ("content_type", &self.content_type),
            ("basic_auth", &self.basic_auth),
            ("method", &self.method),
        ] {
            if v.as_ref().is_some_and(|v| v.contains(['\r', '\n', '"'])) {
                p.at(&format!("{at}.{name}"), "no CR, LF or '\"'");
            }
        }
        if let Some(b) = &self.body {
            b.validate(&format!("{at}.body"), base_dir, p);
        }
    }

    fn build(&self, base_dir: &Path) -> Result<Route, String> {
        let matcher = if let Some(p) = &self.path {
            Match::Path(p.as_bytes().to_vec())
        } else if let Some(p) = &self.prefix {
            Match::Prefix(p.as_bytes().to_vec())
        } else if let Some(re) = &self.regex {
            Match::Regex(compile(re).map_err(|e| e.to_string())?)
        } else {
            return Err("a route needs path, prefix or regex".into());
        };
        let status = self.status.unwrap_or(200);
        let mut headers = Vec::new();
        for h in self.headers.iter().flatten() {
            if let Some((n, v)) = h.split_once(':') {
                headers.push((n.to_string(), Template::compile(v.trim().as_bytes(), None)));
            }
        }
        let body = match &self.body {
            Some(b) => b.load(base_dir)?,
            None => Vec::new(),
        };
        Ok(Route {
            matcher,
            method: self.method.clone(),
            basic_auth: self.basic_auth.clone(),
            resp: Resp {
                status,
                reason: self
                    .reason
                    .clone()
                    .unwrap_or_else(|| reason(status).to_string()),
                headers,
                content_type: Some(
                    self.content_type
                        .clone()
                        .unwrap_or_else(|| HTML.to_string()),
                ),
                body: Template::compile(&body, None),
            },
        })
    }
}

/// RFC 9110 `tchar`: what a method or header name may be made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

const HTML: &str = "text/html; charset=UTF-8";

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        417 => "Expectation Failed",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// The server imitated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Apache,
    Nginx,
    Router,
}

const APACHE_INDEX: &str = include_str!("http/apache_index.html");
const NGINX_INDEX: &str = "<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
<style>
    body {
        width: 35em;
        margin: 0 auto;
        font-family: Tahoma, Verdana, Arial, sans-serif;
    }
</style>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>

<p>For online documentation and support please refer to
<a href=\"http://nginx.org/\">nginx.org</a>.<br/>
Commercial support is available at
<a href=\"http://nginx.com/\">nginx.com</a>.</p>

<p><em>Thank you for using nginx.</em></p>
</body>
</html>
";
const ROUTER_LOGIN: &str = "<html>
<head>
<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">
<title>Wireless Router - Login</title>
</head>
<body>
<form method=\"post\" action=\"/login.cgi\" name=\"login\">
<table align=\"center\">
<tr><td colspan=\"2\"><h2>Wireless N Router</h2></td></tr>
<tr><td>Username:</td><td><input type=\"text\" name=\"username\" maxlength=\"32\"></td></tr>
<tr><td>Password:</td><td><input type=\"password\" name=\"password\" maxlength=\"32\"></td></tr>
<tr><td colspan=\"2\"><input type=\"submit\" value=\"Login\"></td></tr>
</table>
</form>
</body>
</html>
";
const ROUTER_FAILED: &str = "<html>
<head><title>Wireless Router - Login</title></head>
<body>
<p>Username or password is incorrect. Please <a href=\"/\">try again</a>.</p>
</body>
</html>
";
const ROUTER_REALM: &str = "Wireless N Router";

impl Profile {
    pub fn parse(s: &str) -> Option<Profile> {
        match s {
            "apache" => Some(Profile::Apache),
            "nginx" => Some(Profile::Nginx),
            "router" => Some(Profile::Router),
            _ => None,
        }
    }

    fn server(self) -> &'static str {
        match self {
            Profile::Apache => "Apache/2.4.41 (Ubuntu)",
            Profile::Nginx => "nginx/1.18.0 (Ubuntu)",
            Profile::Router => "mini_httpd/1.19 19dec2003",
        }
    }

    fn routes(self) -> Vec<Route> {
        let page = |m: Match, status: u16, body: &str| Route {
            matcher: m,
            method: None,
            basic_auth: None,
            resp: Resp::html(status, body),
        };
        match self {
            Profile::Apache => vec![
                page(Match::Path(b"/".to_vec()), 200, APACHE_INDEX),
                page(Match::Path(b"/index.html".to_vec()), 200, APACHE_INDEX),
            ],
            Profile::Nginx => vec![
                page(Match::Path(b"/".to_vec()), 200, NGINX_INDEX),
                page(Match::Path(b"/index.html".to_vec()), 200, NGINX_INDEX),
            ],
            Profile::Router => {
                let mut admin = page(Match::Prefix(b"/admin".to_vec()), 200, ROUTER_LOGIN);
                admin.basic_auth = Some(ROUTER_REALM.to_string());
                let mut cgi = page(Match::Path(b"/cgi-bin/".to_vec()), 200, ROUTER_LOGIN);
                cgi.matcher = Match::Prefix(b"/cgi-bin/".to_vec());
                cgi.basic_auth = Some(ROUTER_REALM.to_string());
                vec![
                    page(Match::Path(b"/".to_vec()), 200, ROUTER_LOGIN),
                    page(Match::Path(b"/login.html".to_vec()), 200, ROUTER_LOGIN),
                    page(Match::Path(b"/login.cgi".to_vec()), 200, ROUTER_FAILED),
                    admin,
                    cgi,
                ]
            }
        }
    }

    /// The body of an error page the server makes itself (404, 400, 401, 413, 414).
    fn error_body(self, status: u16, host: &str, port: u16) -> String {
        let r = reason(status);
        match self {
            Profile::Apache => {
                let text = match status {
                    404 => "<p>The requested URL was not found on this server.</p>".to_string(),
                    401 => "<p>This server could not verify that you\nare authorized to access the document\nrequested.  Either you supplied the wrong\ncredentials (e.g., bad password), or your\nbrowser doesn't understand how to supply\nthe credentials required.</p>".to_string(),
                    413 => "The requested resource does not allow request data with requests, or the amount of data provided in\nthe request exceeds the capacity limit.".to_string(),
                    414 => "<p>The requested URL's length exceeds the capacity\nlimit for this server.<br />\n</p>".to_string(),
                    417 => "<p>The expectation given in the Expect request-header\nfield could not be met by this server.\n</p>".to_string(),
                    _ => "<p>Your browser sent a request that this server could not understand.<br />\n</p>".to_string(),
                };
                let title = if status == 404 { "Not Found" } else { r };
                format!(
                    "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n\
                     <title>{status} {r}</title>\n</head><body>\n<h1>{title}</h1>\n{text}\n<hr>\n\
                     <address>Apache/2.4.41 (Ubuntu) Server at {host} Port {port}</address>\n\
                     </body></html>\n"
                )
            }
            Profile::Nginx => format!(
                "<html>\r\n<head><title>{status} {r}</title></head>\r\n<body>\r\n\
                 <center><h1>{status} {r}</h1></center>\r\n\
                 <hr><center>nginx/1.18.0 (Ubuntu)</center>\r\n</body>\r\n</html>\r\n"
            ),
            Profile::Router => format!(
                "<HTML><HEAD><TITLE>{status} {r}</TITLE></HEAD>\n<BODY BGCOLOR=\"#cc9999\">\
                 <H4>{status} {r}</H4>\n</BODY></HTML>\n"
            ),
        }
    }
}

enum Match {
    Path(Vec<u8>),
    Prefix(Vec<u8>),
    Regex(Regex),
}

struct Route {
    matcher: Match,
    method: Option<String>,
    basic_auth: Option<String>,
    resp: Resp,
}

/// A response before rendering.
struct Resp {
    status: u16,
    reason: String,
    headers: Vec<(String, Template)>,
    content_type: Option<String>,
    body: Template,
}

impl Resp {
    fn html(status: u16, body: &str) -> Resp {
        Resp {
            status,
            reason: reason(status).to_string(),
            headers: Vec::new(),
            content_type: Some(HTML.to_string()),
            body: Template::compile(body.as_bytes(), None),
        }
    }
}

/// A built http persona, shared by every session of its listener.
pub struct Http {
    profile: Profile,
    server: String,
    routes: Vec<Route>,
    creds: CredPolicy,
    max_line: usize,
    max_headers: usize,
    max_head: usize,
    max_body: u64,
    max_requests: u32,
}

/// One parsed request.
#[derive(Debug, Default)]
pub struct Request {
    pub method: Vec<u8>,
    pub target: Vec<u8>,
    pub version: String,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_slice())
    }
}

/// The answer to some input: bytes to send, events to record, and whether to close (and why).
#[derive(Debug, Default, PartialEq)]
pub struct Reply {
    pub text: Vec<u8>,
    pub events: Vec<EventKind>,
    /// Close after sending; `Some(limit)` when a limit was the reason.
    pub close: Option<Option<&'static str>>,
}

enum Body {
    Length(u64),
    Chunked(ChunkState),
}

#[derive(Clone, Copy)]
enum ChunkState {
    Size,
    Data(u64),
    DataEnd,
    Trailer(u32),
}

enum State {
    Head,
    Body(Box<Request>, Body),
    Closed,
}

/// What one step of parsing found.
enum Step {
    More,
    Done(Box<Request>),
    /// Refuse: status, tag, limit name (if a limit), bytes concerned.
    Refuse(u16, &'static str, Option<&'static str>, usize),
}

/// How far the head in the buffer has been checked.
#[derive(Clone, Copy, Debug, Default)]
struct Scan {
    /// Start of the first line not yet complete.
    start: usize,
    /// Bytes searched for a line end already.
    searched: usize,
    /// The request line was seen and is valid.
    got_line: bool,
    /// Header lines seen.
    lines: usize,
}

/// One connection's dialogue: a pure state machine, no I/O.
pub struct Session<'a> {
    scan: Scan,
    h: &'a Http,
    src: IpAddr,
    dst: SocketAddr,
    buf: Vec<u8>,
    state: State,
    requests: u32,
    /// `HTTP/1.1 100 Continue` owed to a client that waits before sending its body.
    interim: Vec<u8>,
}

fn trim(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn tag(rule: &str, len: usize) -> EventKind {
    EventKind::RuleMatch {
        rule: rule.to_string(),
        action: "tag".to_string(),
        match_len: len as u64,
    }
}

/// `%XX` and `+` decoded, as a form field is.
fn form_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(a), Some(b)) => {
                    out.push(a * 16 + b);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

const USER_FIELDS: &[&str] = &[
    "user",
    "username",
    "login",
    "email",
    "user_name",
    "uname",
    "usr",
    "log",
    "userid",
    "name",
    "account",
    "admin_user",
];
const PASS_FIELDS: &[&str] = &[
    "pass",
    "password",
    "pwd",
    "passwd",
    "pw",
    "passwort",
    "admin_pass",
    "user_password",
];

/// The (user, password) in an urlencoded form, when it has fields named like both.
pub fn form_login(body: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut user = None;
    let mut pass = None;
    for pair in body.split(|b| *b == b'&') {
        let (n, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => continue,
        };
        let n = form_decode(n).to_ascii_lowercase();
        let n = String::from_utf8_lossy(&n);
        let is = |list: &[&str]| list.iter().any(|f| *f == n);
        if user.is_none() && is(USER_FIELDS) {
            user = Some(form_decode(v));
        } else if pass.is_none() && (is(PASS_FIELDS) || n.contains("pass")) {
            pass = Some(form_decode(v));
        }
    }
    Some((user?, pass?))
}

/// The (user, password) in `Authorization: Basic ...`, split at the first `:`.
pub fn basic_login(value: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let v = trim(value);
    let (scheme, rest) = v.split_at(v.iter().position(|b| *b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(trim(rest))
        .ok()?;
    Some(match raw.iter().position(|b| *b == b':') {
        Some(i) => (raw[..i].to_vec(), raw[i + 1..].to_vec()),
        None => (raw, Vec::new()),
    })
}

impl<'a> Session<'a> {
    pub fn new(h: &'a Http, src: IpAddr, dst: SocketAddr) -> Session<'a> {
        Session {
            h,
            src,
            dst,
            buf: Vec::new(),
            scan: Scan::default(),
            state: State::Head,
            requests: 0,
            interim: Vec::new(),
        }
    }

    /// Feeds bytes from the peer; answers every request they complete.
    pub fn on_input(&mut self, data: &[u8]) -> Reply {
        let mut out = Reply::default();
        if matches!(self.state, State::Closed) {
            return out;
        }
        self.buf.extend_from_slice(data);
        loop {
            let step = self.step();
            out.text.append(&mut self.interim);
            match step {
                Step::More => return out,
                Step::Done(req) => {
                    self.requests += 1;
                    let last = self.requests >= self.h.max_requests || !keep_alive(&req);
                    self.answer(&req, last, &mut out);
                    if last {
                        self.state = State::Closed;
                        out.close = Some(None);
                        return out;
                    }
                    self.state = State::Head;
                }
                Step::Refuse(status, rule, limit, len) => {
                    out.events.push(tag(rule, len));
                    let page = self
                        .h
                        .profile
                        .error_body(status, &self.host(None), self.port(None));
                    out.text
                        .extend(self.render(&Resp::html(status, &page), &[], true, false));
                    self.state = State::Closed;
                    self.buf = Vec::new();
                    out.close = Some(limit);
                    return out;
                }
            }
        }
    }

    /// Bytes held for a request not yet complete (the head, capped; a body part not yet
    /// decoded is at most one read).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The tag for a session that ended inside a request, if it did.
    pub fn unfinished(&self) -> Option<EventKind> {
        match &self.state {
            State::Head if !self.buf.iter().all(|b| b.is_ascii_whitespace()) => {
                Some(tag("http.request_unfinished", self.buf.len()))
            }
            State::Body(r, _) => Some(tag("http.request_unfinished", r.body.len())),
            _ => None,
        }
    }

    fn step(&mut self) -> Step {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Head => self.step_head(),
            State::Body(req, body) => self.step_body(req, body),
            State::Closed => Step::More,
        }
    }

    fn step_head(&mut self) -> Step {
        let h = self.h;
        if !self.scan.got_line {
            // Blank lines before a request are ignored (RFC 9112 2.2).
            let lead = self
                .buf
                .iter()
                .position(|b| *b != b'\r' && *b != b'\n')
                .unwrap_or(self.buf.len());
            self.buf.drain(..lead);
            self.scan.searched = self.scan.searched.saturating_sub(lead);
        }
        // Find the end of the head, checking each line once as it completes: what was
        // searched already is not searched again, so a head trickled in byte by byte costs
        // no more than one sent at once.
        let end = loop {
            let sc = self.scan;
            let from = sc.searched.max(sc.start);
            let Some(k) = self.buf[from..].iter().position(|b| *b == b'\n') else {
                self.scan.searched = self.buf.len();
                let partial = self.buf.len() - sc.start;
                if partial > h.max_line {
                    let status = if sc.got_line { 400 } else { 414 };
                    return Step::Refuse(
                        status,
                        "http.line_too_long",
                        Some("http.max_line"),
                        partial,
                    );
                }
                if self.buf.len() > h.max_head {
                    let n = self.buf.len();
                    return Step::Refuse(400, "http.head_too_large", Some("http.max_head"), n);
                }
                self.state = State::Head;
                return Step::More;
            };
            let line_end = from + k;
            self.scan.searched = line_end + 1;
            let len = line_end - sc.start;
            if len > h.max_line {
                let status = if sc.got_line { 400 } else { 414 };
                return Step::Refuse(status, "http.line_too_long", Some("http.max_line"), len);
            }
            if line_end + 1 > h.max_head {
                return Step::Refuse(
                    400,
                    "http.head_too_large",
                    Some("http.max_head"),
                    line_end + 1,
                );
            }
            let line = strip_cr(&self.buf[sc.start..line_end]);
            if !sc.got_line {
                if parse_request_line(line).is_none() {
                    return Step::Refuse(400, "http.bad_request", None, len);
                }
                self.scan.got_line = true;
            } else if line.is_empty() {
                break line_end + 1;
            } else {
                self.scan.lines += 1;
                if self.scan.lines > h.max_headers {
                    return Step::Refuse(
                        400,
                        "http.too_many_headers",
                        Some("http.max_headers"),
                        line_end + 1,
                    );
                }
            }
            self.scan.start = line_end + 1;
        };
        self.scan = Scan::default();
        let head: Vec<u8> = self.buf.drain(..end).collect();
        let mut it = head.split(|b| *b == b'\n');
        let Some((method, target, version)) =
            it.next().and_then(|l| parse_request_line(strip_cr(l)))
        else {
            return Step::Refuse(400, "http.bad_request", None, head.len());
        };
        let mut req = Box::new(Request {
            method: method.to_vec(),
            target: target.to_vec(),
            version,
            ..Request::default()
        });
        for l in it {
            let l = strip_cr(l);
            if l.is_empty() {
                break;
            }
            // No obsolete line folding, no space before the colon (RFC 9112 5.1, 5.2).
            let Some(c) = l.iter().position(|b| *b == b':') else {
                return Step::Refuse(400, "http.bad_request", None, head.len());
            };
            let name = &l[..c];
            if name.is_empty() || !name.iter().all(|b| is_tchar(*b)) {
                return Step::Refuse(400, "http.bad_request", None, head.len());
            }
            req.headers
                .push((name.to_vec(), trim(&l[c + 1..]).to_vec()));
        }
        let chunked = req
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().ends_with(b"chunked"));
        let cl = req.header("content-length").map(|v| {
            std::str::from_utf8(trim(v))
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
        });
        let body = match (chunked, cl) {
            (true, Some(_)) | (false, Some(None)) => {
                return Step::Refuse(400, "http.bad_request", None, head.len())
            }
            (true, None) => Body::Chunked(ChunkState::Size),
            (false, Some(Some(n))) if n > h.max_body => {
                return Step::Refuse(
                    413,
                    "http.body_too_large",
                    Some("http.max_body"),
                    n as usize,
                )
            }
            (false, Some(Some(n))) => Body::Length(n),
            (false, None) => Body::Length(0),
        };
        // Expect (HTTP/1.1 only, as Apache and nginx): 100-continue is answered with an interim
        // 100 when the client is waiting for it (nothing of the body sent yet); anything else
        // is 417.
        if let Some(e) = req.header("expect").filter(|_| req.version == "HTTP/1.1") {
            if !trim(e).eq_ignore_ascii_case(b"100-continue") {
                return Step::Refuse(417, "http.expectation_failed", None, head.len());
            }
            let has_body = !matches!(body, Body::Length(0));
            if has_body && self.buf.is_empty() {
                self.interim
                    .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            }
        }
        self.step_body(req, body)
    }

    fn step_body(&mut self, mut req: Box<Request>, body: Body) -> Step {
        let h = self.h;
        match body {
            Body::Length(n) => {
                let need = (n as usize).saturating_sub(req.body.len());
                let k = need.min(self.buf.len());
                req.body.extend(self.buf.drain(..k));
                if k < need {
                    self.state = State::Body(req, Body::Length(n));
                    return Step::More;
                }
                Step::Done(req)
            }
            Body::Chunked(mut st) => loop {
                match st {
                    ChunkState::Size | ChunkState::Trailer(_) => {
                        let Some(nl) = self.buf.iter().position(|b| *b == b'\n') else {
                            if self.buf.len() > MAX_CHUNK_LINE {
                                return Step::Refuse(400, "http.bad_request", None, self.buf.len());
                            }
                            self.state = State::Body(req, Body::Chunked(st));
                            return Step::More;
                        };
                        if nl > MAX_CHUNK_LINE {
                            return Step::Refuse(400, "http.bad_request", None, nl);
                        }
                        let line: Vec<u8> = self.buf.drain(..=nl).collect();
                        let line = strip_cr(&line[..nl]);
                        if let ChunkState::Trailer(n) = st {
                            if line.is_empty() {
                                return Step::Done(req);
                            }
                            if n >= MAX_TRAILERS {
                                return Step::Refuse(
                                    400,
                                    "http.too_many_headers",
                                    Some("http.max_headers"),
                                    n as usize,
                                );
                            }
                            st = ChunkState::Trailer(n + 1);
                            continue;
                        }
                        let digits = line.split(|b| *b == b';').next().unwrap_or_default();
                        let size = std::str::from_utf8(trim(digits))
                            .ok()
                            .filter(|s| !s.is_empty() && s.len() <= 16)
                            .and_then(|s| u64::from_str_radix(s, 16).ok());
                        st = match size {
                            None => return Step::Refuse(400, "http.bad_request", None, line.len()),
                            Some(0) => ChunkState::Trailer(0),
                            Some(s) if (req.body.len() as u64).saturating_add(s) > h.max_body => {
                                let len = req.body.len().saturating_add(s as usize);
                                return Step::Refuse(
                                    413,
                                    "http.body_too_large",
                                    Some("http.max_body"),
                                    len,
                                );
                            }
                            Some(s) => ChunkState::Data(s),
                        };
                    }
                    ChunkState::Data(n) => {
                        let k = (n as usize).min(self.buf.len());
                        req.body.extend(self.buf.drain(..k));
                        if (k as u64) < n {
                            self.state =
                                State::Body(req, Body::Chunked(ChunkState::Data(n - k as u64)));
                            return Step::More;
                        }
                        st = ChunkState::DataEnd;
                    }
                    ChunkState::DataEnd => {
                        if self.buf.len() < 2 && self.buf != b"\n" {
                            self.state = State::Body(req, Body::Chunked(st));
                            return Step::More;
                        }
                        if self.buf.starts_with(b"\r\n") {
                            self.buf.drain(..2);
                        } else if self.buf.starts_with(b"\n") {
                            self.buf.drain(..1);
                        } else {
                            return Step::Refuse(400, "http.bad_request", None, req.body.len());
                        }
                        st = ChunkState::Size;
                    }
                }
            },
        }
    }

    fn host(&self, req: Option<&Request>) -> String {
        let from_header = req
            .and_then(|r| r.header("host"))
            .map(|h| String::from_utf8_lossy(h).into_owned())
            .filter(|h| {
                !h.is_empty()
                    && h.bytes()
                        .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>' && b != b'&')
            });
        match from_header {
            Some(h) => match h.rsplit_once(':') {
                Some((host, port)) if !host.ends_with(']') || h.starts_with('[') => {
                    if port.bytes().all(|b| b.is_ascii_digit()) {
                        host.to_string()
                    } else {
                        h
                    }
                }
                _ => h,
            },
            None => self.dst.ip().to_string(),
        }
    }

    fn port(&self, req: Option<&Request>) -> u16 {
        req.and_then(|r| r.header("host"))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| h.rsplit_once(':'))
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(self.dst.port())
    }

    /// Records `req` and appends its response.
    fn answer(&mut self, req: &Request, last: bool, out: &mut Reply) {
        let h = self.h;
        out.events.push(EventKind::HttpRequest {
            method: Payload(req.method.clone()),
            target: Payload(req.target.clone()),
            version: req.version.clone(),
            headers: req
                .headers
                .iter()
                .map(|(n, v)| (Payload(n.clone()), Payload(v.clone())))
                .collect(),
            body_len: req.body.len() as u64,
            user_agent: req.header("user-agent").map(|v| Payload(v.to_vec())),
        });
        let mut basic_ok = None;
        if let Some((u, p)) = req.header("authorization").and_then(basic_login) {
            let ok = h.creds.check(self.src, &u, &p);
            out.events.push(login_event(ok, u, p, "http-basic"));
            basic_ok = Some(ok);
        }
        let mut form_ok = false;
        let is_form = req.header("content-type").is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with(b"application/x-www-form-urlencoded")
        });
        if req.method == b"POST" && is_form {
            if let Some((u, p)) = form_login(&req.body) {
                let ok = h.creds.check(self.src, &u, &p);
                out.events.push(login_event(ok, u, p, "http-form"));
                form_ok = ok;
            }
        }
        let path = match req.target.iter().position(|b| *b == b'?') {
            Some(i) => &req.target[..i],
            None => &req.target[..],
        };
        let route = h.routes.iter().find(|r| {
            r.method
                .as_ref()
                .is_none_or(|m| m.as_bytes() == req.method.as_slice())
                && match &r.matcher {
                    Match::Path(p) => p == path,
                    Match::Prefix(p) => path.starts_with(p),
                    Match::Regex(re) => re.is_match(&req.target),
                }
        });
        let head = req.method == b"HEAD";
        let host = self.host(Some(req));
        let port = self.port(Some(req));
        let text = match route {
            // An accepted form login is sent on, as a real admin panel does after its login.
            _ if form_ok => {
                let mut resp = Resp::html(302, "");
                resp.headers
                    .push(("Location".to_string(), Template::compile(b"/", None)));
                self.render(&resp, &[], last, head)
            }
            Some(r) => match &r.basic_auth {
                Some(realm) if basic_ok != Some(true) => {
                    let page = h.profile.error_body(401, &host, port);
                    let mut resp = Resp::html(401, &page);
                    resp.headers.push((
                        "WWW-Authenticate".to_string(),
                        Template::compile(format!("Basic realm=\"{realm}\"").as_bytes(), None),
                    ));
                    self.render(&resp, &[], last, head)
                }
                _ => self.render(&r.resp, &[], last, head),
            },
            None => {
                let page = h.profile.error_body(404, &host, port);
                self.render(&Resp::html(404, &page), &[], last, head)
            }
        };
        out.text.extend(text);
    }

    fn render(&self, r: &Resp, extra: &[(&str, &str)], last: bool, head: bool) -> Vec<u8> {
        let now = Utc::now();
        let body = r.body.render(now, None);
        let mut out = format!("HTTP/1.1 {} {}\r\n", r.status, r.reason).into_bytes();
        let mut line = |n: &str, v: &[u8]| {
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        };
        line(
            "Date",
            now.format("%a, %d %b %Y %H:%M:%S GMT")
                .to_string()
                .as_bytes(),
        );
        if !self.h.server.is_empty() {
            line("Server", self.h.server.as_bytes());
        }
        for (n, v) in &r.headers {
            line(n, &v.render(now, None));
        }
        for (n, v) in extra {
            line(n, v.as_bytes());
        }
        line("Content-Length", body.len().to_string().as_bytes());
        if last {
            line("Connection", b"close");
        } else {
            line("Keep-Alive", b"timeout=5, max=100");
            line("Connection", b"Keep-Alive");
        }
        if let Some(ct) = &r.content_type {
            line("Content-Type", ct.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        if !head {
            out.extend_from_slice(&body);
        }
        out
    }
}

fn login_event(ok: bool, username: Vec<u8>, password: Vec<u8>, method: &str) -> EventKind {
    let (username, password, method) = (Payload(username), Payload(password), method.to_string());
    if ok {
        EventKind::LoginSuccess {
            username,
            password,
            method,
        }
    } else {
        EventKind::LoginFailed {
            username,
            password,
            method,
        }
    }
}

/// `METHOD SP TARGET SP HTTP/1.x`: the method a token, the target visible bytes.
fn parse_request_line(l: &[u8]) -> Option<(&[u8], &[u8], String)> {
    let mut parts = l.split(|b| *b == b' ');
    let method = parts.next()?;
    let target = parts.next()?;
    let version = parts.next()?;
    if parts.next().is_some()
        || method.is_empty()
        || !method.iter().all(|b| is_tchar(*b))
        || target.is_empty()
        || !target.iter().all(|b| b.is_ascii_graphic() || *b >= 0x80)
    {
        return None;
    }
    match version {
        b"HTTP/1.0" | b"HTTP/1.1" => Some((
            method,
            target,
            String::from_utf8_lossy(version).into_owned(),
        )),
        _ => None,
    }
}

/// Whether the connection stays open after `req` (HTTP/1.1 unless `close`; HTTP/1.0 only
/// with `keep-alive`).
fn keep_alive(req: &Request) -> bool {
    let conn = req
        .header("connection")
        .map(|v| v.to_ascii_lowercase())
        .unwrap_or_default();
    let has = |t: &[u8]| conn.split(|b| *b == b',').any(|x| trim(x) == t);
    if req.version == "HTTP/1.0" {
        has(b"keep-alive")
    } else {
        !has(b"close")
    }
}

impl Http {
    /// Talks to one peer until it leaves, a limit trips, or shutdown.
    pub async fn serve(&self, conn: &mut Conn) -> End {
        let (src, dst) = (conn.meta().src.ip(), conn.meta().dst);
        let mut d = Session::new(self, src, dst);
        let end = loop {
            let data = match conn.read().await {
                Ok(d) => d,
                Err(end) => break end,
            };
            let r = d.on_input(&data);
            for ev in r.events {
                conn.emit(ev).await;
            }
            if !r.text.is_empty() {
                if let Err(end) = conn.write(&r.text).await {
                    break end;
                }
            }
            match r.close {
                None => {}
                Some(None) => break End::persona(),
                Some(Some(limit)) => break End::limit(limit),
            }
        };
        if let Some(ev) = d.unfinished() {
            conn.emit(ev).await;
        }
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(toml_src: &str) -> Http {
        let raw: HttpRaw = toml::from_str(toml_src).unwrap();
        raw.build(Path::new(".")).unwrap()
    }

    fn session(h: &Http) -> Session<'_> {
        Session::new(
            h,
            "192.0.2.1".parse().unwrap(),
            "127.0.0.1:80".parse().unwrap(),
        )
    }

    fn text(r: &Reply) -> String {
        String::from_utf8_lossy(&r.text).into_owned()
    }

    type Req = (Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>, u64);

    fn requests(r: &Reply) -> Vec<Req> {
        r.events
            .iter()
            .filter_map(|e| match e {
                EventKind::HttpRequest {
                    target,
                    headers,
                    body_len,
                    ..
                } => Some((
                    target.0.clone(),
                    headers
                        .iter()
                        .map(|(n, v)| (n.0.clone(), v.0.clone()))
                        .collect(),
                    *body_len,
                )),
                _ => None,
            })
            .collect()
    }

    fn logins(r: &Reply) -> Vec<(bool, Vec<u8>, Vec<u8>, String)> {
        r.events
            .iter()
            .filter_map(|e| match e {
                EventKind::LoginFailed {
                    username,
                    password,
                    method,
                } => Some((
                    false,
                    username.0.clone(),
                    password.0.clone(),
                    method.clone(),
                )),
                EventKind::LoginSuccess {
                    username,
                    password,
                    method,
                } => Some((true, username.0.clone(), password.0.clone(), method.clone())),
                _ => None,
            })
            .collect()
    }

    fn tags(r: &Reply) -> Vec<String> {
        r.events
            .iter()
            .filter_map(|e| match e {
                EventKind::RuleMatch { rule, .. } => Some(rule.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn apache_index_404_and_keep_alive() {
        let h = build("");
        let mut s = session(&h);
        let r = s.on_input(b"GET / HTTP/1.1\r\nHost: example.test\r\nX-A: 1\r\n\r\nGET /nope HTTP/1.1\r\nHost: example.test:8080\r\n\r\n");
        let t = text(&r);
        assert!(t.starts_with("HTTP/1.1 200 OK\r\nDate: "), "{t}");
        assert!(t.contains("\r\nServer: Apache/2.4.41 (Ubuntu)\r\n"), "{t}");
        assert!(t.contains("Apache2 Ubuntu Default Page"), "{t}");
        assert!(t.contains("HTTP/1.1 404 Not Found\r\n"), "{t}");
        assert!(
            t.contains(
                "<address>Apache/2.4.41 (Ubuntu) Server at example.test Port 8080</address>"
            ),
            "{t}"
        );
        assert_eq!(r.close, None);
        let reqs = requests(&r);
        assert_eq!(reqs.len(), 2);
        assert_eq!(
            reqs[0].1,
            vec![
                (b"Host".to_vec(), b"example.test".to_vec()),
                (b"X-A".to_vec(), b"1".to_vec())
            ]
        );
    }

    #[test]
    fn http10_closes_and_head_has_no_body() {
        let h = build("profile = \"nginx\"");
        let mut s = session(&h);
        let r = s.on_input(b"HEAD / HTTP/1.0\r\n\r\n");
        let t = text(&r);
        assert!(t.contains("Server: nginx/1.18.0 (Ubuntu)\r\n"), "{t}");
        assert!(t.contains("Connection: close\r\n"), "{t}");
        assert!(t.ends_with("\r\n\r\n"), "{t}");
        assert_eq!(r.close, Some(None));
    }

    #[test]
    fn split_input_content_length_and_chunked_bodies() {
        let h = build("");
        let mut s = session(&h);
        let mut all = Reply::default();
        for b in b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloPOST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n".iter() {
            let r = s.on_input(&[*b]);
            all.events.extend(r.events);
            all.text.extend(r.text);
        }
        let reqs = requests(&all);
        assert_eq!(reqs.len(), 2, "{}", text(&all));
        assert_eq!(reqs[0].2, 5);
        assert_eq!(reqs[1].2, 5);
    }

    #[test]
    fn expect_100_continue_gets_an_interim_reply_only_when_the_client_waits() {
        let h = build("");
        let mut s = session(&h);
        let r = s.on_input(
            b"POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n",
        );
        assert_eq!(text(&r), "HTTP/1.1 100 Continue\r\n\r\n");
        let r = s.on_input(b"abc");
        assert!(text(&r).starts_with("HTTP/1.1 404 "), "{}", text(&r));
        assert_eq!(requests(&r)[0].2, 3);
        // The body came with the head: no interim reply.
        let r = session(&h)
            .on_input(b"POST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc");
        assert!(text(&r).starts_with("HTTP/1.1 404 "), "{}", text(&r));
        // No body, or HTTP/1.0: none either.
        let r = session(&h).on_input(b"GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n");
        assert!(!text(&r).contains("100 Continue"));
        let r = session(&h)
            .on_input(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
        assert_eq!(text(&r), "");
        // Any other expectation: 417.
        let r = session(&h).on_input(b"GET / HTTP/1.1\r\nExpect: teapot\r\n\r\n");
        assert!(
            text(&r).starts_with("HTTP/1.1 417 Expectation Failed\r\n"),
            "{}",
            text(&r)
        );
        assert_eq!(tags(&r), ["http.expectation_failed"]);
    }

    #[test]
    fn garbage_and_limits_are_refused_and_tagged() {
        let h = build("max_headers = 3\nmax_line = 100\nmax_body = 10");
        let r = session(&h).on_input(b"\x16\x03\x01\x02\x00\x01\n");
        assert!(text(&r).starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert_eq!(tags(&r), ["http.bad_request"]);
        assert_eq!(r.close, Some(None));

        let r = session(&h).on_input(&[b'A'; 200]);
        assert!(text(&r).starts_with("HTTP/1.1 414 "), "{}", text(&r));
        assert_eq!(r.close, Some(Some("http.max_line")));

        let r = session(&h).on_input(b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\n");
        assert_eq!(tags(&r), ["http.too_many_headers"]);
        assert_eq!(r.close, Some(Some("http.max_headers")));

        let r = session(&h).on_input(b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n");
        assert!(text(&r).starts_with("HTTP/1.1 413 "), "{}", text(&r));
        assert_eq!(tags(&r), ["http.body_too_large"]);

        let r = session(&h).on_input(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n",
        );
        assert_eq!(tags(&r), ["http.body_too_large"]);

        let r = session(&h)
            .on_input(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(tags(&r), ["http.bad_request"]);

        let mut s = session(&h);
        let r = s.on_input(b"GET / HTTP/1.1\r\nHost: x");
        assert!(r.text.is_empty());
        assert!(s.unfinished().is_some());
    }

    #[test]
    fn basic_auth_and_form_credentials_exactly() {
        let h = build("profile = \"router\"\n[credentials]\naccept = [\"admin:s3cret\"]\naccept_any_after = 0");
        let mut s = session(&h);
        let r = s.on_input(b"GET /admin/ HTTP/1.1\r\n\r\n");
        let t = text(&r);
        assert!(t.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{t}");
        assert!(
            t.contains("WWW-Authenticate: Basic realm=\"Wireless N Router\"\r\n"),
            "{t}"
        );
        // "root:pa:ss\xff" -> password keeps its colon and the raw byte.
        let r =
            s.on_input(b"GET /admin/ HTTP/1.1\r\nAuthorization: Basic cm9vdDpwYTpzc/8=\r\n\r\n");
        assert_eq!(
            logins(&r),
            [(
                false,
                b"root".to_vec(),
                b"pa:ss\xff".to_vec(),
                "http-basic".to_string()
            )]
        );
        let r =
            s.on_input(b"GET /admin/ HTTP/1.1\r\nAuthorization: Basic YWRtaW46czNjcmV0\r\n\r\n");
        assert!(text(&r).starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(logins(&r)[0].0);
        let body = b"username=ad%2Bmin+x&password=p%40ss%26w%FF&submit=Login";
        let req = [
            b"POST /login.cgi HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ".to_vec(),
            body.len().to_string().into_bytes(),
            b"\r\n\r\n".to_vec(),
            body.to_vec(),
        ]
        .concat();
        let ok = b"user=admin&pwd=s3cret";
        let r = s.on_input(
            &[
                b"POST /login.cgi HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 21\r\n\r\n".as_slice(),
                ok,
            ]
            .concat(),
        );
        assert!(
            text(&r).starts_with("HTTP/1.1 302 Found\r\n"),
            "{}",
            text(&r)
        );
        assert!(text(&r).contains("\r\nLocation: /\r\n"), "{}", text(&r));
        assert_eq!(
            logins(&r),
            [(
                true,
                b"admin".to_vec(),
                b"s3cret".to_vec(),
                "http-form".to_string()
            )]
        );
        let r = s.on_input(&req);
        assert_eq!(
            logins(&r),
            [(
                false,
                b"ad+min x".to_vec(),
                b"p@ss&w\xff".to_vec(),
                "http-form".to_string()
            )]
        );
    }

    #[test]
    fn config_routes_come_first_with_templates() {
        let h = build(
            "[[routes]]\nprefix = \"/wp-\"\nstatus = 403\nheaders = [\"X-T: %TIME_GMT_EPOCH%\"]\nbody = \"no\"\n\
             [[routes]]\nregex = \"\\\\.php\\\\?\"\nmethod = \"GET\"\nbody = \"php\"\ncontent_type = \"text/plain\"",
        );
        let mut s = session(&h);
        let t = text(&s.on_input(b"GET /wp-login.php HTTP/1.1\r\n\r\n"));
        assert!(t.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{t}");
        assert!(t.contains("\r\nX-T: 1") || t.contains("\r\nX-T: 2"), "{t}");
        assert!(t.ends_with("\r\n\r\nno"), "{t}");
        let t = text(&s.on_input(b"GET /x.php?a=1 HTTP/1.1\r\n\r\n"));
        assert!(
            t.contains("Content-Type: text/plain\r\n") && t.ends_with("php"),
            "{t}"
        );
    }

    #[test]
    fn form_decode_edges() {
        assert_eq!(form_decode(b"%41%4"), b"A%4");
        assert_eq!(form_decode(b"%"), b"%");
        assert_eq!(form_decode(b"%zz+"), b"%zz ");
    }
}

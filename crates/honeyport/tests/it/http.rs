//! The http persona over real sockets, driven by real `curl` (HTTP and HTTPS, Basic auth, a
//! form login, extra headers, two URLs on one keep-alive connection) and `nmap -sV` (Apache
//! httpd, nginx), plus raw bytes for the bad input: a header flood and an oversized request
//! line.

use std::process::Stdio;

use crate::common::*;
use honeyport_event::{EndReason, Event, EventKind};

fn config(persona: &str, tls: &str) -> String {
    format!(
        r#"
[personas.web]
type = "http"
{persona}

[[listeners]]
name = "web"
ports = 0
bind = ["127.0.0.1"]
persona = "web"
{tls}
"#
    )
}

/// (method, target, headers in order, body_len) of every request recorded.
type Req = (Vec<u8>, Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>, u64);

fn requests(s: &[Event]) -> Vec<Req> {
    s.iter()
        .filter_map(|e| match &e.kind {
            EventKind::HttpRequest {
                method,
                target,
                headers,
                body_len,
                ..
            } => Some((
                method.0.clone(),
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

fn names(h: &[(Vec<u8>, Vec<u8>)]) -> Vec<String> {
    h.iter()
        .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
        .collect()
}

async fn curl(args: &[&str]) -> (String, String) {
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new("curl")
            .args(["-sS", "--max-time", "8"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("curl hung")
    .expect("curl runs");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_keep_alive_headers_in_order_and_apache_pages() {
    let s = start(&config("", "")).await;
    let base = format!("http://{}", s.tcp("web"));
    let (out, err) = curl(&[
        "-i",
        "-H",
        "X-First: 1",
        "-H",
        "X-Second: two words",
        &format!("{base}/"),
        &format!("{base}/missing?q=1"),
    ])
    .await;
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}{err}");
    assert!(out.contains("Server: Apache/2.4.41 (Ubuntu)\r\n"), "{out}");
    assert!(
        out.contains("Apache2 Ubuntu Default Page: It works"),
        "{out}"
    );
    assert!(out.contains("HTTP/1.1 404 Not Found\r\n"), "{out}");
    assert!(
        out.contains("<p>The requested URL was not found on this server.</p>"),
        "{out}"
    );
    // curl says when it reuses the connection; both requests went over one socket.
    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 1, "keep-alive: one connection for two URLs");
    let reqs = requests(&sessions[0]);
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].0, b"GET");
    assert_eq!(reqs[0].1, b"/");
    assert_eq!(reqs[1].1, b"/missing?q=1");
    assert_eq!(
        names(&reqs[0].2),
        ["Host", "User-Agent", "Accept", "X-First", "X-Second"]
    );
    assert_eq!(reqs[0].2[4].1, b"two words");
    let ua = sessions[0].iter().find_map(|e| match &e.kind {
        EventKind::HttpRequest { user_agent, .. } => user_agent.clone(),
        _ => None,
    });
    assert!(ua.unwrap().0.starts_with(b"curl/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_basic_auth_and_form_login_captured_exactly_over_https() {
    let s = start(&config(
        "profile = \"router\"\n[personas.web.credentials]\naccept = [\"admin:0pen sesame\"]\naccept_any_after = 0",
        "tls = { self_signed = true }",
    ))
    .await;
    let base = format!("https://{}", s.tcp("web"));
    let (out, err) = curl(&["-k", "-i", &format!("{base}/admin/")]).await;
    assert!(
        out.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
        "{out}{err}"
    );
    assert!(
        out.contains("WWW-Authenticate: Basic realm=\"Wireless N Router\"\r\n"),
        "{out}"
    );
    let (out, _) = curl(&[
        "-k",
        "-i",
        "-u",
        "root:p@ss:w0rd é",
        &format!("{base}/admin/"),
    ])
    .await;
    assert!(out.starts_with("HTTP/1.1 401 "), "{out}");
    let (out, _) = curl(&[
        "-k",
        "-i",
        "-u",
        "admin:0pen sesame",
        &format!("{base}/admin/"),
    ])
    .await;
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    let (out, _) = curl(&[
        "-k",
        "-d",
        "username=ad%2Bmin+1&password=p%40ss%26%FFword&submit=Login",
        &format!("{base}/login.cgi"),
    ])
    .await;
    assert!(out.contains("incorrect"), "{out}");
    let (out, _) = curl(&["-k", "-i", &format!("{base}/")]).await;
    assert!(out.contains("name=\"password\""), "{out}");

    let done = s.stop().await;
    done.assert_paired();
    let all = done.all();
    assert_eq!(
        logins(&all),
        [
            (
                false,
                b"root".to_vec(),
                "p@ss:w0rd é".as_bytes().to_vec(),
                "http-basic".to_string()
            ),
            (
                true,
                b"admin".to_vec(),
                b"0pen sesame".to_vec(),
                "http-basic".to_string()
            ),
            (
                false,
                b"ad+min 1".to_vec(),
                b"p@ss&\xffword".to_vec(),
                "http-form".to_string()
            ),
        ]
    );
    // Every session was TLS, and the form's body length is recorded.
    assert_eq!(count_kind(&all, "tls.handshake"), 5);
    let reqs = requests(&all);
    assert_eq!(reqs.len(), 5);
    assert_eq!(reqs[3].0, b"POST");
    assert_eq!(reqs[3].3, 58);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_flood_and_oversized_request_line_are_capped_and_recorded() {
    let s = start(&config("max_headers = 50", "")).await;
    let addr = s.tcp("web");

    let mut c = connect(addr).await;
    let mut flood = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..5000 {
        flood.extend_from_slice(format!("X-Flood-{i}: {}\r\n", "a".repeat(20)).as_bytes());
    }
    // The server may close before it has read everything; a failed write is fine.
    let _ = tokio::io::AsyncWriteExt::write_all(&mut c, &flood).await;
    let reply = read_to_close(&mut c).await;
    assert!(reply.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));

    let mut c = connect(addr).await;
    let mut line = b"GET /".to_vec();
    line.extend_from_slice(&[b'A'; 100_000]);
    let _ = tokio::io::AsyncWriteExt::write_all(&mut c, &line).await;
    let reply = read_to_close(&mut c).await;
    assert!(reply.starts_with(b"HTTP/1.1 414 Request-URI Too Long\r\n"));

    let mut c = connect(addr).await;
    send(&mut c, b"\x00\x01garbage\r\n\r\n").await;
    let reply = read_to_close(&mut c).await;
    assert!(reply.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 3);
    assert_eq!(rules_of(&sessions[0]), ["http.too_many_headers"]);
    assert_eq!(
        end_of(&sessions[0]),
        (EndReason::Limit, Some("http.max_headers".to_string()))
    );
    assert_eq!(rules_of(&sessions[1]), ["http.line_too_long"]);
    assert_eq!(
        end_of(&sessions[1]),
        (EndReason::Limit, Some("http.max_line".to_string()))
    );
    assert_eq!(rules_of(&sessions[2]), ["http.bad_request"]);
    for s in &sessions {
        assert!(requests(s).is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nmap_identifies_the_apache_and_nginx_profiles() {
    let s = start(
        r#"
[personas.apache]
type = "http"

[personas.nginx]
type = "http"
profile = "nginx"

[[listeners]]
name = "apache"
ports = 0
bind = ["127.0.0.1"]
persona = "apache"

[[listeners]]
name = "nginx"
ports = 0
bind = ["127.0.0.1"]
persona = "nginx"
"#,
    )
    .await;
    let (apache, nginx) = (s.tcp("apache").port(), s.tcp("nginx").port());
    let (lines, text) = nmap_service_lines(&[apache, nginx]).await;
    assert!(lines[0].contains("Apache httpd 2.4.41"), "{text}");
    assert!(lines[1].contains("nginx 1.18.0"), "{text}");
    let done = s.stop().await;
    done.assert_paired();
}

#[test]
fn http_config_mistakes_are_reported() {
    let src = config(
        "profile = \"iis\"\nmax_requests = 0\n[[personas.web.routes]]\nregex = \"(\"\n\
         headers = [\"no colon\"]\n[[personas.web.routes]]\npath = \"/\"\nprefix = \"/\"",
        "transport = \"udp\"",
    );
    let err = match honeyport::config::validate_str(&src, "t.toml", &fixtures()) {
        Ok(_) => panic!("accepted"),
        Err(e) => e,
    };
    let text = err.to_string();
    assert!(text.contains("personas.web.profile"), "{text}");
    assert!(text.contains("personas.web.max_requests"), "{text}");
    assert!(text.contains("personas.web.routes[0].regex"), "{text}");
    assert!(text.contains("personas.web.routes[0].headers[0]"), "{text}");
    assert!(
        text.contains("exactly one of path, prefix, regex"),
        "{text}"
    );
    assert!(text.contains("needs TCP"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_expect_100_continue_gets_the_interim_reply_and_the_body_is_captured() {
    let s = start(&config("", "")).await;
    let url = format!("http://{}/upload.php", s.tcp("web"));
    let body = "x".repeat(5000);
    // curl holds the body back until it sees "100 Continue" (here for up to 30 s, longer than
    // its 8 s --max-time): the upload completes only if the persona sends it.
    let (_, err) = curl(&[
        "-v",
        "--expect100-timeout",
        "30",
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        &body,
        &url,
    ])
    .await;
    assert!(err.contains("< HTTP/1.1 100 Continue"), "{err}");
    assert!(err.contains("< HTTP/1.1 404 Not Found"), "{err}");

    let done = s.stop().await;
    done.assert_paired();
    let got: Vec<_> = done
        .all()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::HttpRequest {
                method, body_len, ..
            } => Some((method.0, body_len)),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![(b"POST".to_vec(), 5000)]);
}

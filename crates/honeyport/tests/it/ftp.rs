//! The ftp persona over real sockets, driven by real clients: Python `ftplib` (login refused
//! and accepted, PWD/SYST/LIST, a STOR upload and a RETR over passive data connections),
//! `hydra` (every credential it tried is in the store), `nmap -sV` (vsftpd, ProFTPD), raw bytes
//! for the bad input: active mode, an overlong line.

use crate::common::*;
use honeyport_event::EventKind;
use sha2::{Digest as _, Sha256};

fn config(persona: &str) -> String {
    format!(
        r#"
[personas.ftp]
type = "ftp"
{persona}

[[listeners]]
name = "ftp"
ports = 0
bind = ["127.0.0.1"]
persona = "ftp"
"#
    )
}

const FTPLIB: &str = r#"
import ftplib, io, sys
host, port = sys.argv[1], int(sys.argv[2])
f = ftplib.FTP()
f.connect(host, port, timeout=10)
assert f.getwelcome() == "220 (vsFTPd 3.0.3)", f.getwelcome()
try:
    f.login("root", "wr0ng pass")
    sys.exit("login accepted?")
except ftplib.error_perm as e:
    assert str(e) == "530 Login incorrect.", e
f.close()
f = ftplib.FTP()
f.connect(host, port, timeout=10)
assert f.login("anonymous", "bot@example.test").startswith("230 Login successful."), "login"
assert f.pwd() == "/"
assert f.sendcmd("SYST") == "215 UNIX Type: L8"
lines = []
f.retrlines("LIST", lines.append)
assert any(l.endswith(" pub") for l in lines), lines
assert any(l.endswith(" welcome.msg") for l in lines), lines
assert f.storbinary("STOR x.sh", io.BytesIO(sys.argv[3].encode() * 1000)).startswith("226"), "stor"
got = io.BytesIO()
f.retrbinary("RETR welcome.msg", got.write)
assert got.getvalue() == b"Welcome to the FTP archive.\r\n", got.getvalue()
f.cwd("pub")
assert f.pwd() == "/pub"
f.quit()
print("ok")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_ftplib_login_list_and_a_passive_upload_recorded_by_sha256() {
    let s = start(&config(
        "[personas.ftp.credentials]\naccept = []\naccept_any_after = 0",
    ))
    .await;
    let addr = s.tcp("ftp");
    let out = run_client(
        tokio::process::Command::new("python3")
            .arg("-c")
            .arg(FTPLIB)
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .arg("#!/bin/sh\necho pwned\n"),
    )
    .await;
    assert!(
        out.status.success(),
        "ftplib: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 2);
    assert_eq!(
        logins(&sessions[0]),
        [(
            false,
            b"root".to_vec(),
            b"wr0ng pass".to_vec(),
            "ftp".to_string()
        )]
    );
    let sess = &sessions[1];
    assert_eq!(
        logins(sess),
        [(
            true,
            b"anonymous".to_vec(),
            b"bot@example.test".to_vec(),
            "ftp".to_string()
        )]
    );
    let body = b"#!/bin/sh\necho pwned\n".repeat(1000);
    let writes: Vec<_> = sess
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::FileWrite { path, sha256, len } => {
                Some((path.0.clone(), sha256.clone(), *len))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        writes,
        [(
            b"x.sh".to_vec(),
            hex::encode(Sha256::digest(&body)),
            body.len() as u64
        )]
    );
    let cmds = commands_flagged(sess);
    let lines: Vec<&[u8]> = cmds.iter().map(|c| c.0.as_slice()).collect();
    for want in [
        &b"USER anonymous"[..],
        b"PWD",
        b"SYST",
        b"PASV",
        b"LIST",
        b"STOR x.sh",
        b"RETR welcome.msg",
        b"QUIT",
    ] {
        assert!(lines.contains(&want), "{want:?} not in {lines:?}");
    }
    assert!(cmds.iter().all(|c| c.1), "{cmds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hydra_every_password_it_tried_is_stored_as_a_failed_login() {
    let s = start(&config(
        "[personas.ftp.credentials]\naccept = []\naccept_any_after = 0",
    ))
    .await;
    let addr = s.tcp("ftp");
    let dir = tempfile::tempdir().unwrap();
    let words = ["123456", "pass word", "toor", "r00t!"];
    std::fs::write(dir.path().join("pw.txt"), words.join("\n") + "\n").unwrap();
    let out = run_client(
        tokio::process::Command::new("hydra")
            .current_dir(dir.path())
            .args(["-I", "-t", "1", "-l", "root", "-P", "pw.txt"])
            .arg(format!("ftp://{}:{}", addr.ip(), addr.port())),
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("0 valid password"),
        "hydra: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let done = s.stop().await;
    done.assert_paired();
    let tried: Vec<_> = done.sessions().iter().flat_map(|s| logins(s)).collect();
    for w in words {
        assert!(
            tried.contains(&(false, b"root".to_vec(), w.as_bytes().to_vec(), "ftp".into())),
            "{w:?} not stored: {tried:?}"
        );
    }
    assert!(tried.iter().all(|t| !t.0), "{tried:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_mode_is_refused_and_an_overlong_line_is_capped() {
    let s = start(&config("max_line = 128")).await;
    let mut c = connect(s.tcp("ftp")).await;
    read_until(&mut c, b"220 (vsFTPd 3.0.3)\r\n").await;
    send(&mut c, b"USER ftp\r\nPASS x\r\n").await;
    read_until(&mut c, b"230 Login successful.\r\n").await;
    // An address the peer names is never connected to.
    send(
        &mut c,
        b"PORT 203,0,113,9,0,80\r\nEPRT |1|203.0.113.9|80|\r\n",
    )
    .await;
    read_until(
        &mut c,
        b"500 Illegal PORT command.\r\n500 Illegal PORT command.\r\n",
    )
    .await;
    let mut long = vec![b'A'; 100_000];
    long.extend_from_slice(b"\r\nNOOP\r\n");
    send(&mut c, &long).await;
    read_until(&mut c, b"500 Input line too long.\r\n200 NOOP ok.\r\n").await;
    send(&mut c, b"QUIT\r\n").await;
    read_to_close(&mut c).await;

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    let sess = &sessions[0];
    assert_eq!(
        rules_of(sess),
        [
            "ftp.active_mode_refused",
            "ftp.active_mode_refused",
            "ftp.line_too_long"
        ]
    );
    let cmds = commands_flagged(sess);
    assert!(
        cmds.iter().any(|c| c.0 == vec![b'A'; 128] && !c.1),
        "{cmds:?}"
    );
}

#[test]
fn ftp_config_mistakes_are_reported() {
    let err = honeyport::config::validate_str(
        &config("profile = \"wu-ftpd\"\nmax_upload = \"1GiB\"\ndata_timeout = 0"),
        "test.toml",
        &fixtures(),
    )
    .err()
    .expect("invalid");
    let text = err.to_string();
    assert!(text.contains("personas.ftp.profile"), "{text}");
    assert!(text.contains("personas.ftp.max_upload"), "{text}");
    assert!(text.contains("personas.ftp.data_timeout"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nmap_identifies_the_vsftpd_and_proftpd_profiles() {
    let s = start(
        r#"
[personas.vsftpd]
type = "ftp"

[personas.proftpd]
type = "ftp"
profile = "proftpd"

[[listeners]]
name = "vsftpd"
ports = 0
bind = ["127.0.0.1"]
persona = "vsftpd"

[[listeners]]
name = "proftpd"
ports = 0
bind = ["127.0.0.1"]
persona = "proftpd"
"#,
    )
    .await;
    let (vs, pro) = (s.tcp("vsftpd").port(), s.tcp("proftpd").port());
    let (lines, text) = nmap_service_lines(&[vs, pro]).await;
    assert!(lines[0].contains("vsftpd 3.0.3"), "{text}");
    assert!(lines[1].contains("ProFTPD"), "{text}");
    let done = s.stop().await;
    done.assert_paired();
}

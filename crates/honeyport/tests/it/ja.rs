//! JA3 and JA4 of real clients (`curl`, `openssl s_client`, Python `ssl`): each one's
//! ClientHello is captured by a bare loopback listener written here (read until
//! `classify::tls::parse` has a whole ClientHello, then close), fingerprinted in Rust, and
//! fingerprinted again by an independent Python script written from the JA3 and JA4 specs
//! (the raw bytes parsed with `struct`); both must agree, and SNI and ALPN must be what the
//! client was told to send.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use honeyport::classify::tls::{parse, ClientHello, Parse};

/// JA3 and JA4 from the raw bytes (hex in argv[1]), from the specs: JA3 (Salesforce) and
/// JA4 TLS client (FoxIO). Prints one JSON object.
const PY_JA: &str = r#"
import hashlib, json, struct, sys

data = bytes.fromhex(sys.argv[1])
hs, i = b'', 0
while True:
    ctype, _ver, ln = struct.unpack('>BHH', data[i:i + 5])
    assert ctype == 22, 'handshake record'
    hs += data[i + 5:i + 5 + ln]
    i += 5 + ln
    if len(hs) >= 4 and len(hs) >= 4 + int.from_bytes(hs[1:4], 'big'):
        break
assert hs[0] == 1, 'ClientHello'
body = hs[4:4 + int.from_bytes(hs[1:4], 'big')]
pos = 0

def take(n):
    global pos
    b = body[pos:pos + n]
    assert len(b) == n
    pos += n
    return b

def u16s(b):
    return list(struct.unpack('>%dH' % (len(b) // 2), b))

legacy, = struct.unpack('>H', take(2))
take(32)
take(take(1)[0])
cl, = struct.unpack('>H', take(2))
ciphers = u16s(take(cl))
take(take(1)[0])
exts = []
if pos < len(body):
    el, = struct.unpack('>H', take(2))
    end = pos + el
    while pos < end:
        t, l = struct.unpack('>HH', take(4))
        exts.append((t, take(l)))
assert pos == len(body)

GREASE = {0x0a0a + 0x1010 * k for k in range(16)}
types = [t for t, _ in exts]

def ext(t):
    return next((d for x, d in exts if x == t), b'')

groups = u16s(ext(0x000a)[2:])
point_formats = list(ext(0x000b)[1:])
sigalgs = u16s(ext(0x000d)[2:])
versions = u16s(ext(0x002b)[1:])
alpn, a = [], ext(0x0010)[2:]
while a:
    alpn.append(a[1:1 + a[0]].decode('latin-1'))
    a = a[1 + a[0]:]
sni = None
s = ext(0x0000)
if s:
    assert s[2] == 0, 'host_name'
    n = int.from_bytes(s[3:5], 'big')
    sni = s[5:5 + n].decode()

def dec(v, drop=True):
    return '-'.join(str(x) for x in v if not (drop and x in GREASE))

ja3_string = ','.join([str(legacy), dec(ciphers), dec(types), dec(groups), dec(point_formats, False)])

vs = [v for v in versions if v not in GREASE]
version = max(vs) if vs else legacy
vname = {0x0304: '13', 0x0303: '12', 0x0302: '11', 0x0301: '10', 0x0300: 's3', 0x0002: 's2',
         0xfeff: 'd1', 0xfefd: 'd2', 0xfefc: 'd3'}.get(version, '00')
cs = sorted(c for c in ciphers if c not in GREASE)
es = [t for t in types if t not in GREASE]
if alpn and alpn[0]:
    f, l = alpn[0][0], alpn[0][-1]
    if f.isascii() and f.isalnum() and l.isascii() and l.isalnum():
        alpn_chars = f + l
    else:
        alpn_chars = '%02x' % ord(f) + '%02x' % ord(l)
        alpn_chars = alpn_chars[0] + alpn_chars[-1]
else:
    alpn_chars = '00'
a_part = 't%s%s%02d%02d%s' % (vname, 'd' if 0 in types else 'i', min(len(cs), 99), min(len(es), 99), alpn_chars)
b_raw = ','.join('%04x' % c for c in cs)
c_raw = ','.join('%04x' % e for e in sorted(e for e in es if e not in (0x0000, 0x0010)))
sg = [x for x in sigalgs if x not in GREASE]
if sg:
    c_raw += '_' + ','.join('%04x' % x for x in sg)

def h12(s):
    return hashlib.sha256(s.encode()).hexdigest()[:12] if s else '000000000000'

print(json.dumps({
    'sni': sni, 'alpn': alpn, 'ja3_string': ja3_string,
    'ja3': hashlib.md5(ja3_string.encode()).hexdigest(),
    'ja4': '%s_%s_%s' % (a_part, h12(b_raw), h12(c_raw)),
    'ja4_r': '%s_%s_%s' % (a_part, b_raw, c_raw),
}))
"#;

/// Starts `client(port)` against a loopback listener, reads its first bytes until they hold a
/// whole ClientHello (or 5 s pass), closes, and returns the bytes and the parsed hello.
fn capture(client: impl FnOnce(u16) -> Child) -> (Vec<u8>, ClientHello) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut child = client(port);
    let deadline = Instant::now() + Duration::from_secs(5);
    let result = (|| {
        let mut stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "the client never connected");
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match parse(&raw) {
                Parse::Hello(h) => return (raw, *h),
                Parse::NeedMore => {}
                other => panic!("{other:?} from {}", hex::encode(&raw)),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no whole ClientHello in 5 s: {}",
                hex::encode(&raw)
            );
            stream.set_read_timeout(Some(left)).unwrap();
            let n = stream.read(&mut buf).expect("read the ClientHello");
            assert!(n > 0, "closed before a whole ClientHello");
            raw.extend_from_slice(&buf[..n]);
        }
    })();
    // The stream is closed (dropped); the client gives up on its own, or is ended here.
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// The client's fingerprints computed in Rust and by `PY_JA` agree; SNI and ALPN as told.
fn check(who: &str, raw: &[u8], h: &ClientHello, sni: Option<&str>, alpn: &[&str]) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(PY_JA)
        .arg(hex::encode(raw))
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{who}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let py: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!(
        "{who}: JA3 {} ({})\n{who}: JA4 {} ({})\n{who}: hello {}",
        h.ja3(),
        h.ja3_string(),
        h.ja4(),
        h.ja4_raw(),
        hex::encode(raw)
    );
    assert_eq!(py["ja3_string"], h.ja3_string(), "{who}");
    assert_eq!(py["ja3"], h.ja3(), "{who}");
    assert_eq!(py["ja4_r"], h.ja4_raw(), "{who}");
    assert_eq!(py["ja4"], h.ja4(), "{who}");
    assert_eq!(py["sni"].as_str(), h.sni.as_deref(), "{who}");
    assert_eq!(h.sni.as_deref(), sni, "{who}: SNI");
    let got: Vec<&[u8]> = h.alpn.iter().map(Vec::as_slice).collect();
    let want: Vec<&[u8]> = alpn.iter().map(|a| a.as_bytes()).collect();
    assert_eq!(got, want, "{who}: ALPN");
    assert_eq!(py["alpn"], serde_json::json!(alpn), "{who}");
    // Shapes: md5 hex; a_b_c with 10-character a, 12 hex digits each for b and c.
    assert_eq!(h.ja3().len(), 32);
    let ja4 = h.ja4();
    let parts: Vec<&str> = ja4.split('_').collect();
    assert_eq!(parts.len(), 3, "{who}");
    assert!(parts[0].starts_with('t') && parts[0].len() == 10, "{who}");
    for p in &parts[1..] {
        assert!(
            p.len() == 12 && p.bytes().all(|b| b.is_ascii_hexdigit()),
            "{who}"
        );
    }
    assert_eq!(h.ja4_raw().split('_').next(), Some(parts[0]));
}

fn null(cmd: &mut Command) -> Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the client starts")
}

/// Debian's curl is built with nghttp2, so it offers h2 and http/1.1; it sends no SNI for an
/// IP-address URL (RFC 6066 3), so JA4 says `i`.
#[test]
fn curl_client_hello() {
    let (raw, h) = capture(|port| {
        null(Command::new("curl").args([
            "-sk",
            "--max-time",
            "10",
            &format!("https://127.0.0.1:{port}/"),
        ]))
    });
    check("curl", &raw, &h, None, &["h2", "http/1.1"]);
    assert!(h.ja4().starts_with("t13i"), "{}", h.ja4());
}

/// `openssl s_client -servername example.test`: SNI, no ALPN unless asked.
#[test]
fn openssl_client_hello() {
    let (raw, h) = capture(|port| {
        null(Command::new("openssl").args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "example.test",
        ]))
    });
    check("openssl", &raw, &h, Some("example.test"), &[]);
    assert!(
        h.ja4().starts_with("t13d") && h.ja4().contains("00_"),
        "{}",
        h.ja4()
    );
}

/// Python's `ssl` with the default context (verification off), SNI and ALPN http/1.1.
#[test]
fn python_ssl_client_hello() {
    let script = r#"
import socket, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(['http/1.1'])
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=10)
try:
    ctx.wrap_socket(s, server_hostname='python.example.test')
except (OSError, ssl.SSLError):
    pass
"#;
    let (raw, h) = capture(|port| {
        null(
            Command::new("python3")
                .arg("-c")
                .arg(script)
                .arg(port.to_string()),
        )
    });
    check(
        "python-ssl",
        &raw,
        &h,
        Some("python.example.test"),
        &["http/1.1"],
    );
    assert!(
        h.ja4().starts_with("t13d") && h.ja4().contains("h1_"),
        "{}",
        h.ja4()
    );
}

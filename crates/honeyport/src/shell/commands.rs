//! The commands: shell builtins, BusyBox applets and their coreutils look-alikes. Each takes
//! the session, its arguments and stdin, writes to an [`Io`], and returns an exit status.
//! Downloaders record what was asked; the persona fetches it only when `[downloads]` are enabled
//! (see `crate::fetch`).

use super::fs::{self, FsError, Node};
use super::{Flavor, Io, Shell, ShellEvent, MAX_OUTPUT};

/// Builtins of the shell itself: always available, whatever the filesystem holds.
const BUILTINS: &[&str] = &[
    ":",
    ".",
    "alias",
    "cd",
    "echo",
    "enable",
    "exec",
    "exit",
    "export",
    "false",
    "history",
    "kill",
    "linuxshell",
    "logout",
    "nohup",
    "setsid",
    "printf",
    "pwd",
    "read",
    "set",
    "shell",
    "source",
    "system",
    "trap",
    "true",
    "ulimit",
    "umask",
    "unalias",
    "unset",
    "wait",
];

/// Commands implemented here that live in the filesystem (`/bin/...`) and so exist only when
/// the profile installs them.
const EXTERNAL: &[&str] = &[
    "ash", "bash", "busybox", "cat", "chmod", "cp", "curl", "dash", "dd", "ftpget", "grep", "head",
    "id", "killall", "ls", "mkdir", "mv", "nproc", "ps", "reboot", "rm", "sh", "sleep", "tail",
    "tftp", "touch", "uname", "wc", "wget", "which", "whoami", "hostname", "free",
];

/// Whether `name` would run (for commands skipped by `&&`/`||`).
pub(super) fn is_known(sh: &Shell, name: &[u8]) -> bool {
    if name.contains(&b'/') {
        return sh.fs.get(&fs::resolve(&sh.cwd, name)).is_some();
    }
    BUILTINS.iter().any(|b| b.as_bytes() == name) || sh.profile.command_path(name).is_some()
}

/// Runs `name`; `None` when there is no such command.
pub(super) fn run(
    sh: &mut Shell,
    name: &[u8],
    args: &[Vec<u8>],
    stdin: &[u8],
    io: &mut Io,
) -> Option<i32> {
    let Ok(name_str) = std::str::from_utf8(name) else {
        return None;
    };
    let builtin = BUILTINS.contains(&name_str);
    let external = EXTERNAL.contains(&name_str);
    // Downloads are worth recording even when the tool is missing (`wget ... || curl ...`).
    if matches!(name_str, "wget" | "curl" | "tftp" | "ftpget") && !external_installed(sh, name) {
        download(sh, name_str, args, io, false);
        return None;
    }
    if !(builtin || external && external_installed(sh, name)) {
        return None;
    }
    Some(applet(sh, name_str, args, stdin, io))
}

fn external_installed(sh: &Shell, name: &[u8]) -> bool {
    sh.profile
        .command_path(name)
        .is_some_and(|p| sh.fs.get(p.as_bytes()).is_some())
}

/// Runs a command by name, without checking it is installed (`busybox APPLET`).
fn applet(sh: &mut Shell, name: &str, args: &[Vec<u8>], stdin: &[u8], io: &mut Io) -> i32 {
    match name {
        ":" | "true" | "enable" | "system" | "shell" | "linuxshell" | "alias" | "unalias"
        | "set" | "trap" | "ulimit" | "umask" | "wait" | "read" | "kill" | "killall" | "sleep"
        | "reboot" | "history" => 0,
        "false" => 1,
        "export" => {
            for a in args {
                sh.set_var(a);
            }
            0
        }
        "unset" => {
            for a in args {
                sh.unset_var(a);
            }
            0
        }
        // `exit N` leaves with status N (mod 256, as a shell does); plain `exit` keeps `$?`.
        "exit" | "logout" => {
            sh.exit = true;
            match args
                .first()
                .map(|a| String::from_utf8_lossy(a).parse::<i64>())
            {
                Some(Ok(n)) => n.rem_euclid(256) as i32,
                Some(Err(_)) => 2,
                None => sh.status,
            }
        }
        "echo" => {
            io.out(echo(args));
            0
        }
        "printf" => printf(args, io),
        "pwd" => {
            io.out([sh.cwd.as_slice(), b"\n"].concat());
            0
        }
        "cd" => cd(sh, args, io),
        "sh" | "ash" | "bash" | "dash" | "." | "source" | "exec" => {
            shell(sh, name, args, stdin, io)
        }
        "nohup" | "setsid" => match args.split_first() {
            Some((cmd, rest)) => sh.dispatch_nested(cmd, rest, stdin, io).0,
            None => {
                io.err(format!("{name}: missing operand\n"));
                1
            }
        },
        "busybox" => busybox(sh, args, stdin, io),
        "cat" => cat(sh, args, stdin, io),
        "uname" => uname(sh, args, io),
        "id" => {
            io.out(format!("{}\n", sh.profile.id));
            0
        }
        "hostname" => {
            io.out(format!("{}\n", sh.profile.hostname));
            0
        }
        "free" => {
            io.out(match sh.profile.flavor {
                Flavor::Busybox => "             total       used       free     shared    buffers\nMem:        124564      93320      31244          0       4096\n-/+ buffers:             89224      35340\nSwap:            0          0          0\n",
                Flavor::Gnu => "               total        used        free      shared  buff/cache   available\nMem:         4033544      511668     2764120        1096      860384     3521876\nSwap:              0           0           0\n",
            });
            0
        }
        "whoami" => {
            io.out("root\n");
            0
        }
        "ps" => {
            let full = sh.profile.flavor == Flavor::Gnu
                && args
                    .iter()
                    .any(|a| a.iter().any(|c| matches!(c, b'a' | b'e' | b'x')));
            io.out(if full {
                &sh.profile.ps_full
            } else {
                &sh.profile.ps
            });
            0
        }
        "nproc" => {
            let n = sh
                .fs
                .read(b"/proc/cpuinfo")
                .map(|d| {
                    d.split(|&b| b == b'\n')
                        .filter(|l| l.starts_with(b"processor"))
                        .count()
                })
                .unwrap_or(1);
            io.out(format!("{}\n", n.max(1)));
            0
        }
        "which" => which(sh, args, io),
        "ls" => ls(sh, args, io),
        "chmod" => chmod(sh, args, io),
        "rm" => rm(sh, args, io),
        "cp" | "mv" => cp(sh, name, args, io),
        "mkdir" => mkdir(sh, args, io),
        "touch" => touch(sh, args, io),
        "grep" => grep(sh, args, stdin, io),
        "head" | "tail" => head_tail(sh, name, args, stdin, io),
        "wc" => wc(sh, args, stdin, io),
        "dd" => dd(sh, args, stdin, io),
        "wget" | "curl" | "tftp" | "ftpget" => download(sh, name, args, io, true),
        _ => 0,
    }
}

/// Splits leading `-xyz` option clusters from operands (`--` ends options).
fn split_opts(args: &[Vec<u8>]) -> (Vec<u8>, Vec<&[u8]>) {
    let mut flags = Vec::new();
    let mut rest = Vec::new();
    let mut opts_done = false;
    for a in args {
        if !opts_done && a.as_slice() == b"--" {
            opts_done = true;
        } else if !opts_done && a.len() > 1 && a[0] == b'-' {
            flags.extend_from_slice(&a[1..]);
        } else {
            rest.push(a.as_slice());
        }
    }
    (flags, rest)
}

/// `CMD: 'F': MSG`-style errors in each flavor: BusyBox `cat: can't open 'f': No such file
/// or directory`, GNU `cat: f: No such file or directory`.
fn file_error(sh: &Shell, io: &mut Io, cmd: &str, verb: &str, f: &[u8], e: FsError) {
    let line = match sh.profile.flavor {
        Flavor::Busybox if !verb.is_empty() => [
            cmd.as_bytes(),
            b": can't ",
            verb.as_bytes(),
            b" '",
            f,
            b"': ",
            e.text().as_bytes(),
            b"\n",
        ]
        .concat(),
        Flavor::Gnu if !verb.is_empty() => [
            cmd.as_bytes(),
            b": cannot ",
            if verb == "open" {
                b"access".as_slice()
            } else {
                verb.as_bytes()
            },
            b" '",
            f,
            b"': ",
            e.text().as_bytes(),
            b"\n",
        ]
        .concat(),
        _ => [cmd.as_bytes(), b": ", f, b": ", e.text().as_bytes(), b"\n"].concat(),
    };
    io.err(line);
}

/// `echo` with `-n`, `-e`, `-E` (any cluster of them).
pub(super) fn echo(args: &[Vec<u8>]) -> Vec<u8> {
    let mut newline = true;
    let mut escapes = false;
    let mut i = 0;
    while let Some(a) = args.get(i) {
        if a.len() < 2 || a[0] != b'-' || !a[1..].iter().all(|c| matches!(c, b'n' | b'e' | b'E')) {
            break;
        }
        for c in &a[1..] {
            match c {
                b'n' => newline = false,
                b'e' => escapes = true,
                _ => escapes = false,
            }
        }
        i += 1;
    }
    let mut out = Vec::new();
    for (k, a) in args[i..].iter().enumerate() {
        if k > 0 {
            out.push(b' ');
        }
        if escapes {
            if unescape(a, false, &mut out) {
                return out;
            }
        } else {
            out.extend_from_slice(a);
        }
        if out.len() > MAX_OUTPUT {
            break;
        }
    }
    if newline {
        out.push(b'\n');
    }
    out
}

/// Backslash escapes of `echo -e` (`\0NNN` octal) or `printf` (`\NNN` octal): `\xHH`, `\n`,
/// `\t`, `\\`, ... Returns true at `\c` (stop all output).
fn unescape(s: &[u8], printf_style: bool, out: &mut Vec<u8>) -> bool {
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        i += 1;
        if c != b'\\' || i >= s.len() {
            out.push(c);
            continue;
        }
        let e = s[i];
        i += 1;
        match e {
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'e' => out.push(0x1b),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'\\' => out.push(b'\\'),
            b'c' => return true,
            b'x' => {
                let mut v = 0u32;
                let mut n = 0;
                while n < 2 && i < s.len() && s[i].is_ascii_hexdigit() {
                    v = v * 16 + (s[i] as char).to_digit(16).unwrap_or(0);
                    i += 1;
                    n += 1;
                }
                if n == 0 {
                    out.extend_from_slice(b"\\x");
                } else {
                    out.push(v as u8);
                }
            }
            b'0'..=b'7' if e == b'0' || printf_style => {
                // echo: `\0` then up to 3 octal digits; printf: up to 3 digits in all.
                let mut v = u32::from(e - b'0');
                let max = if e == b'0' && !printf_style { 3 } else { 2 };
                let mut n = 0;
                while n < max && i < s.len() && (b'0'..=b'7').contains(&s[i]) {
                    v = v * 8 + u32::from(s[i] - b'0');
                    i += 1;
                    n += 1;
                }
                out.push((v & 0xff) as u8);
            }
            e => {
                out.push(b'\\');
                out.push(e);
            }
        }
    }
    false
}

/// `printf FORMAT [ARG]...`: escapes, `%s`, `%b`, `%d`, `%c`, `%%`; the format is reused
/// while arguments remain.
fn printf(args: &[Vec<u8>], io: &mut Io) -> i32 {
    let Some((fmt, mut rest)) = args.split_first() else {
        io.err("printf: usage: printf format [arguments]\n");
        return 2;
    };
    let mut out = Vec::new();
    loop {
        let mut consumed = false;
        let mut i = 0;
        while i < fmt.len() && out.len() <= MAX_OUTPUT {
            let c = fmt[i];
            if c == b'%' && i + 1 < fmt.len() {
                // Skip flags and width.
                let mut j = i + 1;
                while j < fmt.len()
                    && matches!(fmt[j], b'-' | b'+' | b' ' | b'#' | b'0'..=b'9' | b'.')
                {
                    j += 1;
                }
                let conv = fmt.get(j).copied().unwrap_or(b'%');
                i = j + 1;
                if conv == b'%' {
                    out.push(b'%');
                    continue;
                }
                let arg = rest.first().map(Vec::as_slice).unwrap_or(b"");
                if !rest.is_empty() {
                    rest = &rest[1..];
                    consumed = true;
                }
                match conv {
                    b'b' => {
                        if unescape(arg, false, &mut out) {
                            io.out(&out);
                            return 0;
                        }
                    }
                    b'd' | b'i' | b'u' => {
                        let n: i64 = std::str::from_utf8(arg)
                            .ok()
                            .and_then(|s| s.trim().parse().ok())
                            .unwrap_or(0);
                        out.extend_from_slice(n.to_string().as_bytes());
                    }
                    b'c' => out.extend_from_slice(&arg[..arg.len().min(1)]),
                    _ => out.extend_from_slice(arg),
                }
            } else if c == b'\\' {
                // The escape and the plain text after it, up to the next `%` or backslash
                // (past the escaped character, which may itself be a backslash).
                let from = (i + 2).min(fmt.len());
                let end = fmt[from..]
                    .iter()
                    .position(|&b| b == b'%' || b == b'\\')
                    .map_or(fmt.len(), |p| from + p);
                if unescape(&fmt[i..end], true, &mut out) {
                    io.out(&out);
                    return 0;
                }
                i = end;
            } else {
                out.push(c);
                i += 1;
            }
        }
        if rest.is_empty() || !consumed || out.len() > MAX_OUTPUT {
            break;
        }
    }
    io.out(&out);
    0
}

fn cd(sh: &mut Shell, args: &[Vec<u8>], io: &mut Io) -> i32 {
    let target = match args.first().map(Vec::as_slice) {
        None | Some(b"~") => fs::resolve(b"/", sh.profile.home.as_bytes()),
        Some(d) => fs::resolve(&sh.cwd, d),
    };
    if sh.fs.is_dir(&target) {
        sh.cwd = target;
        return 0;
    }
    let what = args.first().map(Vec::as_slice).unwrap_or(b"");
    let e = if sh.fs.get(&target).is_some() {
        FsError::NotDir
    } else {
        FsError::NotFound
    };
    let line = match sh.profile.flavor {
        Flavor::Busybox => [
            b"sh: cd: can't cd to ",
            what,
            b": ",
            e.text().as_bytes(),
            b"\n",
        ]
        .concat(),
        Flavor::Gnu => [b"-bash: cd: ", what, b": ", e.text().as_bytes(), b"\n"].concat(),
    };
    io.err(line);
    1
}

/// `sh`, `sh -c CMD`, `sh FILE`, `. FILE`, `exec CMD...`.
fn shell(sh: &mut Shell, name: &str, args: &[Vec<u8>], stdin: &[u8], io: &mut Io) -> i32 {
    if name == "exec" {
        let Some((cmd, rest)) = args.split_first() else {
            return 0;
        };
        let (status, _) = sh.dispatch_nested(cmd, rest, stdin, io);
        return status;
    }
    let mut i = 0;
    while let Some(a) = args.get(i) {
        if a.as_slice() == b"-c" {
            let Some(cmd) = args.get(i + 1) else {
                io.err(format!("{name}: -c requires an argument\n"));
                return 2;
            };
            if !sh.charge_script(cmd.len()) {
                return 0;
            }
            let cmd = cmd.clone();
            return sh.run_script(&cmd, io);
        }
        if a.len() > 1 && a[0] == b'-' {
            i += 1;
            continue;
        }
        let path = fs::resolve(&sh.cwd, a);
        return match sh.fs.read(&path) {
            Ok(d) if d.starts_with(b"\x7fELF") => {
                let line = match sh.profile.flavor {
                    Flavor::Busybox => {
                        [a.as_slice(), b": line 1: syntax error: unexpected \")\"\n"].concat()
                    }
                    Flavor::Gnu => [a.as_slice(), b": cannot execute binary file\n"].concat(),
                };
                io.err(line);
                2
            }
            Ok(d) => {
                let len = d.len();
                if !sh.charge_script(len) {
                    return 0;
                }
                let d = sh.fs.read(&path).map(<[u8]>::to_vec).unwrap_or_default();
                sh.run_script(&d, io)
            }
            Err(e) => {
                let line = match sh.profile.flavor {
                    Flavor::Busybox => [
                        b"sh: can't open '",
                        a.as_slice(),
                        b"': ",
                        e.text().as_bytes(),
                        b"\n",
                    ]
                    .concat(),
                    Flavor::Gnu => [
                        name.as_bytes(),
                        b": ",
                        a.as_slice(),
                        b": ",
                        e.text().as_bytes(),
                        b"\n",
                    ]
                    .concat(),
                };
                io.err(line);
                if sh.profile.flavor == Flavor::Busybox {
                    2
                } else {
                    127
                }
            }
        };
    }
    // `curl ... | sh`: the script comes on stdin.
    if !stdin.is_empty() && name != "." && name != "source" && sh.charge_script(stdin.len()) {
        let script = stdin.to_vec();
        return sh.run_script(&script, io);
    }
    0
}

const BUSYBOX_APPLETS: &[&str] = &[
    "[", "[[", "ash", "awk", "basename", "cat", "chmod", "chown", "cp", "cut", "date", "dd", "df",
    "dirname", "dmesg", "echo", "env", "false", "free", "ftpget", "ftpput", "grep", "head",
    "hostname", "id", "ifconfig", "kill", "killall", "ln", "ls", "mkdir", "mount", "mv", "nc",
    "netstat", "nproc", "ping", "printf", "ps", "pwd", "reboot", "rm", "route", "sed", "sh",
    "sleep", "tail", "telnetd", "test", "tftp", "touch", "true", "uname", "uptime", "wc", "wget",
    "which", "whoami",
];

fn busybox(sh: &mut Shell, args: &[Vec<u8>], stdin: &[u8], io: &mut Io) -> i32 {
    let Some((applet_name, rest)) = args.split_first() else {
        let mut list = String::new();
        let mut col = 0;
        for (k, a) in BUSYBOX_APPLETS.iter().enumerate() {
            if col + a.len() + 2 > 78 {
                list.push_str(",\n");
                col = 0;
            } else if k > 0 {
                list.push_str(", ");
            }
            if col == 0 {
                list.push('\t');
                col = 8;
            }
            list.push_str(a);
            col += a.len() + 2;
        }
        io.out(format!(
            "{}\nBusyBox is copyrighted by many authors between 1998-2015.\nLicensed under GPLv2.\nSee source distribution for detailed\ncopyright notices.\n\nUsage: busybox [function [arguments]...]\n   or: busybox --list[-full]\n   or: function [arguments]...\n\n\tBusyBox is a multi-call binary that combines many common Unix\n\tutilities into a single executable.  Most people will create a\n\tlink to busybox for each function they wish to use and BusyBox\n\twill act like whatever it was invoked as.\n\nCurrently defined functions:\n{list}\n\n",
            sh.profile.busybox_version
        ));
        return 0;
    };
    let name = std::str::from_utf8(applet_name).unwrap_or("");
    if name == "--list" {
        for a in BUSYBOX_APPLETS {
            io.out(format!("{a}\n"));
        }
        return 0;
    }
    if !BUSYBOX_APPLETS.contains(&name) {
        io.err([applet_name.as_slice(), b": applet not found\n"].concat());
        return 127;
    }
    if EXTERNAL.contains(&name) || BUILTINS.contains(&name) {
        applet(sh, name, rest, stdin, io)
    } else {
        0
    }
}

fn read_inputs(
    sh: &Shell,
    cmd: &str,
    files: &[&[u8]],
    stdin: &[u8],
    io: &mut Io,
) -> (Vec<u8>, i32) {
    if files.is_empty() {
        return (stdin.to_vec(), 0);
    }
    let mut data = Vec::new();
    let mut status = 0;
    for f in files {
        if *f == b"-" {
            data.extend_from_slice(stdin);
            continue;
        }
        match sh.fs.read(&fs::resolve(&sh.cwd, f)) {
            Ok(d) => data.extend_from_slice(&d[..d.len().min(MAX_OUTPUT)]),
            Err(FsError::IsDir) if sh.profile.flavor == Flavor::Busybox => {
                io.err(format!("{cmd}: read error: Is a directory\n"));
                status = 1;
            }
            Err(e) => {
                let verb = if sh.profile.flavor == Flavor::Busybox {
                    "open"
                } else {
                    ""
                };
                file_error(sh, io, cmd, verb, f, e);
                status = 1;
            }
        }
        if data.len() > MAX_OUTPUT {
            break;
        }
    }
    (data, status)
}

fn cat(sh: &mut Shell, args: &[Vec<u8>], stdin: &[u8], io: &mut Io) -> i32 {
    let (_, files) = split_opts(args);
    let (data, status) = read_inputs(sh, "cat", &files, stdin, io);
    io.out(data);
    status
}

fn uname(sh: &mut Shell, args: &[Vec<u8>], io: &mut Io) -> i32 {
    let (flags, _) = split_opts(args);
    let u = &sh.profile.uname;
    let all = flags.contains(&b'a');
    let unknown = if sh.profile.flavor == Flavor::Gnu && !all {
        "unknown"
    } else {
        ""
    };
    let fields: [(u8, &str); 8] = [
        (b's', &u.sysname),
        (b'n', &sh.profile.hostname),
        (b'r', &u.release),
        (b'v', &u.version),
        (b'm', &u.machine),
        (b'p', unknown),
        (b'i', unknown),
        (b'o', &u.os),
    ];
    let mut parts: Vec<&str> = fields
        .iter()
        .filter(|(f, v)| (all || flags.contains(f)) && !v.is_empty())
        .map(|(_, v)| *v)
        .collect();
    if parts.is_empty() {
        parts.push(&u.sysname);
    }
    io.out(format!("{}\n", parts.join(" ")));
    0
}

fn which(sh: &mut Shell, args: &[Vec<u8>], io: &mut Io) -> i32 {
    let (_, names) = split_opts(args);
    let mut status = 0;
    for n in names {
        match sh.profile.command_path(n) {
            Some(p) if sh.fs.get(p.as_bytes()).is_some() => io.out(format!("{p}\n")),
            _ => status = 1,
        }
    }
    status
}

fn mode_string(node: &Node) -> &'static str {
    match node {
        Node::Dir => "drwxr-xr-x",
        Node::File { exec: true, .. } => "-rwxr-xr-x",
        Node::File { .. } => "-rw-r--r--",
    }
}

fn ls(sh: &mut Shell, args: &[Vec<u8>], io: &mut Io) -> i32 {
    let (flags, paths) = split_opts(args);
    let long = flags.contains(&b'l');
    let all = flags.contains(&b'a');
    let paths: Vec<&[u8]> = if paths.is_empty() { vec![b"."] } else { paths };
    let gnu = sh.profile.flavor == Flavor::Gnu;
    let mut status = 0;
    // One entry: the name, or an `ls -l` line.
    let entry = |name: &[u8], full: &[u8]| -> Vec<u8> {
        if !long {
            return name.to_vec();
        }
        let node = sh.fs.get(full).unwrap_or(&Node::Dir);
        let links = if node.is_dir() { 2 } else { 1 };
        let len = match node {
            Node::Dir if gnu => 4096,
            Node::Dir => 0,
            Node::File { .. } => sh.fs.file_len(full).unwrap_or(0),
        };
        let line = if gnu {
            format!(
                "{} {links} root root {len:>5} Nov 26 16:02 ",
                mode_string(node)
            )
        } else {
            format!(
                "{} {links:>4} root     root     {len:>8} Jan  1 00:00 ",
                mode_string(node)
            )
        };
        [line.as_bytes(), name].concat()
    };
    let multi = paths.len() > 1;
    for (k, p) in paths.iter().enumerate() {
        let full = fs::resolve(&sh.cwd, p);
        match sh.fs.get(&full) {
            None => {
                let verb = if gnu { "access" } else { "" };
                file_error(sh, io, "ls", verb, p, FsError::NotFound);
                status = if gnu { 2 } else { 1 };
            }
            Some(Node::File { .. }) => {
                io.out([entry(p, &full).as_slice(), b"\n"].concat());
            }
            Some(Node::Dir) => {
                if multi {
                    if k > 0 {
                        io.out("\n");
                    }
                    io.out([*p, b":\n"].concat());
                }
                let mut lines: Vec<Vec<u8>> = Vec::new();
                if all {
                    lines.push(entry(b".", &full));
                    lines.push(entry(b"..", &fs::resolve(&full, b"..")));
                }
                for (name, _) in sh.fs.list(&full) {
                    if name.starts_with(b".") && !all && !flags.contains(&b'A') {
                        continue;
                    }
                    lines.push(entry(name, &fs::resolve(&full, name)));
                }
                if long {
                    if gnu {
                        io.out(format!("total {}\n", lines.len() * 4));
                    }
                    for l in lines {
                        io.out([l.as_slice(), b"\n"].concat());
                    }
                } else if !lines.is_empty() {
                    io.out([lines.join(&b"  "[..]).as_slice(), b"\n"].concat());
                }
            }
        }
    }
    status
}

fn chmod(sh: &mut Shell, args: &[Vec<u8>], io: &mut Io) -> i32 {
    // Modes like `-x` look like options: take the first non-`-R` argument as the mode.
    let mut it = args
        .iter()
        .filter(|a| a.as_slice() != b"-R" && a.as_slice() != b"-f");
    let Some(mode) = it.next() else {
        io.err("chmod: missing operand\n");
        return 1;
    };
    let files: Vec<&Vec<u8>> = it.collect();
    if files.is_empty() {
        io.err([b"chmod: missing operand after '", mode.as_slice(), b"'\n"].concat());
        return 1;
    }
    let exec = if mode.iter().all(u8::is_ascii_digit) {
        Some(mode.iter().any(|d| matches!(d, b'1' | b'3' | b'5' | b'7')))
    } else if mode.contains(&b'x') {
        Some(!mode.contains(&b'-'))
    } else {
        None
    };
    let mut status = 0;
    for f in files {
        let p = fs::resolve(&sh.cwd, f);
        match exec {
            Some(on) => {
                if let Err(e) = sh.fs.set_exec(&p, on) {
                    file_error(
                        sh,
                        io,
                        "chmod",
                        if sh.profile.flavor == Flavor::Gnu {
                            "access"
                        } else {
                            ""
                        },
                        f,
                        e,
                    );
                    status = 1;
                }
            }
            None if sh.fs.get(&p).is_none() => {
                file_error(
                    sh,
                    io,
                    "chmod",
                    if sh.profile.flavor == Flavor::Gnu {
                        "access"
                    } else {
                        ""
                    },
                    f,
                    FsError::NotFound,
                );
                status = 1;
            }
            None => {}
        }
    }
    status
}

fn rm(sh: &mut Shell, args: &[Vec<u8>], io: &mut Io) -> i32 {
    let (flags, files) = split_opts(args);
    let recursive = flags.iter().any(|c| matches!(c, b'r' | b'R'));
    let force = flags.contains(&b'f');
    let mut status = 0;
    for f in files {
        let p = fs::resolve(&sh.cwd, f);
        match sh.fs.remove(&p, recursive) {
            Ok(()) => {}
            Err(FsError::NotFound) if force => {}
            Err(FsError::IsDir) if sh.profile.flavor == Flavor::Busybox => {
                io.err([b"rm: '", f, b"' is a directory\n"].concat());
                status = 1;
            }
            Err(e) => {
                file_error(sh, io, "rm", "remove", f, e);
                status = 1;
            }
        }
    }
    status
}

fn cp(sh: &mut Shell, name: &str, args: &[Vec<u8>], io: &mut Io) -> i32 {
    let (_, ops) = split_opts(args);
    let [srcs @ .., dst] = ops.as_slice() else {
        io.err(format!("{name}: missing file operand\n"));
        return 1;
    };
    if srcs.is_empty() {
        io.err(
            [
                name.as_bytes(),
                b": missing destination file operand after '",
                dst,
                b"'\n",
            ]
            .concat(),
        );
        return 1;
    }
    let dst_full = fs::resolve(&sh.cwd, dst);
    let mut status = 0;
    for src in srcs {
        let sp = fs::resolve(&sh.cwd, src);
        let (data, exec) = match sh.fs.get(&sp) {
            Some(Node::File { exec, .. }) => (
                sh.fs.read(&sp).map(<[u8]>::to_vec).unwrap_or_default(),
                *exec,
            ),
            Some(Node::Dir) => {
                io.err([name.as_bytes(), b": omitting directory '", src, b"'\n"].concat());
                status = 1;
                continue;
            }
            None => {
                file_error(sh, io, name, "stat", src, FsError::NotFound);
                status = 1;
                continue;
            }
        };
        let target = if sh.fs.is_dir(&dst_full) {
            fs::resolve(&dst_full, fs::basename(&sp))
        } else {
            dst_full.clone()
        };
        let mut err = Vec::new();
        if sh.write_file(&target, &data, false, &mut err) {
            let _ = sh.fs.set_exec(&target, exec);
            if name == "mv" && target != sp {
                let _ = sh.fs.remove(&sp, false);
            }
        } else {
            io.err(err);
            status = 1;
        }
    }
    status
}

fn mkdir(sh: &mut Shell, args: &[Vec<u8>], io: &mut Io) -> i32 {
    let (flags, dirs) = split_opts(args);
    let parents = flags.contains(&b'p');
    let mut status = 0;
    for d in dirs {
        let p = fs::resolve(&sh.cwd, d);
        if let Err(e) = sh.fs.mkdir(&p, parents) {
            let msg = if e == FsError::NotEmpty {
                "File exists"
            } else {
                e.text()
            };
            match sh.profile.flavor {
                Flavor::Busybox => io.err(
                    [
                        b"mkdir: can't create directory '",
                        d,
                        b"': ",
                        msg.as_bytes(),
                        b"\n",
                    ]
                    .concat(),
                ),
                Flavor::Gnu => io.err(
                    [
                        b"mkdir: cannot create directory '",
                        d,
                        b"': ",
                        msg.as_bytes(),
                        b"\n",
                    ]
                    .concat(),
                ),
            }
            status = 1;
        }
    }
    status
}

fn touch(sh: &mut Shell, args: &[Vec<u8>], io: &mut Io) -> i32 {
    let (_, files) = split_opts(args);
    let mut status = 0;
    for f in files {
        let p = fs::resolve(&sh.cwd, f);
        if sh.fs.get(&p).is_none() {
            let mut err = Vec::new();
            if !sh.write_file(&p, b"", false, &mut err) {
                file_error(sh, io, "touch", "touch", f, FsError::NotFound);
                status = 1;
            }
        }
    }
    status
}

fn grep(sh: &mut Shell, args: &[Vec<u8>], stdin: &[u8], io: &mut Io) -> i32 {
    let (flags, ops) = split_opts(args);
    let Some((pat, files)) = ops.split_first() else {
        io.err("Usage: grep [-HhnlLoqvsriwFE] PATTERN [FILE]...\n");
        return 2;
    };
    let ci = flags.contains(&b'i');
    let invert = flags.contains(&b'v');
    let count = flags.contains(&b'c');
    let quiet = flags.contains(&b'q');
    let (data, status) = read_inputs(sh, "grep", files, stdin, io);
    let pat_l = pat.to_ascii_lowercase();
    let mut n = 0;
    let mut out = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        let hit = if ci {
            contains(&line.to_ascii_lowercase(), &pat_l)
        } else {
            contains(line, pat)
        };
        if hit != invert && !(line.is_empty() && pat.is_empty() && invert) {
            n += 1;
            if !count && !quiet {
                out.extend_from_slice(line);
                out.push(b'\n');
            }
        }
    }
    // The split yields an empty last piece after a final newline: not a line.
    if data.ends_with(b"\n") || data.is_empty() {
        let hit_empty = pat.is_empty() != invert;
        if hit_empty {
            n -= 1;
            if !count && !quiet {
                out.pop();
            }
        }
    }
    if count {
        out = format!("{n}\n").into_bytes();
    }
    if !quiet {
        io.out(out);
    }
    if status != 0 {
        2
    } else if n > 0 {
        0
    } else {
        1
    }
}

/// Substring search in linear time (Rabin-Karp over a prime modulus): a 32 KiB pattern
/// against a 64 KiB file must not cost `n * m`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    const P: u128 = (1 << 61) - 1;
    const B: u128 = 1_000_003;
    let n = needle.len();
    if n == 0 {
        return true;
    }
    if n > hay.len() {
        return false;
    }
    let hash = |s: &[u8]| s.iter().fold(0u128, |h, &b| (h * B + u128::from(b)) % P);
    let mut pow = 1u128; // B^(n-1) mod P
    for _ in 1..n {
        pow = pow * B % P;
    }
    let want = hash(needle);
    let mut h = hash(&hay[..n]);
    for i in 0..=hay.len() - n {
        if h == want && &hay[i..i + n] == needle {
            return true;
        }
        if let Some(&next) = hay.get(i + n) {
            h = (h + P * 256 - pow * u128::from(hay[i]) % P) % P;
            h = (h * B + u128::from(next)) % P;
        }
    }
    false
}

fn count_arg(flags_args: &[Vec<u8>]) -> (usize, Vec<&[u8]>) {
    let mut n = 10;
    let mut files = Vec::new();
    let mut i = 0;
    while let Some(a) = flags_args.get(i) {
        if a.as_slice() == b"-n" {
            n = flags_args
                .get(i + 1)
                .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
                .unwrap_or(10);
            i += 2;
            continue;
        }
        if let Some(v) = a.strip_prefix(b"-n").or_else(|| a.strip_prefix(b"-")) {
            if let Some(v) = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok()) {
                n = v;
            }
        } else {
            files.push(a.as_slice());
        }
        i += 1;
    }
    (n, files)
}

fn head_tail(sh: &mut Shell, name: &str, args: &[Vec<u8>], stdin: &[u8], io: &mut Io) -> i32 {
    let (n, files) = count_arg(args);
    let (data, status) = read_inputs(sh, name, &files, stdin, io);
    let lines: Vec<&[u8]> = data.split_inclusive(|&b| b == b'\n').collect();
    let pick = if name == "head" {
        &lines[..n.min(lines.len())]
    } else {
        &lines[lines.len().saturating_sub(n)..]
    };
    io.out(pick.concat());
    status
}

fn wc(sh: &mut Shell, args: &[Vec<u8>], stdin: &[u8], io: &mut Io) -> i32 {
    let (flags, files) = split_opts(args);
    let (data, status) = read_inputs(sh, "wc", &files, stdin, io);
    let lines = data.iter().filter(|&&b| b == b'\n').count();
    let words = data
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .count();
    let bytes = data.len();
    let mut parts = Vec::new();
    let none = !flags.iter().any(|c| matches!(c, b'l' | b'w' | b'c'));
    if none || flags.contains(&b'l') {
        parts.push(lines);
    }
    if none || flags.contains(&b'w') {
        parts.push(words);
    }
    if none || flags.contains(&b'c') {
        parts.push(bytes);
    }
    let s: Vec<String> = if parts.len() == 1 && files.is_empty() {
        vec![parts[0].to_string()]
    } else {
        parts.iter().map(|n| format!("{n:>7}")).collect()
    };
    let mut line = s.join(" ");
    if let Some(f) = files.first() {
        line.push(' ');
        line.push_str(&String::from_utf8_lossy(f));
    }
    io.out(format!("{line}\n"));
    status
}

fn dd(sh: &mut Shell, args: &[Vec<u8>], stdin: &[u8], io: &mut Io) -> i32 {
    let mut input: Option<&[u8]> = None;
    let mut output: Option<&[u8]> = None;
    let (mut bs, mut count, mut skip) = (512usize, usize::MAX, 0usize);
    let num = |v: &[u8]| -> usize {
        std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    for a in args {
        if let Some(v) = a.strip_prefix(b"if=") {
            input = Some(v);
        } else if let Some(v) = a.strip_prefix(b"of=") {
            output = Some(v);
        } else if let Some(v) = a.strip_prefix(b"bs=") {
            bs = num(v).max(1);
        } else if let Some(v) = a.strip_prefix(b"count=") {
            count = num(v);
        } else if let Some(v) = a.strip_prefix(b"skip=") {
            skip = num(v);
        }
    }
    let data: Vec<u8> = match input {
        None => stdin.to_vec(),
        Some(f) => match sh.fs.read(&fs::resolve(&sh.cwd, f)) {
            Ok(d) => d.to_vec(),
            Err(e) => {
                let verb = if sh.profile.flavor == Flavor::Gnu {
                    ""
                } else {
                    "open"
                };
                file_error(sh, io, "dd", verb, f, e);
                return 1;
            }
        },
    };
    let start = skip.saturating_mul(bs).min(data.len());
    let end = start
        .saturating_add(count.saturating_mul(bs))
        .min(data.len());
    let chunk = &data[start..end];
    let full = chunk.len() / bs;
    let partial = usize::from(full * bs < chunk.len());
    match output {
        None => io.out(chunk),
        Some(f) => {
            let p = fs::resolve(&sh.cwd, f);
            let mut err = Vec::new();
            if !sh.write_file(&p, chunk, false, &mut err) {
                io.err(err);
                return 1;
            }
        }
    }
    io.err(format!(
        "{full}+{partial} records in\n{full}+{partial} records out\n"
    ));
    if sh.profile.flavor == Flavor::Gnu {
        io.err(format!(
            "{} bytes copied, 0.000131 s, 397 kB/s\n",
            chunk.len()
        ));
    }
    0
}

/// A parsed download request.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Download {
    pub url: Vec<u8>,
    /// Where the file is saved; `None` for stdout.
    pub outfile: Option<Vec<u8>>,
    /// `-q`, `-s`: print nothing.
    pub quiet: bool,
}

/// The last path component of a URL (`index.html` for none).
fn url_basename(url: &[u8]) -> Vec<u8> {
    let path = url.split(|&b| b == b'?' || b == b'#').next().unwrap_or(url);
    let after_scheme = match path.windows(3).position(|w| w == b"://") {
        Some(p) => &path[p + 3..],
        None => path,
    };
    match after_scheme.iter().position(|&b| b == b'/') {
        Some(p) => {
            let b = fs::basename(&after_scheme[p..]);
            if b.is_empty() {
                b"index.html".to_vec()
            } else {
                b.to_vec()
            }
        }
        None => b"index.html".to_vec(),
    }
}

/// `wget [-q] [-O FILE] [-P DIR] URL...`
pub(super) fn parse_wget(args: &[Vec<u8>]) -> Vec<Download> {
    let mut out_doc: Option<Vec<u8>> = None;
    let mut prefix: Option<Vec<u8>> = None;
    let mut quiet = false;
    let mut urls = Vec::new();
    let mut i = 0;
    while let Some(a) = args.get(i) {
        i += 1;
        let a = a.as_slice();
        if let Some(v) = a.strip_prefix(b"--output-document=") {
            out_doc = Some(v.to_vec());
        } else if let Some(v) = a.strip_prefix(b"--directory-prefix=") {
            prefix = Some(v.to_vec());
        } else if a == b"-O"
            || a == b"-P"
            || a == b"-U"
            || a == b"-T"
            || a == b"-t"
            || a == b"--header"
            || a == b"--user-agent"
            || a == b"-Y"
            || a == b"-e"
            || a == b"-o"
        {
            let v = args.get(i).cloned().unwrap_or_default();
            i += 1;
            match a {
                b"-O" => out_doc = Some(v),
                b"-P" => prefix = Some(v),
                _ => {}
            }
        } else if a == b"-q" || a == b"--quiet" {
            quiet = true;
        } else if let Some(v) = a.strip_prefix(b"-O") {
            out_doc = Some(v.to_vec());
        } else if a.starts_with(b"-") && a.len() > 1 {
            if a[1] != b'-' && a.contains(&b'q') {
                quiet = true;
            }
        } else {
            urls.push(a.to_vec());
        }
    }
    urls.into_iter()
        .map(|url| {
            let outfile = match (&out_doc, &prefix) {
                (Some(o), _) if o.as_slice() == b"-" => None,
                (Some(o), _) => Some(o.clone()),
                (None, Some(p)) => Some([p.as_slice(), b"/", &url_basename(&url)].concat()),
                (None, None) => Some(url_basename(&url)),
            };
            Download {
                url,
                outfile,
                quiet,
            }
        })
        .collect()
}

/// `curl [-sSLkf] [-o FILE | -O] URL...`
pub(super) fn parse_curl(args: &[Vec<u8>]) -> Vec<Download> {
    const VALUE_SHORT: &[u8] = b"oAHXdumeTxrwbcFEKUyYzC";
    const VALUE_LONG: &[&[u8]] = &[
        b"--output",
        b"--user-agent",
        b"--header",
        b"--request",
        b"--data",
        b"--data-binary",
        b"--data-raw",
        b"--user",
        b"--max-time",
        b"--connect-timeout",
        b"--retry",
        b"--proxy",
        b"--referer",
        b"--cookie",
        b"--form",
        b"--url",
        b"--upload-file",
    ];
    let mut output: Option<Vec<u8>> = None;
    let mut remote_name = false;
    let mut quiet = false;
    let mut urls = Vec::new();
    let mut i = 0;
    while let Some(a) = args.get(i) {
        i += 1;
        let a = a.as_slice();
        if a.starts_with(b"--") {
            let (key, inline) = match a.iter().position(|&b| b == b'=') {
                Some(p) => (&a[..p], Some(a[p + 1..].to_vec())),
                None => (a, None),
            };
            if VALUE_LONG.contains(&key) {
                let v = match inline {
                    Some(v) => v,
                    None => {
                        i += 1;
                        args.get(i - 1).cloned().unwrap_or_default()
                    }
                };
                match key {
                    b"--output" => output = Some(v),
                    b"--url" => urls.push(v),
                    _ => {}
                }
            } else if key == b"--remote-name" {
                remote_name = true;
            } else if key == b"--silent" {
                quiet = true;
            }
        } else if a.len() > 1 && a[0] == b'-' {
            for (k, &c) in a[1..].iter().enumerate() {
                if VALUE_SHORT.contains(&c) {
                    let rest = &a[2 + k..];
                    let v = if rest.is_empty() {
                        i += 1;
                        args.get(i - 1).cloned().unwrap_or_default()
                    } else {
                        rest.to_vec()
                    };
                    if c == b'o' {
                        output = Some(v);
                    }
                    break;
                }
                match c {
                    b'O' => remote_name = true,
                    b's' => quiet = true,
                    _ => {}
                }
            }
        } else {
            urls.push(a.to_vec());
        }
    }
    urls.into_iter()
        .map(|url| {
            let outfile = match &output {
                Some(o) if o.as_slice() == b"-" => None,
                Some(o) => Some(o.clone()),
                None if remote_name => Some(url_basename(&url)),
                None => None,
            };
            Download {
                url,
                outfile,
                quiet,
            }
        })
        .collect()
}

/// BusyBox `tftp [-g|-p] [-l LOCAL] [-r REMOTE] [-b SIZE] HOST [PORT]`, and tftp-hpa's
/// `tftp HOST -c get REMOTE [LOCAL]`.
pub(super) fn parse_tftp(args: &[Vec<u8>]) -> Vec<Download> {
    let mut get = false;
    let mut local: Option<Vec<u8>> = None;
    let mut remote: Option<Vec<u8>> = None;
    let mut pos: Vec<Vec<u8>> = Vec::new();
    let mut i = 0;
    while let Some(a) = args.get(i) {
        i += 1;
        let a = a.as_slice();
        if a == b"-c" {
            // tftp-hpa: `-c get REMOTE [LOCAL]`
            if args.get(i).map(Vec::as_slice) == Some(b"get") {
                get = true;
                remote = args.get(i + 1).cloned();
                local = args.get(i + 2).cloned();
                i += 3;
            }
            continue;
        }
        if a.len() > 1 && a[0] == b'-' {
            for (k, &c) in a[1..].iter().enumerate() {
                match c {
                    b'g' => get = true,
                    b'l' | b'r' | b'b' => {
                        let rest = &a[2 + k..];
                        let v = if rest.is_empty() {
                            i += 1;
                            args.get(i - 1).cloned().unwrap_or_default()
                        } else {
                            rest.to_vec()
                        };
                        match c {
                            b'l' => local = Some(v),
                            b'r' => remote = Some(v),
                            _ => {}
                        }
                        break;
                    }
                    _ => {}
                }
            }
        } else {
            pos.push(a.to_vec());
        }
    }
    let (Some(host), true) = (pos.first(), get || remote.is_some()) else {
        return Vec::new();
    };
    let remote = remote.or_else(|| local.clone()).unwrap_or_default();
    let port = pos.get(1).filter(|p| p.as_slice() != b"69");
    let mut url = [b"tftp://".as_slice(), host].concat();
    if let Some(p) = port {
        url.push(b':');
        url.extend_from_slice(p);
    }
    if !remote.starts_with(b"/") {
        url.push(b'/');
    }
    url.extend_from_slice(&remote);
    let outfile = local.unwrap_or_else(|| fs::basename(&remote).to_vec());
    vec![Download {
        url,
        outfile: Some(outfile),
        quiet: true,
    }]
}

/// BusyBox `ftpget [-c] [-v] [-u USER] [-p PASS] [-P PORT] HOST [LOCAL_FILE] REMOTE_FILE`.
pub(super) fn parse_ftpget(args: &[Vec<u8>]) -> Vec<Download> {
    let mut user: Option<Vec<u8>> = None;
    let mut pass: Option<Vec<u8>> = None;
    let mut port: Option<Vec<u8>> = None;
    let mut pos: Vec<Vec<u8>> = Vec::new();
    let mut i = 0;
    while let Some(a) = args.get(i) {
        i += 1;
        let a = a.as_slice();
        match a {
            b"-u" | b"-p" | b"-P" | b"--username" | b"--password" | b"--port" => {
                let v = args.get(i).cloned().unwrap_or_default();
                i += 1;
                match a {
                    b"-u" | b"--username" => user = Some(v),
                    b"-p" | b"--password" => pass = Some(v),
                    _ => port = Some(v),
                }
            }
            _ if a.len() > 1 && a[0] == b'-' => {}
            _ => pos.push(a.to_vec()),
        }
    }
    let (host, local, remote) = match pos.as_slice() {
        [h, r] => (h, fs::basename(r).to_vec(), r),
        [h, l, r, ..] => (h, l.clone(), r),
        _ => return Vec::new(),
    };
    let mut url = b"ftp://".to_vec();
    if let Some(u) = &user {
        url.extend_from_slice(u);
        if let Some(p) = &pass {
            url.push(b':');
            url.extend_from_slice(p);
        }
        url.push(b'@');
    }
    url.extend_from_slice(host);
    if let Some(p) = port.filter(|p| p.as_slice() != b"21") {
        url.push(b':');
        url.extend_from_slice(&p);
    }
    if !remote.starts_with(b"/") {
        url.push(b'/');
    }
    url.extend_from_slice(remote);
    vec![Download {
        url,
        outfile: Some(local),
        quiet: true,
    }]
}

/// Records the downloads a command asks for; when `installed`, answers as a successful
/// transfer of an empty file and leaves that empty file behind.
fn download(sh: &mut Shell, name: &str, args: &[Vec<u8>], io: &mut Io, installed: bool) -> i32 {
    let (command, reqs): (&'static str, Vec<Download>) = match name {
        "wget" => ("wget", parse_wget(args)),
        "curl" => ("curl", parse_curl(args)),
        "tftp" => ("tftp", parse_tftp(args)),
        _ => ("ftpget", parse_ftpget(args)),
    };
    for r in &reqs {
        sh.events.push(ShellEvent::Download {
            url: r.url.clone(),
            command,
            outfile: r.outfile.clone(),
        });
    }
    if !installed {
        return 127;
    }
    if reqs.is_empty() {
        let usage = match command {
            "wget" if sh.profile.flavor == Flavor::Gnu => "wget: missing URL\nUsage: wget [OPTION]... [URL]...\n\nTry `wget --help' for more options.\n",
            "wget" => "BusyBox v1.22.1 multi-call binary.\n\nUsage: wget [-c|--continue] [-s|--spider] [-q|--quiet] [-O|--output-document FILE]\n\t[--header 'header: value'] [-Y|--proxy on/off] [-P DIR]\n\t[-U|--user-agent AGENT] [-T SEC] URL...\n",
            "curl" => "curl: try 'curl --help' or 'curl --manual' for more information\n",
            "tftp" => "BusyBox v1.22.1 multi-call binary.\n\nUsage: tftp [OPTIONS] HOST [PORT]\n",
            _ => "BusyBox v1.22.1 multi-call binary.\n\nUsage: ftpget [OPTIONS] HOST [LOCAL_FILE] REMOTE_FILE\n",
        };
        io.err(usage);
        return if command == "curl" { 2 } else { 1 };
    }
    for r in &reqs {
        let host = {
            let s = match r.url.windows(3).position(|w| w == b"://") {
                Some(p) => &r.url[p + 3..],
                None => &r.url[..],
            };
            let s = s.split(|&b| b == b'/').next().unwrap_or(s);
            s.rsplit(|&b| b == b'@').next().unwrap_or(s).to_vec()
        };
        if let Some(f) = &r.outfile {
            let p = fs::resolve(&sh.cwd, f);
            let mut err = Vec::new();
            if !sh.fs.is_dir(&p) && sh.fs.write(&p, b"", false).is_err() {
                err.extend_from_slice(
                    [
                        command.as_bytes(),
                        b": can't open '",
                        f,
                        b"': No such file or directory\n",
                    ]
                    .concat()
                    .as_slice(),
                );
                io.err(err);
                return 1;
            }
        }
        if r.quiet || command != "wget" {
            if command == "curl" && r.outfile.is_some() && !r.quiet {
                io.err("  % Total    % Received % Xferd  Average Speed   Time    Time     Time  Current\n                                 Dload  Upload   Total   Spent    Left  Speed\n100     0    0     0    0     0      0      0 --:--:-- --:--:-- --:--:--     0\n");
            }
            continue;
        }
        let file = r.outfile.clone().unwrap_or_else(|| b"-".to_vec());
        let port: &[u8] = if r.url.starts_with(b"https") {
            b"443"
        } else {
            b"80"
        };
        let hostport = if host.contains(&b':') {
            host.clone()
        } else {
            [host.as_slice(), b":", port].concat()
        };
        let text = match sh.profile.flavor {
            Flavor::Busybox => [
                b"Connecting to ".as_slice(), &host, b" (", &hostport, b")\n",
                &format!("{:<20} 100% |*******************************|     0   0:00:00 ETA\n", String::from_utf8_lossy(fs::basename(&file))).into_bytes(),
            ]
            .concat(),
            Flavor::Gnu => [
                b"Connecting to ".as_slice(), &hostport, b"... connected.\nHTTP request sent, awaiting response... 200 OK\nLength: 0 [application/octet-stream]\nSaving to: \xe2\x80\x98", &file, b"\xe2\x80\x99\n\n",
                &file, b"            100%[===================>]       0  --.-KB/s    in 0s\n\n\xe2\x80\x98", &file, b"\xe2\x80\x99 saved [0/0]\n\n",
            ]
            .concat(),
        };
        io.err(text);
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substring_search() {
        assert!(contains(b"hello world", b"o w"));
        assert!(contains(b"abc", b""));
        assert!(contains(b"abc", b"abc"));
        assert!(!contains(b"abc", b"abcd"));
        assert!(!contains(b"aaaaaaab", b"aab\x00"));
        assert!(contains(b"\xff\xfe\x00\xff", b"\x00\xff"));
        let hay = vec![b'a'; 65536];
        let mut needle = vec![b'a'; 32768];
        needle.push(b'b');
        assert!(!contains(&hay, &needle));
    }
}

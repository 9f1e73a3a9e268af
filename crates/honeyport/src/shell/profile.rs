//! What a fake shell looks like: the built-in profiles (a BusyBox router, a Debian server).
//!
//! A profile is plain data. The shell copies its file tree into each session's in-memory
//! filesystem at login, so a session's writes never leak into another session.

use std::sync::Arc;

/// Which userland the shell imitates: it picks error message shapes and a few outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// BusyBox `ash` and applets (`sh: x: not found`, `can't open 'x'`).
    Busybox,
    /// bash and GNU coreutils (`-bash: x: command not found`, `cannot access 'x'`).
    Gnu,
}

/// `uname` fields.
#[derive(Clone, Debug)]
pub struct Uname {
    /// `-s`, e.g. `Linux`.
    pub sysname: String,
    /// `-r`, e.g. `3.10.14`.
    pub release: String,
    /// `-v`, e.g. `#1 SMP PREEMPT Thu Mar 15 10:21:23 CST 2018`.
    pub version: String,
    /// `-m`, e.g. `armv7l`.
    pub machine: String,
    /// `-o`, e.g. `GNU/Linux`.
    pub os: String,
}

/// What a shell looks like: host name, prompt, files and command outputs. Built-in profiles
/// imitate a BusyBox router and a Debian server; a persona picks one and may override fields.
#[derive(Clone, Debug)]
pub struct Profile {
    pub name: String,
    pub hostname: String,
    pub flavor: Flavor,
    /// The prompt; `{host}` is replaced by the host name and `{cwd}` by the working
    /// directory (`~` for the home directory).
    pub prompt: String,
    /// The login directory.
    pub home: String,
    pub uname: Uname,
    /// First line of `busybox` without arguments, e.g. `BusyBox v1.22.1 (...) multi-call
    /// binary.`
    pub busybox_version: String,
    /// Files in the fake filesystem: absolute path and contents. Parent directories are
    /// implied. Files under `/bin`, `/sbin`, `/usr/bin`, `/usr/sbin` whose name is a known
    /// command run that command.
    pub files: Vec<(String, Arc<[u8]>)>,
    /// Empty directories (beyond the files' parents).
    pub dirs: Vec<String>,
    /// Commands installed, each as its absolute path (`/bin/ls`); they appear in the
    /// filesystem with `exec` set, and `which` finds them.
    pub commands: Vec<String>,
    /// `ps` output (without arguments).
    pub ps: String,
    /// `ps aux` / `ps -ef` output (GNU flavor); the BusyBox flavor ignores arguments.
    pub ps_full: String,
    /// `id` output.
    pub id: String,
}

impl Profile {
    /// A built-in profile by name (`busybox_router`, `debian_server`).
    pub fn builtin(name: &str) -> Option<Profile> {
        match name {
            "busybox_router" => Some(busybox_router()),
            "debian_server" => Some(debian_server()),
            _ => None,
        }
    }

    /// Names of the built-in profiles.
    pub const BUILTIN: &'static [&'static str] = &["busybox_router", "debian_server"];

    /// Where `name` is installed, if it is.
    pub fn command_path(&self, name: &[u8]) -> Option<&str> {
        self.commands
            .iter()
            .find(|p| p.as_bytes().rsplit(|&b| b == b'/').next() == Some(name))
            .map(String::as_str)
    }
}

fn file(path: &str, data: impl AsRef<[u8]>) -> (String, Arc<[u8]>) {
    (path.to_string(), Arc::from(data.as_ref()))
}

/// An ELF header (and nothing else) for `/bin/busybox` and friends: Mirai's loader reads the
/// first bytes of `/bin/echo` (`dd bs=52 count=1 if=/bin/echo`) to learn the architecture.
fn elf_header(is64: bool, little: bool, machine: u16) -> Vec<u8> {
    let mut h = vec![0x7f, b'E', b'L', b'F', if is64 { 2 } else { 1 }];
    h.push(if little { 1 } else { 2 });
    h.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let u16b = |v: u16| {
        if little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    };
    h.extend_from_slice(&u16b(2)); // ET_EXEC
    h.extend_from_slice(&u16b(machine));
    let rest = if is64 { 64 } else { 52 };
    h.extend_from_slice(&u16b(1));
    h.resize(rest, 0);
    h
}

const BUSYBOX_APPLETS: &[&str] = &[
    "/bin/busybox",
    "/bin/ash",
    "/bin/sh",
    "/bin/cat",
    "/bin/chmod",
    "/bin/cp",
    "/bin/dd",
    "/bin/echo",
    "/bin/hostname",
    "/bin/grep",
    "/bin/kill",
    "/bin/ls",
    "/bin/mkdir",
    "/bin/mv",
    "/bin/ps",
    "/bin/pwd",
    "/bin/rm",
    "/bin/sleep",
    "/bin/touch",
    "/bin/uname",
    "/sbin/reboot",
    "/usr/bin/free",
    "/usr/bin/ftpget",
    "/usr/bin/head",
    "/usr/bin/id",
    "/usr/bin/killall",
    "/usr/bin/tail",
    "/usr/bin/tftp",
    "/usr/bin/wc",
    "/usr/bin/wget",
    "/usr/bin/which",
    "/usr/bin/whoami",
];

fn busybox_router() -> Profile {
    let elf = elf_header(false, true, 0x28); // ARM, little endian
    let mut files = vec![
        file(
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nadmin:x:0:0:admin:/:/bin/sh\nnobody:x:99:99:nobody:/:/bin/false\n",
        ),
        file("/etc/shadow", "root:$1$AbCdEfGh$3xQ0dZ8wqR2mYB4tKq7zV/:10933:0:99999:7:::\nadmin:$1$AbCdEfGh$3xQ0dZ8wqR2mYB4tKq7zV/:10933:0:99999:7:::\n"),
        file("/etc/hostname", "router\n"),
        file("/etc/resolv.conf", "nameserver 192.168.1.1\n"),
        file("/etc/inittab", "::sysinit:/etc/init.d/rcS\n::respawn:/sbin/getty -L ttyS0 115200 vt100\n::restart:/sbin/init\n"),
        file("/proc/cpuinfo", ARM_CPUINFO),
        file("/proc/mounts", "rootfs / rootfs rw 0 0\n/dev/root / squashfs ro,relatime 0 0\nproc /proc proc rw,relatime 0 0\nsysfs /sys sysfs rw,relatime 0 0\ntmpfs /tmp tmpfs rw,relatime 0 0\ntmpfs /var tmpfs rw,relatime 0 0\ndevpts /dev/pts devpts rw,relatime,mode=600 0 0\n/dev/mtdblock5 /mnt/jffs2 jffs2 rw,relatime 0 0\n"),
        file("/proc/version", "Linux version 3.10.14 (root@buildhost) (gcc version 4.9.4 (Buildroot 2016.11) ) #1 SMP PREEMPT Thu Mar 15 10:21:23 CST 2018\n"),
        file("/proc/meminfo", "MemTotal:         124564 kB\nMemFree:           31244 kB\nBuffers:            4096 kB\nCached:            38712 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n"),
        file("/proc/uptime", "351234.62 690210.15\n"),
        file("/var/run/telnetd.pid", "560\n"),
    ];
    for p in BUSYBOX_APPLETS {
        files.push(file(p, &elf));
    }
    Profile {
        name: "busybox_router".into(),
        hostname: "router".into(),
        flavor: Flavor::Busybox,
        prompt: "{host}# ".into(),
        home: "/".into(),
        uname: Uname {
            sysname: "Linux".into(),
            release: "3.10.14".into(),
            version: "#1 SMP PREEMPT Thu Mar 15 10:21:23 CST 2018".into(),
            machine: "armv7l".into(),
            os: "GNU/Linux".into(),
        },
        busybox_version: "BusyBox v1.22.1 (2018-03-15 10:19:44 CST) multi-call binary.".into(),
        files,
        dirs: [
            "/dev",
            "/root",
            "/tmp",
            "/var/tmp",
            "/mnt/jffs2",
            "/sys",
            "/lib",
            "/usr/lib",
        ]
        .map(String::from)
        .to_vec(),
        commands: BUSYBOX_APPLETS.iter().map(|s| s.to_string()).collect(),
        ps: BUSYBOX_PS.into(),
        ps_full: BUSYBOX_PS.into(),
        id: "uid=0(root) gid=0(root)".into(),
    }
}

const GNU_COMMANDS: &[&str] = &[
    "/usr/bin/bash",
    "/usr/bin/sh",
    "/usr/bin/dash",
    "/usr/bin/busybox",
    "/usr/bin/cat",
    "/usr/bin/chmod",
    "/usr/bin/cp",
    "/usr/bin/curl",
    "/usr/bin/dd",
    "/usr/bin/echo",
    "/usr/bin/free",
    "/usr/bin/hostname",
    "/usr/bin/grep",
    "/usr/bin/head",
    "/usr/bin/id",
    "/usr/bin/kill",
    "/usr/bin/ls",
    "/usr/bin/mkdir",
    "/usr/bin/mv",
    "/usr/bin/nproc",
    "/usr/bin/printf",
    "/usr/bin/ps",
    "/usr/bin/pwd",
    "/usr/bin/rm",
    "/usr/bin/sleep",
    "/usr/bin/tail",
    "/usr/bin/touch",
    "/usr/bin/uname",
    "/usr/bin/wc",
    "/usr/bin/wget",
    "/usr/bin/which",
    "/usr/bin/whoami",
];

fn debian_server() -> Profile {
    let elf = elf_header(true, true, 0x3e); // x86-64
    let mut files = vec![
        file(
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nbin:x:2:2:bin:/bin:/usr/sbin/nologin\nsys:x:3:3:sys:/dev:/usr/sbin/nologin\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nsshd:x:101:65534::/run/sshd:/usr/sbin/nologin\ndebian:x:1000:1000:Debian,,,:/home/debian:/bin/bash\n",
        ),
        file("/etc/hostname", "srv01\n"),
        file("/etc/debian_version", "12.7\n"),
        file("/etc/issue", "Debian GNU/Linux 12 \\n \\l\n\n"),
        file("/etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\nHOME_URL=\"https://www.debian.org/\"\nSUPPORT_URL=\"https://www.debian.org/support\"\nBUG_REPORT_URL=\"https://bugs.debian.org/\"\n"),
        file("/etc/resolv.conf", "nameserver 10.0.0.2\nsearch example.internal\n"),
        file("/proc/cpuinfo", x86_cpuinfo()),
        file("/proc/mounts", "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\nproc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\nudev /dev devtmpfs rw,nosuid,relatime,size=2006512k,nr_inodes=501628,mode=755,inode64 0 0\ndevpts /dev/pts devpts rw,nosuid,noexec,relatime,gid=5,mode=620,ptmxmode=000 0 0\ntmpfs /run tmpfs rw,nosuid,nodev,noexec,relatime,size=403444k,mode=755,inode64 0 0\n/dev/vda1 / ext4 rw,relatime,errors=remount-ro 0 0\ntmpfs /dev/shm tmpfs rw,nosuid,nodev,inode64 0 0\n/dev/vda15 /boot/efi vfat rw,relatime,fmask=0022,dmask=0022,codepage=437,iocharset=ascii,shortname=mixed,utf8,errors=remount-ro 0 0\n"),
        file("/proc/version", "Linux version 6.1.0-26-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.112-1 (2024-09-30)\n"),
        file("/proc/meminfo", "MemTotal:        4033544 kB\nMemFree:         2764120 kB\nMemAvailable:    3521876 kB\nBuffers:           61344 kB\nCached:           799040 kB\nSwapCached:            0 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n"),
        file("/proc/uptime", "1838211.27 3641530.04\n"),
        file("/root/.bashrc", "# ~/.bashrc: executed by bash(1) for non-login shells.\nexport LS_OPTIONS='--color=auto'\nalias ls='ls $LS_OPTIONS'\n"),
        file("/root/.profile", "# ~/.profile: executed by Bourne-compatible login shells.\nif [ \"$BASH\" ]; then\n  if [ -f ~/.bashrc ]; then\n    . ~/.bashrc\n  fi\nfi\nmesg n 2> /dev/null || true\n"),
    ];
    // Merged /usr: /bin is /usr/bin (bots call /bin/busybox, /bin/sh).
    let mut commands: Vec<String> = GNU_COMMANDS.iter().map(|s| s.to_string()).collect();
    commands.extend(
        GNU_COMMANDS
            .iter()
            .map(|s| s.replacen("/usr/bin/", "/bin/", 1)),
    );
    for p in &commands {
        files.push(file(p, &elf));
    }
    Profile {
        name: "debian_server".into(),
        hostname: "srv01".into(),
        flavor: Flavor::Gnu,
        prompt: "root@{host}:{cwd}# ".into(),
        home: "/root".into(),
        uname: Uname {
            sysname: "Linux".into(),
            release: "6.1.0-26-amd64".into(),
            version: "#1 SMP PREEMPT_DYNAMIC Debian 6.1.112-1 (2024-09-30)".into(),
            machine: "x86_64".into(),
            os: "GNU/Linux".into(),
        },
        busybox_version: "BusyBox v1.35.0 (Debian 1:1.35.0-4+b3) multi-call binary.".into(),
        files,
        dirs: [
            "/sbin", "/dev", "/home/debian", "/tmp", "/var/tmp", "/var/log", "/var/www",
            "/run", "/usr/sbin", "/usr/lib", "/opt", "/srv", "/mnt",
        ]
        .map(String::from)
        .to_vec(),
        commands,
        ps: "    PID TTY          TIME CMD\n   1423 pts/0    00:00:00 bash\n   1437 pts/0    00:00:00 ps\n".into(),
        ps_full: DEBIAN_PS_AUX.into(),
        id: "uid=0(root) gid=0(root) groups=0(root)".into(),
    }
}

const ARM_CPUINFO: &str = "processor\t: 0
model name\t: ARMv7 Processor rev 5 (v7l)
BogoMIPS\t: 48.00
Features\t: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm
CPU implementer\t: 0x41
CPU architecture: 7
CPU variant\t: 0x0
CPU part\t: 0xc07
CPU revision\t: 5

processor\t: 1
model name\t: ARMv7 Processor rev 5 (v7l)
BogoMIPS\t: 48.00
Features\t: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm
CPU implementer\t: 0x41
CPU architecture: 7
CPU variant\t: 0x0
CPU part\t: 0xc07
CPU revision\t: 5

Hardware\t: Generic DT based system
Revision\t: 0000
Serial\t\t: 0000000000000000
";

fn x86_cpuinfo() -> String {
    let mut s = String::new();
    for n in 0..2 {
        s.push_str(&format!(
            "processor\t: {n}
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 79
model name\t: Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz
stepping\t: 1
microcode\t: 0xb000040
cpu MHz\t\t: 2399.998
cache size\t: 35840 KB
physical id\t: {n}
siblings\t: 1
core id\t\t: 0
cpu cores\t: 1
apicid\t\t: {n}
initial apicid\t: {n}
fpu\t\t: yes
fpu_exception\t: yes
cpuid level\t: 13
wp\t\t: yes
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ss syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology cpuid tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand hypervisor lahf_lm abm 3dnowprefetch invpcid_single pti fsgsbase tsc_adjust bmi1 hle avx2 smep bmi2 erms invpcid rtm rdseed adx smap xsaveopt arat
bugs\t\t: cpu_meltdown spectre_v1 spectre_v2 spec_store_bypass l1tf mds swapgs taa itlb_multihit mmio_stale_data
bogomips\t: 4799.99
clflush size\t: 64
cache_alignment\t: 64
address sizes\t: 46 bits physical, 48 bits virtual
power management:

"
        ));
    }
    s
}

const BUSYBOX_PS: &str = "  PID USER       VSZ STAT COMMAND
    1 root      1524 S    init
    2 root         0 SW   [kthreadd]
    3 root         0 SW   [ksoftirqd/0]
    5 root         0 SW<  [kworker/0:0H]
    7 root         0 SW   [rcu_preempt]
   10 root         0 SW   [watchdog/0]
  112 root         0 SW   [mtdblock5]
  398 root      1520 S    /sbin/syslogd -n
  401 root      1520 S    /sbin/klogd -n
  455 root      2260 S    /usr/sbin/dropbear -R
  471 root      1516 S    /usr/sbin/udhcpd /etc/udhcpd.conf
  560 root      1532 S    /usr/sbin/telnetd -F
  588 root      4352 S    /usr/sbin/httpd -f -h /www
  612 root      1528 S    -sh
  690 root      1524 R    ps
";

const DEBIAN_PS_AUX: &str = "USER         PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND
root           1  0.0  0.3 167748 12920 ?        Ss   Nov05   1:12 /sbin/init
root           2  0.0  0.0      0     0 ?        S    Nov05   0:00 [kthreadd]
root           3  0.0  0.0      0     0 ?        I<   Nov05   0:00 [rcu_gp]
root         312  0.0  0.4  48312 17584 ?        Ss   Nov05   0:21 /lib/systemd/systemd-journald
root         344  0.0  0.1  26004  6448 ?        Ss   Nov05   0:02 /lib/systemd/systemd-udevd
root         512  0.0  0.0   6608  2612 ?        Ss   Nov05   0:04 /usr/sbin/cron -f
message+     513  0.0  0.1   9120  4668 ?        Ss   Nov05   0:03 /usr/bin/dbus-daemon --system
root         530  0.0  0.1  15432  8876 ?        Ss   Nov05   0:00 sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups
root         541  0.0  0.0   5876  1836 tty1     Ss+  Nov05   0:00 /sbin/agetty -o -p -- \\u --noclear - linux
root        1419  0.0  0.2  17936 10932 ?        Ss   16:02   0:00 sshd: root@pts/0
root        1423  0.0  0.1   7968  4660 pts/0    Ss   16:02   0:00 -bash
root        1437  0.0  0.1  11084  4420 pts/0    R+   16:05   0:00 ps aux
";

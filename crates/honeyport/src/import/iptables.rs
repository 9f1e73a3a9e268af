//! Kernel firewall log lines (the iptables/nftables `LOG` target, as DShield's sensor writes
//! them) into firewall records: the ISC's way of counting a port, including ports where
//! nothing listens.
//!
//! A line is a timestamp, then anything, with `KEY=value` fields anywhere after it:
//!
//! ```text
//! Nov 26 12:34:56 host kernel: [12345.678901] DSHIELDINPUT IN=eth0 OUT= MAC=... SRC=203.0.113.5 DST=198.51.100.2 LEN=44 ... PROTO=TCP SPT=54321 DPT=26 WINDOW=1024 RES=0x00 SYN URGP=0
//! 2026-11-26T12:34:56.123456+00:00 host kernel: ... SRC=... DST=... PROTO=UDP SPT=5060 DPT=5060 LEN=420
//! ```
//!
//! - The timestamp is RFC 3339 (to the microsecond), or syslog's `Mmm dd HH:MM:SS`, which has
//!   no year: `--year`, else the current UTC year (the year before for a month later than the
//!   current one), in the time zone `--utc-offset` (default UTC).
//! - `PROTO=TCP` and `PROTO=UDP` lines (also `6`, `17`) need `SRC`, `DST`, `SPT` and `DPT`:
//!   each is one record. Other protocols (ICMP...) are counted as not mapped, by protocol;
//!   a line with none of `SRC=`, `DST=`, `PROTO=` (another kernel message) as "not a
//!   firewall line". A line without a timestamp, or with a field missing or unreadable, is
//!   malformed.
//! - Records go to the `firewall` table, unique per (time, sensor, protocol, source,
//!   destination, ports); only a record new to it is counted in the report rollups
//!   ([`crate::store::Writer::write_firewall`]), in the same transaction, so importing a file
//!   again adds nothing.
//!   (Two identical lines within the same timestamp are one record.)
//! - The sensor is `--sensor`, else `firewall`.

use std::net::IpAddr;

use chrono::{Datelike as _, FixedOffset, NaiveDate, TimeZone as _};

use super::{in_range, parse_iso, Importer, Options, Position, Store, Summary, BATCH};
use crate::store::FirewallRecord;

/// One firewall record.
#[derive(Debug, Clone, PartialEq)]
pub struct Rec {
    pub ts: i64,
    pub udp: bool,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub spt: u16,
    pub dpt: u16,
}

/// What a line is.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    Record(Rec),
    /// Counted under this name as not mapped.
    Skip(String),
    Malformed(String),
}

/// How syslog timestamps without a year are read.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub year: Option<i32>,
    pub offset: FixedOffset,
    /// Today's year and month (UTC), for the default year.
    pub now_year: i32,
    pub now_month: u32,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl Clock {
    /// `Mmm dd HH:MM:SS` from the first three words.
    fn syslog(&self, mon: &str, day: &str, time: &str) -> Option<i64> {
        let m = MONTHS.iter().position(|x| x.eq_ignore_ascii_case(mon))? as u32 + 1;
        let d: u32 = day.parse().ok()?;
        let t = chrono::NaiveTime::parse_from_str(time, "%H:%M:%S%.f").ok()?;
        let year = self.year.unwrap_or(if m > self.now_month {
            self.now_year - 1
        } else {
            self.now_year
        });
        let local = NaiveDate::from_ymd_opt(year, m, d)?.and_time(t);
        let t = self.offset.from_local_datetime(&local).single()?;
        in_range(t.timestamp_micros())
    }
}

/// Reads one line.
pub fn parse(line: &str, clock: &Clock) -> Parsed {
    let mut words = line.split_ascii_whitespace();
    let first = words.next().unwrap_or("");
    let ts = if first.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        parse_iso(first)
    } else {
        match (words.next(), words.next()) {
            (Some(d), Some(t)) => clock.syslog(first, d, t),
            _ => None,
        }
    };
    let Some(ts) = ts else {
        return Parsed::Malformed("no syslog or RFC 3339 timestamp at the start".into());
    };
    let (mut src, mut dst, mut proto, mut spt, mut dpt) = (None, None, None, None, None);
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            continue;
        };
        match k {
            "SRC" => src = Some(v),
            "DST" => dst = Some(v),
            "PROTO" => proto = Some(v),
            "SPT" => spt = Some(v),
            "DPT" => dpt = Some(v),
            _ => {}
        }
    }
    if src.is_none() && dst.is_none() && proto.is_none() {
        return Parsed::Skip("not a firewall line".into());
    }
    let Some(proto) = proto else {
        return Parsed::Malformed("no PROTO=".into());
    };
    let udp = match proto.to_ascii_uppercase().as_str() {
        "TCP" | "6" => false,
        "UDP" | "17" => true,
        other => return Parsed::Skip(format!("PROTO={other}")),
    };
    let ip = |name: &str, v: Option<&str>| -> Result<IpAddr, String> {
        let v = v.ok_or_else(|| format!("no {name}="))?;
        v.parse()
            .map_err(|_| format!("{name}={v} is not an address"))
    };
    let port = |name: &str, v: Option<&str>| -> Result<u16, String> {
        let v = v.ok_or_else(|| format!("no {name}="))?;
        v.parse().map_err(|_| format!("{name}={v} is not a port"))
    };
    let rec = (|| {
        Ok::<_, String>(Rec {
            ts,
            udp,
            src: ip("SRC", src)?,
            dst: ip("DST", dst)?,
            spt: port("SPT", spt)?,
            dpt: port("DPT", dpt)?,
        })
    })();
    match rec {
        Ok(r) => Parsed::Record(r),
        Err(e) => Parsed::Malformed(e),
    }
}

pub struct Iptables {
    sensor: String,
    clock: Clock,
    pending: Vec<Rec>,
}

impl Iptables {
    pub fn new(opts: &Options) -> anyhow::Result<Iptables> {
        let now = chrono::Utc::now();
        Ok(Iptables {
            sensor: opts.sensor.clone().unwrap_or_else(|| "firewall".into()),
            clock: Clock {
                year: opts.year,
                offset: opts.utc_offset,
                now_year: now.year(),
                now_month: now.month(),
            },
            pending: Vec::with_capacity(BATCH),
        })
    }

    /// Writes the pending records in one transaction; new ones are counted in the rollups.
    fn flush(&mut self, store: &mut Store, sum: &mut Summary) -> anyhow::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let recs: Vec<FirewallRecord> = self
            .pending
            .iter()
            .map(|r| FirewallRecord {
                ts_micros: r.ts,
                udp: r.udp,
                src: r.src,
                dst: r.dst,
                spt: r.spt,
                dpt: r.dpt,
            })
            .collect();
        let new = store.firewall(&self.sensor, &recs)?;
        sum.records += new;
        sum.records_existing += recs.len() as u64 - new;
        self.pending.clear();
        Ok(())
    }
}

impl Importer for Iptables {
    fn line(
        &mut self,
        line: &[u8],
        pos: &Position<'_>,
        store: &mut Store,
        sum: &mut Summary,
    ) -> anyhow::Result<()> {
        let Ok(text) = std::str::from_utf8(line) else {
            sum.malformed(pos, "not UTF-8 text");
            return Ok(());
        };
        match parse(text, &self.clock) {
            Parsed::Record(r) => {
                self.pending.push(r);
                if self.pending.len() >= BATCH {
                    self.flush(store, sum)?;
                }
            }
            Parsed::Skip(what) => sum.not_mapped(&what),
            Parsed::Malformed(why) => sum.malformed(pos, why),
        }
        Ok(())
    }

    fn finish(&mut self, store: &mut Store, sum: &mut Summary) -> anyhow::Result<()> {
        self.flush(store, sum)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn clock(year: Option<i32>) -> Clock {
        Clock {
            year,
            offset: FixedOffset::east_opt(0).unwrap(),
            now_year: 2026,
            now_month: 11,
        }
    }

    #[test]
    fn a_dshield_line_is_a_record() {
        let l = "Nov 26 12:34:56 host kernel: [12345.678901] DSHIELDINPUT IN=eth0 OUT= MAC=00:11 SRC=203.0.113.5 DST=198.51.100.2 LEN=44 TOS=0x00 PREC=0x00 TTL=243 ID=54321 PROTO=TCP SPT=54321 DPT=26 WINDOW=1024 RES=0x00 SYN URGP=0";
        let Parsed::Record(r) = parse(l, &clock(None)) else {
            panic!()
        };
        assert_eq!(r.ts, 1_795_696_496_000_000); // 2026-11-26T12:34:56Z
        assert_eq!((r.udp, r.spt, r.dpt), (false, 54321, 26));
        assert_eq!(r.src, "203.0.113.5".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn syslog_years() {
        // December, seen in November 2026: last year's.
        let Parsed::Record(r) = parse(
            "Dec  1 00:00:00 h k: SRC=1.2.3.4 DST=5.6.7.8 PROTO=UDP SPT=1 DPT=2",
            &clock(None),
        ) else {
            panic!()
        };
        assert_eq!(r.ts, 1_764_547_200_000_000); // 2025-12-01
        let Parsed::Record(r) = parse(
            "Dec  1 00:00:00 h k: SRC=1.2.3.4 DST=5.6.7.8 PROTO=UDP SPT=1 DPT=2",
            &clock(Some(2019)),
        ) else {
            panic!()
        };
        assert_eq!(r.ts, 1_575_158_400_000_000);
        let mut c = clock(Some(2019));
        c.offset = FixedOffset::east_opt(3600).unwrap();
        let Parsed::Record(r) = parse(
            "Dec  1 01:00:00 h k: SRC=1.2.3.4 DST=5.6.7.8 PROTO=UDP SPT=1 DPT=2",
            &c,
        ) else {
            panic!()
        };
        assert_eq!(r.ts, 1_575_158_400_000_000);
    }

    #[test]
    fn other_lines() {
        let c = clock(None);
        assert_eq!(
            parse(
                "2026-11-26T12:34:56.5+00:00 h k: SRC=1.2.3.4 DST=5.6.7.8 PROTO=ICMP TYPE=8",
                &c
            ),
            Parsed::Skip("PROTO=ICMP".into())
        );
        assert_eq!(
            parse("Nov 26 12:34:56 h k: eth0 link up", &c),
            Parsed::Skip("not a firewall line".into())
        );
        assert!(matches!(parse("garbage here", &c), Parsed::Malformed(_)));
        assert_eq!(
            parse(
                "Nov 26 12:34:56 h k: SRC=1.2.3.4 DST=5.6.7.8 PROTO=TCP SPT=1",
                &c
            ),
            Parsed::Malformed("no DPT=".into())
        );
        assert_eq!(
            parse(
                "Nov 26 12:34:56 h k: SRC=1.2.3 DST=5.6.7.8 PROTO=TCP SPT=1 DPT=2",
                &c
            ),
            Parsed::Malformed("SRC=1.2.3 is not an address".into())
        );
    }
}

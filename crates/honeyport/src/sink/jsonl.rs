//! JSON-lines file sink with size-based rotation: `events.jsonl` grows to `max_size`, then
//! becomes `events.jsonl.1` (older ones shift up to `.keep`, the oldest is removed).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use honeyport_event::Event;

pub struct JsonlSink {
    path: PathBuf,
    out: BufWriter<File>,
    size: u64,
    max_size: u64,
    keep: u32,
}

impl JsonlSink {
    pub fn open(path: PathBuf, max_size: u64, keep: u32) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let f = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = f.metadata()?.len();
        Ok(JsonlSink {
            path,
            out: BufWriter::with_capacity(64 << 10, f),
            size,
            max_size,
            keep,
        })
    }

    pub fn write(&mut self, batch: &[Event]) -> std::io::Result<()> {
        for ev in batch {
            let line = ev.to_json();
            if self.size > 0 && self.size + line.len() as u64 + 1 > self.max_size {
                self.rotate()?;
            }
            self.out.write_all(line.as_bytes())?;
            self.out.write_all(b"\n")?;
            self.size += line.len() as u64 + 1;
        }
        self.out.flush()
    }

    pub fn sync(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_all()
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.sync()?;
        let name = |i: u32| {
            let mut s = self.path.clone().into_os_string();
            s.push(format!(".{i}"));
            PathBuf::from(s)
        };
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            let _ = std::fs::remove_file(name(self.keep));
            for i in (1..self.keep).rev() {
                let from = name(i);
                if from.exists() {
                    std::fs::rename(&from, name(i + 1))?;
                }
            }
            std::fs::rename(&self.path, name(1))?;
        }
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.out = BufWriter::with_capacity(64 << 10, f);
        self.size = 0;
        Ok(())
    }
}

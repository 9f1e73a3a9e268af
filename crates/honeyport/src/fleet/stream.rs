//! The JetStream stream the fleet publishes into: created or checked by the collector
//! (`honeyport collect`, or `collect --init`), never by a sensor (sensors have no rights on the
//! JetStream API).
//!
//! - Subjects `honeyport.events.<sensor>` and `honeyport.heartbeat.<sensor>`.
//! - File storage; `discard = new`: a full stream refuses new messages (the sensor keeps them
//!   in its spool and retries) instead of deleting old ones, which would lose data silently.
//! - Work-queue retention: a message is removed once the collector acknowledged it (after its
//!   COMMIT), so `max_bytes` bounds what is *waiting*, and a full stream frees up as the
//!   collector catches up. A stream with `limits` retention would fill once and stay full.
//! - A duplicate window (default 2 min): a message republished with the same `Nats-Msg-Id`
//!   within it is dropped by the server; beyond it the collector's idempotent load is what
//!   adds nothing.
//!
//! After a create or update the server echoes the config it keeps; nats-server 2.9 silently
//! ignores fields it does not know, so every field set here is compared with the echo
//! ([`StreamSpec::differences`]) and a difference is an error naming the fields.

use std::path::Path;
use std::time::Duration;

use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use serde::Deserialize;

use crate::config::units::NumOrStr;
use crate::config::Problems;

/// Subjects of sensors' events: `honeyport.events.<sensor>`.
pub const EVENTS_PREFIX: &str = "honeyport.events";
/// Subjects of sensors' heartbeats: `honeyport.heartbeat.<sensor>`.
pub const HEARTBEAT_PREFIX: &str = "honeyport.heartbeat";

/// The events subject of `sensor`.
pub fn events_subject(sensor: &str) -> String {
    format!("{EVENTS_PREFIX}.{sensor}")
}

/// The heartbeat subject of `sensor`.
pub fn heartbeat_subject(sensor: &str) -> String {
    format!("{HEARTBEAT_PREFIX}.{sensor}")
}

/// `[stream]` of `collect` as written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamRaw {
    /// The stream's name. Default `HONEYPORT`.
    pub name: Option<String>,
    /// Most bytes waiting in the stream (e.g. "10GiB"); past it, publishes are refused and
    /// sensors spool. Default 1 GiB.
    pub max_bytes: Option<NumOrStr>,
    /// Most messages waiting; -1 = no limit. Default -1.
    pub max_msgs: Option<i64>,
    /// Oldest message kept (e.g. "30d"); 0 = forever. Default 0: with a limit, a message the
    /// collector has not loaded by then is deleted, which loses it (its sensor's cursor has
    /// moved on), so set it only with an alert on the collector's lag.
    pub max_age: Option<NumOrStr>,
    /// How long the server remembers a `Nats-Msg-Id` to drop a republished copy. Default 2 min.
    pub duplicate_window: Option<NumOrStr>,
}

/// The stream as it should be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSpec {
    pub name: String,
    /// -1 = no limit.
    pub max_bytes: i64,
    /// -1 = no limit.
    pub max_msgs: i64,
    /// Zero = forever.
    pub max_age: Duration,
    pub duplicate_window: Duration,
}

pub const DEFAULT_STREAM: &str = "HONEYPORT";
pub const DEFAULT_MAX_BYTES: i64 = 1 << 30;
pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

impl Default for StreamSpec {
    fn default() -> Self {
        StreamSpec {
            name: DEFAULT_STREAM.into(),
            max_bytes: DEFAULT_MAX_BYTES,
            max_msgs: -1,
            max_age: Duration::ZERO,
            duplicate_window: DEFAULT_DUPLICATE_WINDOW,
        }
    }
}

impl StreamRaw {
    /// Pure: every problem recorded under `at`.
    pub fn validate(&self, at: &str, _base: &Path, p: &mut Problems<'_>) -> Option<StreamSpec> {
        let before = p.errors.len();
        let mut spec = StreamSpec::default();
        if let Some(n) = &self.name {
            // A stream name is one subject token of the API (`$JS.API.STREAM.INFO.<name>`).
            if n.is_empty()
                || n.len() > 64
                || !n
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                p.at(
                    &format!("{at}.name"),
                    "a stream name is 1-64 of A-Z a-z 0-9 _ -",
                );
            }
            spec.name = n.clone();
        }
        if let Some(b) = &self.max_bytes {
            match b.size() {
                Ok(0) => p.at(&format!("{at}.max_bytes"), "must be more than 0"),
                Ok(b) => spec.max_bytes = i64::try_from(b).unwrap_or(i64::MAX),
                Err(e) => p.at(&format!("{at}.max_bytes"), e),
            }
        }
        if let Some(m) = self.max_msgs {
            if m == 0 || m < -1 {
                p.at(
                    &format!("{at}.max_msgs"),
                    "must be -1 (no limit) or more than 0",
                );
            }
            spec.max_msgs = m;
        }
        let mut duration = |v: &Option<NumOrStr>, key: &str, into: &mut Duration| {
            if let Some(v) = v {
                match v.duration() {
                    Ok(d) => *into = d,
                    Err(e) => p.at(&format!("{at}.{key}"), e),
                }
            }
        };
        duration(&self.max_age, "max_age", &mut spec.max_age);
        duration(
            &self.duplicate_window,
            "duplicate_window",
            &mut spec.duplicate_window,
        );
        if spec.duplicate_window.is_zero() {
            p.at(
                &format!("{at}.duplicate_window"),
                "must be more than 0 (republished events would be stored twice)",
            );
        }
        if !spec.max_age.is_zero() && spec.duplicate_window > spec.max_age {
            // The server refuses this too, with a less clear message.
            p.at(
                &format!("{at}.duplicate_window"),
                "must not be longer than max_age",
            );
        }
        (p.errors.len() == before).then_some(spec)
    }
}

/// Why the stream could not be ensured.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("stream {name}: the JetStream API refused or did not answer: {detail}")]
    Api { name: String, detail: String },
    #[error(
        "stream {name} exists with other settings: {}; change the config to match, or run \
         `honeyport collect --update-stream` to change the stream",
        .diffs.join("; ")
    )]
    Differs { name: String, diffs: Vec<String> },
    #[error(
        "stream {name}: the server did not keep {} (an older nats-server ignores settings it \
         does not know); refusing to run with a stream that does not do what it says",
        .diffs.join("; ")
    )]
    NotKept { name: String, diffs: Vec<String> },
}

impl StreamSpec {
    /// The subjects it takes.
    pub fn subjects() -> Vec<String> {
        vec![
            format!("{EVENTS_PREFIX}.*"),
            format!("{HEARTBEAT_PREFIX}.*"),
        ]
    }

    /// The config sent to the server.
    pub fn config(&self) -> stream::Config {
        stream::Config {
            name: self.name.clone(),
            subjects: Self::subjects(),
            retention: RetentionPolicy::WorkQueue,
            storage: StorageType::File,
            discard: DiscardPolicy::New,
            max_bytes: self.max_bytes,
            max_messages: self.max_msgs,
            max_age: self.max_age,
            duplicate_window: self.duplicate_window,
            num_replicas: 1,
            ..Default::default()
        }
    }

    /// Every field this spec sets that `got` has otherwise, as `field: want X, server has Y`.
    pub fn differences(&self, got: &stream::Config) -> Vec<String> {
        let want = self.config();
        let sorted = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            format!("{v:?}")
        };
        let d = |v: &dyn std::fmt::Debug| format!("{v:?}");
        let fields = [
            ("subjects", sorted(&want.subjects), sorted(&got.subjects)),
            ("retention", d(&want.retention), d(&got.retention)),
            ("storage", d(&want.storage), d(&got.storage)),
            ("discard", d(&want.discard), d(&got.discard)),
            ("max_bytes", d(&want.max_bytes), d(&got.max_bytes)),
            ("max_msgs", d(&want.max_messages), d(&got.max_messages)),
            ("max_age", d(&want.max_age), d(&got.max_age)),
            (
                "duplicate_window",
                d(&want.duplicate_window),
                d(&got.duplicate_window),
            ),
            (
                "num_replicas",
                d(&want.num_replicas.max(1)),
                d(&got.num_replicas.max(1)),
            ),
        ];
        fields
            .into_iter()
            .filter(|(_, w, g)| w != g)
            .map(|(field, w, g)| format!("{field}: want {w}, server has {g}"))
            .collect()
    }

    /// Creates the stream, or checks the existing one (updating it when `update`), and checks
    /// what the server says it keeps. Needs the JetStream API (the collector's rights).
    pub async fn ensure(
        &self,
        js: &async_nats::jetstream::Context,
        update: bool,
    ) -> Result<stream::Stream, StreamError> {
        let api = |e: &dyn std::fmt::Display| StreamError::Api {
            name: self.name.clone(),
            detail: e.to_string(),
        };
        use async_nats::jetstream::context::GetStreamErrorKind;
        use async_nats::jetstream::ErrorCode;
        let existing = match js.get_stream(&self.name).await {
            Ok(s) => s,
            Err(e) => match e.kind() {
                GetStreamErrorKind::JetStream(j)
                    if j.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                {
                    let created = js.create_stream(self.config()).await.map_err(|e| api(&e))?;
                    let diffs = self.differences(&created.cached_info().config);
                    if !diffs.is_empty() {
                        return Err(StreamError::NotKept {
                            name: self.name.clone(),
                            diffs,
                        });
                    }
                    tracing::info!(stream = %self.name, "created the stream");
                    return js.get_stream(&self.name).await.map_err(|e| api(&e));
                }
                _ => return Err(api(&e)),
            },
        };
        let diffs = self.differences(&existing.cached_info().config);
        if diffs.is_empty() {
            return Ok(existing);
        }
        if !update {
            return Err(StreamError::Differs {
                name: self.name.clone(),
                diffs,
            });
        }
        tracing::warn!(stream = %self.name, changes = %diffs.join("; "), "updating the stream's settings");
        let info = js.update_stream(self.config()).await.map_err(|e| api(&e))?;
        let diffs = self.differences(&info.config);
        if !diffs.is_empty() {
            return Err(StreamError::NotKept {
                name: self.name.clone(),
                diffs,
            });
        }
        js.get_stream(&self.name).await.map_err(|e| api(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_each_field_the_server_did_not_keep() {
        let spec = StreamSpec::default();
        assert!(spec.differences(&spec.config()).is_empty());
        let mut got = spec.config();
        got.discard = DiscardPolicy::Old;
        got.duplicate_window = Duration::ZERO;
        got.subjects.reverse();
        let diffs = spec.differences(&got);
        assert_eq!(diffs.len(), 2, "{diffs:?}");
        assert!(
            diffs[0].starts_with("discard: want New, server has Old"),
            "{diffs:?}"
        );
        assert!(diffs[1].starts_with("duplicate_window"), "{diffs:?}");
    }

    #[test]
    fn validation_reports_every_problem() {
        let src = "name = \"a.b\"\nmax_bytes = 0\nmax_msgs = -5\nmax_age = \"1m\"\nduplicate_window = \"2m\"";
        let raw: StreamRaw = toml::from_str(src).expect("parses");
        let mut p = Problems::new(src);
        assert!(raw.validate("stream", Path::new("/"), &mut p).is_none());
        let all: Vec<_> = p.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            all,
            [
                "stream.name",
                "stream.max_bytes",
                "stream.max_msgs",
                "stream.duplicate_window"
            ]
        );
        let ok: StreamRaw = toml::from_str("max_bytes = \"2MiB\"").expect("parses");
        let mut p = Problems::new("");
        let spec = ok
            .validate("stream", Path::new("/"), &mut p)
            .expect("valid");
        assert_eq!(spec.max_bytes, 2 << 20);
        assert_eq!(spec.duplicate_window, DEFAULT_DUPLICATE_WINDOW);
    }
}

//! The wire contract between the maintenance-window coordinator (embedded in a
//! tracker) and the backup sidecar.
//!
//! Both sides depend on this crate and on nothing else of each other, so a
//! change to the protocol is a change to this file. Everything here is a plain
//! serde type: no I/O, no clocks, no policy. The JSON shapes are pinned by
//! tests, so renaming a field by accident fails the build's tests rather than
//! a night's backup.
//!
//! ```
//! use maintenance_proto::{State, StatusResponse};
//! let body = r#"{"protocol_version":1,"instance_id":"i-1","state":"ready","window_id":"w-1",
//!   "version":7,"announce_policy":"reject","current_window":null,"next_window":null,
//!   "lease_expires_at":null,"released_window":null,"last_outcomes":[]}"#;
//! let status: StatusResponse = serde_json::from_str(body).unwrap();
//! assert_eq!(status.state, State::Ready);
//! ```

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Version of this contract, carried in the readiness file and in every
/// status body.
///
/// - 1: claim, heartbeat, release, complete.
/// - 2: pinned snapshots ("resume now, unpin later"): [`LeaseResponse::pin`],
///   [`ReleaseRequest::keep_pin`], `POST unpin`, [`StatusResponse::pin`].
///   Every addition is optional on the wire, so a version-1 sidecar works
///   with a version-2 coordinator (it releases after copying, which drops
///   the pin) and a version-2 sidecar with a version-1 coordinator (no pin
///   is offered, so it reads before releasing).
/// - 3: leases belong to their claimant. [`ClaimRequest::protocol_version`]
///   says the sidecar speaks 3; the claim answers an unguessable
///   [`LeaseResponse::lease_id`], and `heartbeat`, `release`, `unpin` and
///   `complete` must carry it (`lease_id`), or get `409 lease_mismatch`.
///   A version-3 coordinator refuses the claim of an older sidecar (`400
///   invalid_request`, naming the upgrade): the window id alone, which
///   anyone reading the ready file knows, no longer steers a lease. A
///   version-3 sidecar works with older coordinators (no `lease_id` in
///   the answer, so it sends none).
pub const PROTOCOL_VERSION: u32 = 3;

/// The oldest sidecar protocol a coordinator of this version accepts a
/// claim from.
pub const MIN_SIDECAR_PROTOCOL: u32 = 3;

/// Path prefix under which the coordinator's HTTP API is mounted.
pub const API_PREFIX: &str = "/maintenance/v1";

/// Where a coordinator is in its window cycle. See DESIGN section 3.
///
/// ```
/// use maintenance_proto::State;
/// assert_eq!(serde_json::to_string(&State::Claimed).unwrap(), "\"claimed\"");
/// assert!(State::Ready.is_quiesced());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Serving normally; no window is running.
    Idle,
    /// The gate is closed (or writes are paused); in-flight work finishes.
    Draining,
    /// The tracker's quiesce hook is flushing and checkpointing.
    Quiescing,
    /// The database is quiesced and readiness is published.
    Ready,
    /// A sidecar holds the lease and is taking its snapshot.
    Claimed,
    /// The window is ending; the tracker is reopening.
    Resuming,
}

impl State {
    /// Every state, in the order of a window.
    pub const ALL: [State; 6] = [
        State::Idle,
        State::Draining,
        State::Quiescing,
        State::Ready,
        State::Claimed,
        State::Resuming,
    ];

    /// True when the database files are consistent on disk and untouched:
    /// the only states in which a sidecar may copy them.
    pub fn is_quiesced(self) -> bool {
        matches!(self, State::Ready | State::Claimed)
    }

    /// The name used on the wire and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Draining => "draining",
            State::Quiescing => "quiescing",
            State::Ready => "ready",
            State::Claimed => "claimed",
            State::Resuming => "resuming",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Fencing token naming one window occurrence of one coordinator instance.
///
/// A call carrying a window id that is not the current one is refused with
/// `409 stale_window` and changes nothing.
///
/// ```
/// use maintenance_proto::WindowId;
/// let id = WindowId::new("6f0c2d9e1a7b-1");
/// assert_eq!(id.as_str(), "6f0c2d9e1a7b-1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WindowId(String);

impl WindowId {
    /// Wraps an id received from the other side.
    pub fn new(id: impl Into<String>) -> Self {
        WindowId(id.into())
    }

    /// The id as text, e.g. for a folder name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WindowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a window ended. Every window ends with exactly one.
///
/// ```
/// use maintenance_proto::Outcome;
/// assert_eq!(serde_json::to_string(&Outcome::Expired).unwrap(), "\"expired\"");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The sidecar reported a successful backup.
    Completed,
    /// The sidecar reported an error, or the tracker could not quiesce.
    Failed,
    /// Nobody claimed the window, or the lease or the deadline ran out.
    Expired,
    /// An operator ended the window.
    Aborted,
}

impl Outcome {
    /// The name used on the wire and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Failed => "failed",
            Outcome::Expired => "expired",
            Outcome::Aborted => "aborted",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the tracker does with announces during a window.
///
/// ```
/// use maintenance_proto::AnnouncePolicy;
/// let p: AnnouncePolicy = serde_json::from_str("\"defer-writes\"").unwrap();
/// assert_eq!(p, AnnouncePolicy::DeferWrites);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnnouncePolicy {
    /// Refuse announces with a bencoded failure and a retry interval.
    #[default]
    Reject,
    /// Keep answering announces from memory; only database writes wait.
    DeferWrites,
}

impl AnnouncePolicy {
    /// The name used in config files and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            AnnouncePolicy::Reject => "reject",
            AnnouncePolicy::DeferWrites => "defer-writes",
        }
    }
}

impl fmt::Display for AnnouncePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A half-open interval `[start, end)` in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSpan {
    /// First instant of the window.
    pub start: DateTime<Utc>,
    /// The hard deadline: the tracker serves normally again by then.
    pub end: DateTime<Utc>,
}

impl WindowSpan {
    /// True when `at` lies inside the window.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use maintenance_proto::WindowSpan;
    /// let w = WindowSpan { start: Utc.with_ymd_and_hms(2026, 1, 1, 3, 0, 0).unwrap(),
    ///                      end: Utc.with_ymd_and_hms(2026, 1, 1, 3, 5, 0).unwrap() };
    /// assert!(w.contains(Utc.with_ymd_and_hms(2026, 1, 1, 3, 0, 0).unwrap()));
    /// assert!(!w.contains(w.end));
    /// ```
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.start <= at && at < self.end
    }

    /// Length of the window.
    pub fn duration(&self) -> chrono::Duration {
        self.end - self.start
    }
}

/// The recorded end of one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowOutcome {
    /// Which window.
    pub window_id: WindowId,
    /// How it ended.
    pub outcome: Outcome,
    /// When the window opened (the gate closed).
    pub opened_at: DateTime<Utc>,
    /// When the outcome was recorded.
    pub ended_at: DateTime<Utc>,
    /// Seconds the tracker was not serving normally (gate closed or writes
    /// paused), from opening to resume.
    pub quiesced_secs: f64,
    /// Why, in words an operator can act on (error text, which timeout).
    pub reason: Option<String>,
    /// The sidecar's report, when one was posted.
    pub report: Option<BackupReport>,
}

/// Contents of the readiness file, rewritten atomically on every state
/// change that matters to a sidecar.
///
/// A sidecar may treat the file only as a hint to wake up: it must still
/// claim the window over HTTP, which the coordinator confirms.
///
/// ```
/// use maintenance_proto::{ReadinessDocument, State};
/// let doc = ReadinessDocument::not_ready("i-1", State::Idle, chrono::Utc::now());
/// assert!(!doc.ready);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadinessDocument {
    /// [`PROTOCOL_VERSION`] of the writer.
    pub protocol_version: u32,
    /// The coordinator instance that wrote the file.
    pub instance_id: String,
    /// The state when written.
    pub state: State,
    /// True only while the database is quiesced and waiting for a claim.
    pub ready: bool,
    /// The window this readiness belongs to.
    pub window_id: Option<WindowId>,
    /// The hard deadline of that window.
    pub window_end: Option<DateTime<Utc>>,
    /// When the file was written.
    pub written_at: DateTime<Utc>,
    /// Process id of the writer, for operators.
    pub pid: u32,
}

impl ReadinessDocument {
    /// A document saying "do not back up now".
    pub fn not_ready(instance_id: &str, state: State, now: DateTime<Utc>) -> Self {
        ReadinessDocument {
            protocol_version: PROTOCOL_VERSION,
            instance_id: instance_id.to_owned(),
            state,
            ready: false,
            window_id: None,
            window_end: None,
            written_at: now,
            pid: std::process::id(),
        }
    }
}

/// A window whose tracker already resumed (the sidecar released it) but
/// whose outcome waits for the sidecar's `complete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleasedWindow {
    /// The window id the sidecar must complete.
    pub window_id: WindowId,
    /// Heartbeats keep this in the future until `complete`.
    pub lease_expires_at: DateTime<Utc>,
}

/// Body of `GET status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusResponse {
    /// [`PROTOCOL_VERSION`] of the coordinator.
    pub protocol_version: u32,
    /// Unique per coordinator process; changes on restart.
    pub instance_id: String,
    /// Current state.
    pub state: State,
    /// The running window, if any.
    pub window_id: Option<WindowId>,
    /// Change counter: bumps on every state change. Pass it back as
    /// `since` with `wait` to long-poll for the next change.
    pub version: u64,
    /// The configured announce policy.
    pub announce_policy: AnnouncePolicy,
    /// Span of the running window.
    pub current_window: Option<WindowSpan>,
    /// Next scheduled window after the current one (none when disabled).
    pub next_window: Option<WindowSpan>,
    /// Lease deadline while claimed.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// A released window still waiting for `complete`.
    pub released_window: Option<ReleasedWindow>,
    /// Most recent outcomes, newest first.
    pub last_outcomes: Vec<WindowOutcome>,
    /// The snapshot pin the tracker holds, if any (protocol 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<PinStatus>,
}

/// How a tracker's pin treats database writes while it is held.
///
/// ```
/// use maintenance_proto::PinMode;
/// assert_eq!(serde_json::to_string(&PinMode::WritesWait).unwrap(), "\"writes-wait\"");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PinMode {
    /// Writes resume at release and go around the frozen file (SQLite WAL:
    /// new commits stay in the `-wal` file until the unpin).
    WritesContinue,
    /// The pin blocks writers (SQLite rollback journal): announces resume
    /// at release, database writes wait for the unpin.
    WritesWait,
}

/// A pin offered to the claiming sidecar: the database's main file is
/// frozen until the unpin, so the sidecar may release the tracker before it
/// reads (see [`ReleaseRequest::keep_pin`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinOffer {
    /// How writes behave while pinned.
    pub mode: PinMode,
    /// The pin is dropped at this instant at the latest (the window's
    /// deadline); a read not confirmed by then is abandoned.
    pub ends_by: DateTime<Utc>,
}

/// The pin as the status shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinStatus {
    /// The window whose snapshot is pinned.
    pub window_id: WindowId,
    /// How writes behave while pinned.
    pub mode: PinMode,
    /// When the pin was taken (end of the quiesce).
    pub since: DateTime<Utc>,
    /// Deadline of the pin.
    pub ends_by: DateTime<Utc>,
    /// True once the tracker resumed while keeping the pin.
    pub kept_after_release: bool,
}

/// Body of `POST claim`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRequest {
    /// The window being claimed, as read from the status or the ready file.
    pub window_id: WindowId,
    /// Free-form name of the claiming sidecar, for logs and races.
    pub sidecar_id: String,
    /// The protocol the sidecar speaks (protocol 3; absent from older
    /// sidecars, whose claims a version-3 coordinator refuses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<u32>,
    /// The lease id of an earlier claim of this window by the same
    /// sidecar (a retried claim renews the lease only with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<String>,
}

/// Body of `POST heartbeat`, `POST unpin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowRequest {
    /// The claimed window.
    pub window_id: WindowId,
    /// The lease id the claim answered (protocol 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<String>,
}

/// Answer to `POST claim` and `POST heartbeat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseResponse {
    /// The claimed window.
    pub window_id: WindowId,
    /// Seconds a lease lasts without a heartbeat.
    pub lease_ttl_secs: f64,
    /// When the lease runs out unless renewed.
    pub lease_expires_at: DateTime<Utc>,
    /// The window's hard deadline (irrelevant once released).
    pub window_end: DateTime<Utc>,
    /// Present when the tracker holds a pin for this window (protocol 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<PinOffer>,
    /// The lease's secret id (protocol 3): every later call on this window
    /// carries it. Unguessable (128 random bits); never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<String>,
}

/// Body of `POST release`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRequest {
    /// The claimed window.
    pub window_id: WindowId,
    /// Resume the tracker now but keep the pin until `POST unpin` (protocol
    /// 2). Without it (or from a version-1 sidecar) the pin is dropped at
    /// release: the sidecar has finished reading.
    #[serde(default)]
    pub keep_pin: bool,
    /// The lease id the claim answered (protocol 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<String>,
}

/// Answer to `POST unpin`: the pin was held, without interruption, from
/// the quiesce until this call, by the coordinator instance that owns the
/// window. Any other situation is an error (`pin_lost`, `stale_window`),
/// and a snapshot read under it must be abandoned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnpinResponse {
    /// The window.
    pub window_id: WindowId,
    /// Seconds the pin was held.
    pub held_secs: f64,
}

/// Answer to `POST release` and `POST abort`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The window acted on.
    pub window_id: WindowId,
    /// State right after the call.
    pub state: State,
    /// After a release with `keep_pin`: true when the pin is kept until
    /// `POST unpin` (protocol 2).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pinned: bool,
}

/// One published file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// Engine that produced it: `sqlite`, `mysql`, `files`.
    pub engine: String,
    /// Path relative to the backup folder.
    pub path: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: String,
}

/// The sidecar's report, posted with `complete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct BackupReport {
    /// Name of the published backup folder, when one was published.
    pub backup: Option<String>,
    /// Everything published.
    pub artifacts: Vec<Artifact>,
    /// Phase durations in seconds (`snapshot`, `compress`, `verify`, `total`, ...).
    pub durations_secs: BTreeMap<String, f64>,
    /// Set when the backup failed; the window's outcome is then `failed`.
    pub error: Option<String>,
    /// The off-site copy of the published backup, when a remote is
    /// configured. Its failure does not fail the window (the local backup
    /// is good); it is reported here, in the sidecar's metrics and webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteCopy>,
    /// The tracker instances the backup covered, when the sidecar drives
    /// one window across several coordinators: the same list goes to every
    /// instance and into the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participation: Option<Participation>,
}

/// Which tracker instances one backup covered (several instances writing
/// to one database, each with its own coordinator).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Participation {
    /// The sidecar's policy for a missing instance: `all` (the backup
    /// fails) or `reachable` (it goes on without it).
    pub require: String,
    /// Every configured instance, in configuration order.
    pub instances: Vec<InstanceReport>,
}

impl Participation {
    /// The instances that were not part of the snapshot.
    pub fn missing(&self) -> impl Iterator<Item = &InstanceReport> {
        self.instances.iter().filter(|i| !i.took_part)
    }
}

/// One tracker instance's part in a backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct InstanceReport {
    /// The coordinator's API URL as configured in the sidecar.
    pub url: String,
    /// The coordinator's instance id, when it was reachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// The window the sidecar claimed there, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_id: Option<WindowId>,
    /// True when the instance was quiesced and claimed when the snapshot
    /// was taken.
    pub took_part: bool,
    /// Why it did not take part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Outcome of uploading a backup to the off-site remote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RemoteCopy {
    /// The remote (`s3://bucket/prefix`, `file:///path`), without credentials.
    pub remote: String,
    /// True when every artifact and then the manifest were uploaded.
    pub uploaded: bool,
    /// Bytes sent.
    pub bytes: u64,
    /// Seconds the upload took, retries included.
    pub secs: f64,
    /// Why it failed.
    pub error: Option<String>,
}

/// Body of `POST complete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompleteRequest {
    /// The claimed window.
    pub window_id: WindowId,
    /// What happened.
    pub report: BackupReport,
    /// The lease id the claim answered (protocol 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<String>,
}

/// Answer to `POST complete`; repeated calls return the same outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompleteResponse {
    /// The window.
    pub window_id: WindowId,
    /// Recorded outcome.
    pub outcome: Outcome,
}

/// Body of `POST windows`: open an ad hoc window now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenWindowRequest {
    /// How long the window lasts, 1..=86400.
    pub duration_secs: u64,
}

/// Answer to `POST windows`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenWindowResponse {
    /// The new window.
    pub window_id: WindowId,
    /// Its span.
    pub window: WindowSpan,
}

/// Body of `POST abort`. Without a window id, aborts whatever runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AbortRequest {
    /// Only abort if this is the running window.
    #[serde(default)]
    pub window_id: Option<WindowId>,
    /// Recorded with the outcome.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Body of `GET health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResponse {
    /// Always `ok` when the coordinator answers.
    pub status: String,
    /// Current state.
    pub state: State,
}

/// Stable machine-readable error codes. Clients switch on these, never on
/// the message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Missing or wrong bearer token (401).
    Unauthorized,
    /// The window id is not the current window (409).
    StaleWindow,
    /// The call does not fit the current state, e.g. claim when not ready (409).
    WrongState,
    /// Another sidecar already holds the lease (409).
    AlreadyClaimed,
    /// A window is already running or awaiting completion (409).
    WindowBusy,
    /// The request body or query is malformed (400).
    InvalidRequest,
    /// No such endpoint (404).
    NotFound,
    /// The endpoint exists but not with this HTTP method (405).
    MethodNotAllowed,
    /// The request body is over the size limit (413).
    BodyTooLarge,
    /// The window's pin was dropped before `unpin` (deadline, abort, lease
    /// lost): a snapshot read under it is not proven consistent (409).
    PinLost,
    /// The call did not carry the lease id the claim answered: only the
    /// claimant may act on its lease (409, protocol 3).
    LeaseMismatch,
    /// Unexpected server-side failure (500).
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::StaleWindow => "stale_window",
            ErrorCode::WrongState => "wrong_state",
            ErrorCode::AlreadyClaimed => "already_claimed",
            ErrorCode::WindowBusy => "window_busy",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::BodyTooLarge => "body_too_large",
            ErrorCode::PinLost => "pin_lost",
            ErrorCode::LeaseMismatch => "lease_mismatch",
            ErrorCode::Internal => "internal",
        }
    }
}

/// JSON body of every error response.
///
/// ```
/// use maintenance_proto::{ErrorBody, ErrorCode};
/// let e = ErrorBody::new(ErrorCode::StaleWindow, "window w-1 is over");
/// assert_eq!(serde_json::to_value(&e).unwrap()["code"], "stale_window");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable code.
    pub code: ErrorCode,
    /// Human-readable explanation naming the fix.
    pub message: String,
}

impl ErrorBody {
    /// Builds an error body.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests;

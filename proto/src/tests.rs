//! Round-trip and shape-pinning tests for the wire contract.

use super::*;
use chrono::TimeZone;
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::json;

fn t(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, h, m, 0).unwrap()
}

fn roundtrip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
    let text = serde_json::to_string(value).unwrap();
    let back: T = serde_json::from_str(&text).unwrap();
    assert_eq!(&back, value, "round trip changed the value: {text}");
}

fn sample_report() -> BackupReport {
    BackupReport {
        backup: Some("20261126T030012Z-w1".into()),
        artifacts: vec![Artifact {
            engine: "sqlite".into(),
            path: "sqlite/tracker.db.zst".into(),
            size_bytes: 4096,
            sha256: "ab".repeat(32),
        }],
        durations_secs: BTreeMap::from([("snapshot".into(), 0.5), ("total".into(), 2.0)]),
        error: None,
        remote: None,
        participation: None,
    }
}

fn sample_status() -> StatusResponse {
    StatusResponse {
        protocol_version: PROTOCOL_VERSION,
        instance_id: "i-1".into(),
        state: State::Claimed,
        window_id: Some(WindowId::new("w-1")),
        version: 9,
        announce_policy: AnnouncePolicy::DeferWrites,
        current_window: Some(WindowSpan {
            start: t(3, 0),
            end: t(3, 5),
        }),
        next_window: None,
        lease_expires_at: Some(t(3, 1)),
        released_window: Some(ReleasedWindow {
            window_id: WindowId::new("w-0"),
            lease_expires_at: t(3, 1),
        }),
        last_outcomes: vec![WindowOutcome {
            window_id: WindowId::new("w-0"),
            outcome: Outcome::Completed,
            opened_at: t(2, 0),
            ended_at: t(2, 1),
            quiesced_secs: 1.5,
            reason: None,
            report: Some(sample_report()),
        }],
        pin: Some(PinStatus {
            window_id: WindowId::new("w-1"),
            mode: PinMode::WritesContinue,
            since: t(3, 0),
            ends_by: t(3, 5),
            kept_after_release: false,
        }),
    }
}

#[test]
fn every_body_round_trips() {
    roundtrip(&sample_status());
    roundtrip(&ClaimRequest {
        window_id: WindowId::new("w"),
        sidecar_id: "s".into(),
        protocol_version: Some(PROTOCOL_VERSION),
        lease_id: Some("l".into()),
    });
    roundtrip(&WindowRequest {
        window_id: WindowId::new("w"),
        lease_id: Some("l".into()),
    });
    roundtrip(&LeaseResponse {
        window_id: WindowId::new("w"),
        lease_ttl_secs: 30.0,
        lease_expires_at: t(3, 0),
        window_end: t(3, 5),
        pin: Some(PinOffer {
            mode: PinMode::WritesWait,
            ends_by: t(3, 5),
        }),
        lease_id: Some("l".into()),
    });
    roundtrip(&Ack {
        window_id: WindowId::new("w"),
        state: State::Resuming,
        pinned: true,
    });
    roundtrip(&ReleaseRequest {
        window_id: WindowId::new("w"),
        keep_pin: true,
        lease_id: Some("l".into()),
    });
    roundtrip(&UnpinResponse {
        window_id: WindowId::new("w"),
        held_secs: 2.5,
    });
    roundtrip(&CompleteRequest {
        window_id: WindowId::new("w"),
        report: sample_report(),
        lease_id: Some("l".into()),
    });
    roundtrip(&CompleteResponse {
        window_id: WindowId::new("w"),
        outcome: Outcome::Failed,
    });
    roundtrip(&OpenWindowRequest { duration_secs: 60 });
    roundtrip(&OpenWindowResponse {
        window_id: WindowId::new("w"),
        window: WindowSpan {
            start: t(1, 0),
            end: t(1, 1),
        },
    });
    roundtrip(&AbortRequest {
        window_id: None,
        reason: Some("operator".into()),
    });
    roundtrip(&HealthResponse {
        status: "ok".into(),
        state: State::Idle,
    });
    roundtrip(&ErrorBody::new(ErrorCode::AlreadyClaimed, "x"));
    roundtrip(&ReadinessDocument::not_ready("i", State::Idle, t(0, 0)));
}

#[test]
fn enums_use_their_documented_names() {
    let states = [
        (State::Idle, "idle"),
        (State::Draining, "draining"),
        (State::Quiescing, "quiescing"),
        (State::Ready, "ready"),
        (State::Claimed, "claimed"),
        (State::Resuming, "resuming"),
    ];
    for (state, name) in states {
        assert_eq!(serde_json::to_value(state).unwrap(), json!(name));
        assert_eq!(state.as_str(), name);
    }
    let outcomes = [
        (Outcome::Completed, "completed"),
        (Outcome::Failed, "failed"),
        (Outcome::Expired, "expired"),
        (Outcome::Aborted, "aborted"),
    ];
    for (outcome, name) in outcomes {
        assert_eq!(serde_json::to_value(outcome).unwrap(), json!(name));
        assert_eq!(outcome.as_str(), name);
    }
    for code in [
        ErrorCode::Unauthorized,
        ErrorCode::StaleWindow,
        ErrorCode::WrongState,
        ErrorCode::AlreadyClaimed,
        ErrorCode::WindowBusy,
        ErrorCode::InvalidRequest,
        ErrorCode::PinLost,
        ErrorCode::LeaseMismatch,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::BodyTooLarge,
        ErrorCode::Internal,
    ] {
        assert_eq!(serde_json::to_value(code).unwrap(), json!(code.as_str()));
    }
    assert_eq!(
        serde_json::to_value(AnnouncePolicy::DeferWrites).unwrap(),
        json!("defer-writes")
    );
    assert_eq!(
        serde_json::to_value(AnnouncePolicy::Reject).unwrap(),
        json!("reject")
    );
}

/// Pins the exact JSON shape of the status body: a renamed or dropped field
/// breaks every deployed sidecar, so it must break this test first.
#[test]
fn status_json_shape_is_pinned() {
    let value = serde_json::to_value(sample_status()).unwrap();
    let expected = json!({
        "protocol_version": 3,
        "instance_id": "i-1",
        "state": "claimed",
        "window_id": "w-1",
        "version": 9,
        "announce_policy": "defer-writes",
        "current_window": {"start": "2026-11-26T03:00:00Z", "end": "2026-11-26T03:05:00Z"},
        "next_window": null,
        "lease_expires_at": "2026-11-26T03:01:00Z",
        "released_window": {"window_id": "w-0", "lease_expires_at": "2026-11-26T03:01:00Z"},
        "pin": {"window_id": "w-1", "mode": "writes-continue", "since": "2026-11-26T03:00:00Z",
                "ends_by": "2026-11-26T03:05:00Z", "kept_after_release": false},
        "last_outcomes": [{
            "window_id": "w-0",
            "outcome": "completed",
            "opened_at": "2026-11-26T02:00:00Z",
            "ended_at": "2026-11-26T02:01:00Z",
            "quiesced_secs": 1.5,
            "reason": null,
            "report": {
                "backup": "20261126T030012Z-w1",
                "artifacts": [{
                    "engine": "sqlite",
                    "path": "sqlite/tracker.db.zst",
                    "size_bytes": 4096,
                    "sha256": "ab".repeat(32)
                }],
                "durations_secs": {"snapshot": 0.5, "total": 2.0},
                "error": null
            }
        }]
    });
    assert_eq!(value, expected);
}

#[test]
fn readiness_and_small_bodies_shapes_are_pinned() {
    let doc = ReadinessDocument {
        protocol_version: 1,
        instance_id: "i".into(),
        state: State::Ready,
        ready: true,
        window_id: Some(WindowId::new("w")),
        window_end: Some(t(3, 5)),
        written_at: t(3, 0),
        pid: 42,
    };
    assert_eq!(
        serde_json::to_value(&doc).unwrap(),
        json!({"protocol_version":1,"instance_id":"i","state":"ready","ready":true,
               "window_id":"w","window_end":"2026-11-26T03:05:00Z",
               "written_at":"2026-11-26T03:00:00Z","pid":42})
    );
    assert_eq!(
        serde_json::to_value(ClaimRequest {
            window_id: WindowId::new("w"),
            sidecar_id: "s".into(),
            protocol_version: None,
            lease_id: None,
        })
        .unwrap(),
        json!({"window_id":"w","sidecar_id":"s"})
    );
    assert_eq!(
        serde_json::to_value(ErrorBody::new(ErrorCode::Unauthorized, "m")).unwrap(),
        json!({"code":"unauthorized","message":"m"})
    );
    assert_eq!(
        serde_json::to_value(OpenWindowRequest { duration_secs: 5 }).unwrap(),
        json!({"duration_secs":5})
    );
}

#[test]
fn abort_body_fields_are_optional() {
    let body: AbortRequest = serde_json::from_str("{}").unwrap();
    assert_eq!(body, AbortRequest::default());
}

#[test]
fn unknown_state_is_rejected() {
    assert!(serde_json::from_str::<State>("\"sleeping\"").is_err());
}

proptest! {
    #[test]
    fn reports_round_trip(
        engine in "[a-z]{1,8}",
        size in any::<u64>(),
        secs in 0.0f64..1.0e6,
        error in proptest::option::of(".{0,40}"),
        id in "[ -~]{1,40}",
    ) {
        let report = BackupReport {
            backup: Some(id.clone()),
            artifacts: vec![Artifact { engine, path: "p".into(), size_bytes: size, sha256: "0".repeat(64) }],
            durations_secs: BTreeMap::from([("total".to_string(), secs)]),
            error,
            remote: None,
            participation: None,
        };
        let req = CompleteRequest { window_id: WindowId::new(id), report, lease_id: None };
        let text = serde_json::to_string(&req).unwrap();
        let back: CompleteRequest = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(back, req);
    }
}

/// Protocol 2 only adds optional fields: version-1 bodies still parse, and
/// a version-1 peer parsing version-2 bodies without pins sees no new keys.
#[test]
fn protocol_2_reads_version_1_bodies() {
    let release: ReleaseRequest = serde_json::from_value(json!({"window_id": "w"})).unwrap();
    assert!(!release.keep_pin);
    let lease: LeaseResponse = serde_json::from_value(json!({
        "window_id": "w", "lease_ttl_secs": 30.0,
        "lease_expires_at": "2026-01-01T03:00:00Z", "window_end": "2026-01-01T03:05:00Z"
    }))
    .unwrap();
    assert_eq!(lease.pin, None);
    let ack: Ack = serde_json::from_value(json!({"window_id": "w", "state": "resuming"})).unwrap();
    assert!(!ack.pinned);
    let unpinned_ack = serde_json::to_value(Ack {
        window_id: WindowId::new("w"),
        state: State::Resuming,
        pinned: false,
    })
    .unwrap();
    assert_eq!(unpinned_ack, json!({"window_id": "w", "state": "resuming"}));
    let mut status = serde_json::to_value(sample_status()).unwrap();
    status.as_object_mut().unwrap().remove("pin");
    let parsed: StatusResponse = serde_json::from_value(status).unwrap();
    assert_eq!(parsed.pin, None);
    assert_eq!(
        serde_json::to_value(ErrorCode::PinLost).unwrap(),
        json!("pin_lost")
    );
}

/// Protocol 3 adds the lease id: optional on the wire, so a version-2
/// coordinator's answers parse (no lease id) and bodies without one are
/// recognisable (the coordinator refuses them with a reason).
#[test]
fn protocol_3_lease_ids_are_optional_on_the_wire() {
    let claim: ClaimRequest =
        serde_json::from_value(json!({"window_id": "w", "sidecar_id": "s"})).unwrap();
    assert_eq!((claim.protocol_version, claim.lease_id), (None, None));
    let lease: LeaseResponse = serde_json::from_value(json!({
        "window_id": "w", "lease_ttl_secs": 30.0,
        "lease_expires_at": "2026-01-01T03:00:00Z", "window_end": "2026-01-01T03:05:00Z"
    }))
    .unwrap();
    assert_eq!(lease.lease_id, None);
    let hb = WindowRequest {
        window_id: WindowId::new("w"),
        lease_id: Some("abc".into()),
    };
    assert_eq!(
        serde_json::to_value(&hb).unwrap(),
        json!({"window_id": "w", "lease_id": "abc"})
    );
    assert_eq!(
        serde_json::to_value(ErrorCode::LeaseMismatch).unwrap(),
        json!("lease_mismatch")
    );
}

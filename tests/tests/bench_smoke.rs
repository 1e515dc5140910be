//! CI check that the benchmark binary still works: `bench smoke` runs every
//! benchmark on a 10 MiB database with one short round and must print a
//! RESULT line for each. The figures themselves are not asserted (this is
//! not a timed test); see BENCHMARKS.md for the real runs.

#[test]
fn bench_smoke_mode_runs_every_benchmark() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bench"))
        .arg("smoke")
        .output()
        .expect("run bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "bench smoke failed");
    for key in [
        "RESULT gate-alternating:",
        "RESULT gate-paired:",
        "RESULT rss:",
        "RESULT downtime:",
        "RESULT snapshot-sidecar:",
        "RESULT snapshot-baselines:",
        "RESULT claim-latency:",
        "RESULT idle-sidecar:",
    ] {
        assert!(stdout.contains(key), "missing {key}");
    }
    if std::env::var_os("TEST_POSTGRES_URL").is_some() {
        assert!(
            stdout.contains("RESULT postgres-early-"),
            "missing postgres"
        );
    }
    assert!(
        stdout.contains("defer-writes: refused 0 announces"),
        "defer-writes refused announces in smoke run"
    );
}

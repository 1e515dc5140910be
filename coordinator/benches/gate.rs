//! Cost of the announce gate on the hot path, in nanoseconds per announce,
//! beside an empty loop in the same run.
//!
//! `cargo bench -p maintenance-coordinator --bench gate` measures; under
//! `cargo test` (no `--bench` argument) it runs a few iterations only, to
//! check that it still works.

use std::hint::black_box;
use std::time::Instant;

use maintenance_coordinator::AnnounceGate;
use maintenance_e2e::median;

fn per_op_ns(iterations: u64, mut op: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..iterations {
        op();
    }
    start.elapsed().as_nanos() as f64 / iterations as f64
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let (rounds, iterations) = if measuring {
        (11, 20_000_000)
    } else {
        (3, 10_000)
    };
    let gate = AnnounceGate::always_open();
    let mut baseline = Vec::new();
    let mut admit = Vec::new();
    let mut write = Vec::new();
    for _ in 0..rounds {
        baseline.push(per_op_ns(iterations, || {
            black_box(&gate);
        }));
        admit.push(per_op_ns(iterations, || {
            let pass = black_box(&gate).admit_announce();
            assert!(black_box(&pass).is_ok());
        }));
        write.push(per_op_ns(iterations, || {
            let pass = black_box(&gate).begin_write();
            assert!(black_box(&pass).is_some());
        }));
    }
    let (b, a, w) = (median(&baseline), median(&admit), median(&write));
    println!("gate cost, median of {rounds} rounds x {iterations} iterations:");
    println!("  empty loop              {b:8.2} ns/op");
    println!(
        "  admit_announce + drop   {a:8.2} ns/op  (+{:.2} ns)",
        a - b
    );
    println!(
        "  begin_write + drop      {w:8.2} ns/op  (+{:.2} ns)",
        w - b
    );
    // Share of one announce's CPU time at a given request cost.
    for request_us in [10.0, 35.0] {
        let ratio = 1.0 / (1.0 + (a - b).max(0.0) / (request_us * 1000.0));
        println!("  throughput ratio if an announce costs {request_us:.0} us of CPU: {ratio:.5}");
    }
}

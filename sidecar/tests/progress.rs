//! Long copies log progress (bytes and MB/s) while they run. A stand-in
//! dump program (no server needed) streams for ~2.5 s.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;

#[test]
fn a_long_dump_logs_progress_with_rate() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump.sh");
    std::fs::write(
        &dump,
        "#!/bin/sh\nfor i in 1 2 3 4 5; do head -c 200000 /dev/zero | tr '\\0' 'x'; echo; sleep 0.5; done\necho '-- Dump completed on 2026-11-26'\n",
    )
    .unwrap();
    std::fs::set_permissions(&dump, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "backup_dir = \"{}\"\nprogress_secs = 1\n[mysql]\nenabled = true\ndatabase = \"tracker\"\ndump_command = \"{}\"\n",
            dir.path().join("b").display(),
            dump.display()
        ),
    )
    .unwrap();
    let out = run(sidecar(Some(&cfg)).arg("once"));
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    let progress_lines = log
        .lines()
        .filter(|l| l.contains("mysql dump:") && l.contains("so far") && l.contains("MB/s"))
        .count();
    assert!(progress_lines >= 1, "no progress lines: {log}");
    assert_eq!(published(&dir.path().join("b")).len(), 1);
}

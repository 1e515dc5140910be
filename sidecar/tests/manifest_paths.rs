//! A manifest's artifact paths must stay inside the backup folder. A
//! manifest pointing at `../x.zst` or an absolute path (a valid artifact
//! placed outside, with its right hash) once made `verify` print "backup
//! verified" for a folder holding no artifact and `restore` restore the
//! outside file. Both must now refuse, naming the bad path.

mod common;

use std::path::Path;

use common::*;

fn config(dir: &Path, db: &Path) -> std::path::PathBuf {
    let cfg = dir.join("sidecar.toml");
    std::fs::write(
        &cfg,
        format!(
            "backup_dir = \"{}\"\n[sqlite]\npath = \"{}\"\n",
            dir.join("backups").display(),
            db.display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn verify_and_restore_refuse_artifact_paths_outside_the_backup_folder() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("tracker.db");
    make_sqlite(&db, 20);
    let cfg = config(d, &db);
    assert!(run(sidecar(Some(&cfg)).arg("once")).status.success());
    let backup = published(&d.join("backups")).remove(0);
    let manifest_path = backup.join("manifest.json");
    let original = std::fs::read_to_string(&manifest_path).unwrap();
    // The real artifact moves out of the folder, to where the paths point.
    let outside = d.join("outside.zst");
    std::fs::rename(backup.join("sqlite-tracker.db.zst"), &outside).unwrap();

    let absolute = outside.display().to_string();
    for bad in [
        "../../outside.zst",
        absolute.as_str(),
        "sub/x.zst",
        "",
        "..",
    ] {
        let mut m: serde_json::Value = serde_json::from_str(&original).unwrap();
        m["artifacts"][0]["path"] = bad.into();
        std::fs::write(&manifest_path, m.to_string()).unwrap();

        let out = run(sidecar(Some(&cfg)).arg("verify").arg(&backup));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "verify accepted {bad:?}: {text}"
        );
        assert!(!text.contains("backup verified"), "{bad:?}: {text}");
        assert!(
            text.contains("not a plain file name") && text.contains(&format!("{bad:?}")),
            "verify should name the bad path {bad:?}: {text}"
        );

        let target = d.join("restored.db");
        let out = run(sidecar(Some(&cfg))
            .args(["restore", "--to"])
            .arg(&target)
            .arg(&backup));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "restore accepted {bad:?}");
        assert!(
            stderr.contains("not a plain file name"),
            "{bad:?}: {stderr}"
        );
        assert!(!target.exists(), "restored from {bad:?}");
    }
}

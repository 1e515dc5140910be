//! A manifest's artifact paths must stay inside the backup folder. A
//! manifest pointing at `../x.zst` or an absolute path (a valid artifact
//! placed outside, with its right hash) once made `verify` print "backup
//! verified" for a folder holding no artifact and `restore` restore the
//! outside file. Both must now refuse, naming the bad path. The same holds
//! for a manifest read from a remote: `restore --remote` once downloaded an
//! artifact named `../../x` outside the folder it fetched into.

mod common;

use std::path::Path;

use common::*;

fn config(dir: &Path, db: &Path) -> std::path::PathBuf {
    config_with(dir, db, "")
}

fn config_with(dir: &Path, db: &Path, extra: &str) -> std::path::PathBuf {
    let cfg = dir.join("sidecar.toml");
    std::fs::write(
        &cfg,
        format!(
            "backup_dir = \"{}\"\n{extra}[sqlite]\npath = \"{}\"\n",
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

#[test]
fn restore_from_a_remote_refuses_artifact_paths_outside_the_fetch_folder() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("tracker.db");
    make_sqlite(&db, 20);
    let remote_dir = d.join("remote");
    let url = format!("file://{}", remote_dir.display());
    let cfg = config_with(d, &db, &format!("[remote]\nurl = \"{url}\"\n"));
    assert!(run(sidecar(Some(&cfg)).arg("once")).status.success());
    let backups = d.join("backups");
    let name = published(&backups)
        .remove(0)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let remote_manifest = remote_dir.join(&name).join("manifest.json");
    let original = std::fs::read_to_string(&remote_manifest).unwrap();
    let before = entries(&backups);

    // The remote holds an object under each bad name, with the hash its
    // manifest states, so only the path check can stop the download.
    let config = maintenance_sidecar::config::Config::load(Some(&cfg)).unwrap();
    let remote = maintenance_sidecar::remote::Remote::required(&config.remote).unwrap();
    let data = b"not part of any backup".to_vec();
    let sha = maintenance_sidecar::hashing::sha256_reader(&data[..])
        .unwrap()
        .1;
    let rt = tokio::runtime::Runtime::new().unwrap();
    for bad in ["../x", "../../x", "../../../x"] {
        rt.block_on(maintenance_sidecar::remote::ops::put_bytes(
            &remote,
            &name,
            bad,
            data.clone(),
        ))
        .unwrap();
        let mut m: serde_json::Value = serde_json::from_str(&original).unwrap();
        m["artifacts"][0]["path"] = bad.into();
        m["artifacts"][0]["size_bytes"] = data.len().into();
        m["artifacts"][0]["sha256"] = sha.clone().into();
        std::fs::write(&remote_manifest, m.to_string()).unwrap();

        let target = d.join("restored.db");
        let out = run(sidecar(Some(&cfg))
            .args(["restore", "--remote", &name, "--to"])
            .arg(&target));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "restore accepted {bad:?}");
        assert!(
            stderr.contains("not a plain file name") && stderr.contains(&format!("{bad:?}")),
            "restore --remote should name the bad path {bad:?}: {stderr}"
        );
        assert!(!target.exists(), "restored from {bad:?}");
        for outside in [d.join("x"), backups.join("x")] {
            assert!(!outside.exists(), "{bad:?} wrote {}", outside.display());
        }
        assert_eq!(entries(&backups), before, "{bad:?} left a file");
    }
}

fn entries(dir: &Path) -> Vec<std::ffi::OsString> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    names
}

//! A manifest's artifact paths must stay inside the backup folder. A
//! manifest pointing at `../x.zst` or an absolute path (a valid artifact
//! placed outside, with its right hash) once made `verify` print "backup
//! verified" for a folder holding no artifact and `restore` restore the
//! outside file. Both must now refuse, naming the bad path. The same holds
//! for a manifest read from a remote: `restore --remote` once downloaded an
//! artifact named `../../x` outside the folder it fetched into, and a remote
//! manifest naming the backup `../../evil` made it fetch into that folder.
//! An artifact replaced by a symbolic link is not followed (verify once
//! printed the size of the file it pointed at), and a FIFO in its place
//! does not hang the command. The manifest itself is read the same way,
//! with a size bound, locally and from a remote.

mod common;

use common::*;

/// A small SQLite database in `d` backed up once: the config and the
/// published backup folder.
fn one_backup(d: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let db = d.join("tracker.db");
    make_sqlite(&db, 20);
    let cfg = sqlite_config(d, &db, "");
    assert!(run(sidecar(Some(&cfg)).arg("once")).status.success());
    let backup = published(&d.join("backups")).remove(0);
    (cfg, backup)
}

#[test]
fn verify_and_restore_refuse_artifact_paths_outside_the_backup_folder() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cfg, backup) = one_backup(d);
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
        let text = text(&out);
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
fn verify_and_restore_refuse_an_artifact_replaced_by_a_link_or_a_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cfg, backup) = one_backup(d);
    let artifact = backup.join("sqlite-tracker.db.zst");
    // The link points at the real artifact (moved out) first, then at an
    // unrelated file whose size must not show.
    let outside = d.join("outside.zst");
    std::fs::rename(&artifact, &outside).unwrap();
    let secret = d.join("secret");
    std::fs::write(&secret, vec![b'x'; 4321]).unwrap();
    let target = d.join("restored.db");
    for pointed in [&outside, &secret] {
        let _ = std::fs::remove_file(&artifact);
        std::os::unix::fs::symlink(pointed, &artifact).unwrap();
        let out = run(sidecar(Some(&cfg)).arg("verify").arg(&backup));
        let log = text(&out);
        assert_eq!(
            out.status.code(),
            Some(1),
            "verify followed the link: {log}"
        );
        assert!(log.contains("symbolic link"), "{log}");
        assert!(!log.contains("4321") && !log.contains("sha256 ok"), "{log}");

        let out = run(sidecar(Some(&cfg))
            .args(["restore", "--to"])
            .arg(&target)
            .arg(&backup));
        let log = text(&out);
        assert_eq!(
            out.status.code(),
            Some(1),
            "restore followed the link: {log}"
        );
        assert!(log.contains("symbolic link"), "{log}");
        assert!(!target.exists(), "restored through a link");
    }

    // A FIFO: refused at once (`output` would wait forever otherwise).
    std::fs::remove_file(&artifact).unwrap();
    let c = std::ffi::CString::new(artifact.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for args in [
        &["verify"][..],
        &["restore", "--to", target.to_str().unwrap()],
    ] {
        let (out, _) = run_within(
            sidecar(Some(&cfg)).args(args).arg(&backup),
            std::time::Duration::from_secs(10),
        );
        let log = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {log}");
        assert!(log.contains("a FIFO"), "{args:?}: {log}");
    }
    assert!(!target.exists());
}

#[test]
fn a_manifest_replaced_by_a_link_a_fifo_or_a_huge_file_is_refused() {
    let r = RemoteBackup::new();
    let d = r.dir.path();
    let backup = d.join("backups").join(&r.name);
    let manifest = backup.join("manifest.json");
    let original = std::fs::read(&manifest).unwrap();
    // A valid manifest elsewhere, and one grown past the limit with
    // whitespace (still valid JSON, so only the size bound refuses it).
    let outside = d.join("outside.json");
    std::fs::write(&outside, &original).unwrap();
    let mut huge = original.clone();
    huge.resize(original.len() + (2 << 20), b' ');
    let limit = std::time::Duration::from_secs(10);
    for problem in [
        "a symbolic link",
        "a FIFO",
        "more than the 1048576 bytes allowed",
    ] {
        std::fs::remove_file(&manifest).unwrap();
        match problem {
            "a symbolic link" => std::os::unix::fs::symlink(&outside, &manifest).unwrap(),
            "a FIFO" => {
                let c = std::ffi::CString::new(manifest.to_str().unwrap()).unwrap();
                assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            }
            _ => std::fs::write(&manifest, &huge).unwrap(),
        }
        // `list` reads every manifest: the backup shows as invalid, and a
        // FIFO does not hang it.
        let (out, _) = run_within(sidecar(Some(&r.cfg)).arg("list"), limit);
        let log = text(&out);
        let line = log.lines().find(|l| l.starts_with(&r.name)).unwrap();
        assert!(
            line.contains("invalid") && line.contains(problem),
            "{problem}: {log}"
        );
        assert!(log.contains("take the backup from another copy"), "{log}");
        for args in [&["verify"][..], &["push"]] {
            let (out, _) = run_within(sidecar(Some(&r.cfg)).args(args).arg(&r.name), limit);
            let log = text(&out);
            assert_eq!(out.status.code(), Some(1), "{args:?} {problem}: {log}");
            assert!(log.contains(problem), "{args:?} {problem}: {log}");
            assert!(!log.contains("backup verified"), "{log}");
        }
    }
    std::fs::remove_file(&manifest).unwrap();
    std::fs::write(&manifest, &original).unwrap();
    assert!(run(sidecar(Some(&r.cfg)).arg("verify").arg(&r.name))
        .status
        .success());

    // A remote manifest past the limit is not read either.
    r.put(&r.name, "manifest.json", &huge);
    let out = run(sidecar(Some(&r.cfg)).args(["list", "--remote"]));
    let log = text(&out);
    assert!(
        log.contains("more than the 1048576 bytes a manifest may have"),
        "{log}"
    );
}

/// A SQLite backup made with a `file://` remote, as the remote holds it.
struct RemoteBackup {
    dir: tempfile::TempDir,
    cfg: std::path::PathBuf,
    remote: maintenance_sidecar::remote::Remote,
    rt: tokio::runtime::Runtime,
    /// The backup's name (its folder, locally and on the remote).
    name: String,
    /// Its manifest as uploaded.
    manifest: serde_json::Value,
    /// The local backup folder's entries.
    before: Vec<String>,
}

impl RemoteBackup {
    fn new() -> RemoteBackup {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let db = d.join("tracker.db");
        make_sqlite(&db, 20);
        let url = format!("file://{}", d.join("remote").display());
        let cfg = sqlite_config(d, &db, &format!("[remote]\nurl = \"{url}\"\n"));
        assert!(run(sidecar(Some(&cfg)).arg("once")).status.success());
        let backups = d.join("backups");
        let name = published(&backups)
            .remove(0)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let config = maintenance_sidecar::config::Config::load(Some(&cfg)).unwrap();
        let remote = maintenance_sidecar::remote::Remote::required(&config.remote).unwrap();
        let text = std::fs::read_to_string(d.join("remote").join(&name).join("manifest.json"));
        RemoteBackup {
            manifest: serde_json::from_str(&text.unwrap()).unwrap(),
            before: names_in(&backups),
            dir,
            cfg,
            remote,
            rt: tokio::runtime::Runtime::new().unwrap(),
            name,
        }
    }

    /// Stores `data` on the remote as `file` of the backup `backup`.
    fn put(&self, backup: &str, file: &str, data: &[u8]) {
        self.rt
            .block_on(maintenance_sidecar::remote::ops::put_bytes(
                &self.remote,
                backup,
                file,
                data.to_vec(),
            ))
            .unwrap();
    }

    /// `restore --remote ARG` into a fresh target: must fail without
    /// restoring or writing anything outside the fetch folder (none of
    /// `outside`, nothing new in the backup folder). Returns stderr.
    fn refused(&self, arg: &str, outside: &[std::path::PathBuf]) -> String {
        let d = self.dir.path();
        let target = d.join("restored.db");
        let out = run(sidecar(Some(&self.cfg))
            .args(["restore", "--remote", arg, "--to"])
            .arg(&target));
        assert_eq!(
            out.status.code(),
            Some(1),
            "restore --remote {arg} accepted"
        );
        assert!(!target.exists(), "restore --remote {arg} restored");
        for p in outside {
            assert!(!p.exists(), "restore --remote {arg} wrote {}", p.display());
        }
        assert_eq!(names_in(&d.join("backups")), self.before, "left a file");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

#[test]
fn restore_from_a_remote_refuses_artifact_paths_outside_the_fetch_folder() {
    let r = RemoteBackup::new();
    let d = r.dir.path();
    // The remote holds an object under each bad name, with the hash its
    // manifest states, so only the path check can stop the download.
    let data = b"not part of any backup";
    let sha = maintenance_sidecar::base::hashing::sha256_reader(&data[..])
        .unwrap()
        .1;
    for bad in ["../x", "../../x", "../../../x"] {
        r.put(&r.name, bad, data);
        let mut m = r.manifest.clone();
        m["artifacts"][0]["path"] = bad.into();
        m["artifacts"][0]["size_bytes"] = data.len().into();
        m["artifacts"][0]["sha256"] = sha.clone().into();
        r.put(&r.name, "manifest.json", m.to_string().as_bytes());

        let stderr = r.refused(&r.name, &[d.join("x"), d.join("backups").join("x")]);
        assert!(
            stderr.contains("not a plain file name") && stderr.contains(&format!("{bad:?}")),
            "restore --remote should name the bad path {bad:?}: {stderr}"
        );
    }
}

#[test]
fn restore_from_a_remote_refuses_a_manifest_naming_another_folder() {
    let r = RemoteBackup::new();
    let d = r.dir.path();
    // The fetch folder is named after the manifest's backup name: a remote
    // manifest naming ../../evil, with the artifacts stored where a fetch
    // of that name reads them, must not create d/evil.
    let artifact = r.manifest["artifacts"][0]["path"].as_str().unwrap();
    let data = std::fs::read(d.join("remote").join(&r.name).join(artifact)).unwrap();
    for bad in ["../evil", "../../evil", "other"] {
        r.put(bad, artifact, &data);
        let mut m = r.manifest.clone();
        m["name"] = bad.into();
        r.put(&r.name, "manifest.json", m.to_string().as_bytes());

        let outside = [d.join("evil"), d.join("backups").join("evil")];
        let stderr = r.refused(&r.name, &outside);
        assert!(
            stderr.contains("names the backup") && stderr.contains(&format!("{bad:?}")),
            "restore --remote should name the wrong backup name {bad:?}: {stderr}"
        );
        r.refused("latest", &outside);
    }
}

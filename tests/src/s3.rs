//! A real S3-compatible server on loopback for the off-site tests and the
//! upload benchmark: moto's server mode (PyPI `moto[server]`, installed by
//! `scripts/install-s3-test-server.sh`, which `.ci/run` calls), started by
//! `scripts/s3-test-server.py` with authentication on and one bucket.
//!
//! The Python interpreter is `MOTO_PYTHON`, else the venv the install
//! script creates. Without it a test is skipped with a message, except
//! under `CI`, where it fails.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The venv `scripts/install-s3-test-server.sh` creates.
pub const DEFAULT_VENV: &str = "/opt/maintenance-test-moto";

/// A running server; killed (and its objects gone) on drop.
pub struct S3Server {
    child: Option<Child>,
    port: u16,
    bucket: String,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// The only access key the server accepts.
    pub access_key_id: String,
    /// Its secret.
    pub secret_access_key: String,
    log: PathBuf,
}

fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MOTO_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let p = Path::new(DEFAULT_VENV).join("bin/python");
    p.exists().then_some(p)
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/s3-test-server.py")
}

impl S3Server {
    /// Starts a server with `bucket` on a free port, logging to
    /// `log_dir/s3-server.log`. `None` (after a message) when moto is not
    /// installed outside CI.
    pub fn start(log_dir: &Path, bucket: &str) -> Option<S3Server> {
        let Some(python) = python() else {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "moto is not installed in CI (scripts/install-s3-test-server.sh installs it)"
                );
            }
            eprintln!("SKIPPED: no S3 test server (run scripts/install-s3-test-server.sh or set MOTO_PYTHON)");
            return None;
        };
        Some(Self::start_on(
            &python,
            log_dir,
            bucket,
            crate::free_port(),
            None,
        ))
    }

    fn start_on(
        python: &Path,
        log_dir: &Path,
        bucket: &str,
        port: u16,
        open_keys: Option<(&str, &str)>,
    ) -> S3Server {
        let log = log_dir.join("s3-server.log");
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut cmd = Command::new(python);
        cmd.arg(script()).arg(port.to_string()).arg(bucket);
        if let Some((id, secret)) = open_keys {
            cmd.arg("--open")
                .env("S3_TEST_KEY_ID", id)
                .env("S3_TEST_SECRET", secret);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .expect("start scripts/s3-test-server.py");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(l) if !l.trim().is_empty() => l,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the S3 test server did not start; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        let v: serde_json::Value = serde_json::from_str(&line).expect("server JSON line");
        let s = |k: &str| v[k].as_str().unwrap().to_owned();
        S3Server {
            child: Some(child),
            port,
            bucket: bucket.to_owned(),
            endpoint: s("endpoint"),
            access_key_id: s("access_key_id"),
            secret_access_key: s("secret_access_key"),
            log,
        }
    }

    /// The bucket created at start.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The sidecar's environment for this server: `BACKUP_REMOTE`
    /// (`s3://<bucket>/<prefix>`), endpoint, keys, plain HTTP allowed.
    pub fn sidecar_env(&self, prefix: &str) -> Vec<(String, String)> {
        vec![
            (
                "BACKUP_REMOTE".into(),
                format!("s3://{}/{prefix}", self.bucket),
            ),
            ("AWS_ENDPOINT_URL".into(), self.endpoint.clone()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID".into(), self.access_key_id.clone()),
            (
                "AWS_SECRET_ACCESS_KEY".into(),
                self.secret_access_key.clone(),
            ),
            ("BACKUP_REMOTE_ALLOW_HTTP".into(), "true".into()),
        ]
    }

    /// kill -9: the server and everything it stored are gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP: the server keeps its port (connections are accepted by the
    /// kernel) but answers nothing, like a frozen endpoint.
    pub fn freeze(&self) {
        if let Some(c) = &self.child {
            // SAFETY: a signal to the child this struct started.
            unsafe { libc::kill(c.id() as i32, libc::SIGSTOP) };
        }
    }

    /// SIGCONT after [`S3Server::freeze`].
    pub fn thaw(&self) {
        if let Some(c) = &self.child {
            // SAFETY: as in `freeze`.
            unsafe { libc::kill(c.id() as i32, libc::SIGCONT) };
        }
    }

    /// Starts a fresh, empty server on the same port with the same bucket,
    /// accepting any key (a client keeps the keys it had).
    pub fn restart(&mut self) {
        self.kill();
        let python = python().expect("moto installed");
        let log_dir = self.log.parent().unwrap().to_owned();
        let (id, secret) = (self.access_key_id.clone(), self.secret_access_key.clone());
        *self = Self::start_on(
            &python,
            &log_dir,
            &self.bucket.clone(),
            self.port,
            Some((&id, &secret)),
        );
    }

    /// The server's log (one line per request).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}

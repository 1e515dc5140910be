//! One restore per database at a time: a session lock held in the database
//! server for the restore's whole duration.
//!
//! A restore refuses a database that already has tables (without
//! `--force`), but two restores started together both saw it empty and both
//! imported, the later one into the earlier one's tables. So a MySQL or
//! PostgreSQL restore first takes a lock named after its target database,
//! without waiting, and holds it until its import has ended; the table
//! count and the import run under it. A second restore into the same
//! database is refused at once with a message naming the lock.
//!
//! - MySQL/MariaDB: `GET_LOCK(name, 0)` on a `mysql` client session of the
//!   lock's own (`--unbuffered`, stdin kept open). Closing its stdin ends
//!   the session, which frees the lock.
//! - PostgreSQL: `pg_try_advisory_lock(key)` on a connection of the lock's
//!   own to the `postgres` database (advisory locks belong to the database
//!   the session is connected to, and the target may not exist yet), kept
//!   open on a thread of its own until the guard is dropped.
//!
//! Why the server and not a lock file, as `base/restore_lock.rs` does for
//! the SQLite and files engines: a database target belongs to its server,
//! and restores into it may start from other hosts, containers or backup
//! folders that share no file; only the server sees them all. A session
//! lock also ends with its session, so a killed restore (its client process
//! or its connection gone) leaves nothing to clean up and never refuses the
//! next restore. What it does not guard: writers other than restores (the
//! tracker, a hand-run import) take no such lock.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;

/// How long taking the lock (connecting included) may take.
const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the MySQL lock's client may take to end once its stdin closed.
const END_TIMEOUT: Duration = Duration::from_secs(10);

/// A held restore lock of one database; released on drop.
pub struct DbRestoreLock {
    holder: Holder,
}

enum Holder {
    /// The `mysql` client whose session holds `GET_LOCK`.
    Mysql(Child),
    /// The thread whose connection holds the advisory lock, and the signal
    /// that lets it unlock and close.
    Postgres {
        release: Option<tokio::sync::oneshot::Sender<()>>,
        thread: Option<JoinHandle<()>>,
    },
}

/// The `GET_LOCK` name of a restore into `db`: at most 64 characters (the
/// server's limit), so a long database name is replaced by its digest.
pub fn mysql_lock_name(db: &str) -> String {
    const PREFIX: &str = "maintenance-sidecar restore ";
    if PREFIX.len() + db.len() <= 64 {
        format!("{PREFIX}{db}")
    } else {
        let digest = hex::encode(Sha256::digest(db.as_bytes()));
        format!("{PREFIX}{}", &digest[..64 - PREFIX.len()])
    }
}

/// The advisory lock key of a restore into `db`: the first 8 bytes of a
/// digest of the name, so every sidecar derives the same key.
pub fn postgres_lock_key(db: &str) -> i64 {
    let digest = Sha256::digest(format!("maintenance-sidecar restore {db}").as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// The refusal when another restore holds the lock of `db` on `server`.
fn refusal(db: &str, server: &str, holds: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "another restore into database {db} on {server} is running (it holds {holds}); \
         wait for it to end, or restore into another database"
    )
}

/// Takes the restore lock of MySQL database `db` on `server` (`host:port`,
/// for messages) with `client`, the `mysql` client command already carrying
/// the login; fails at once when another restore holds it.
pub fn mysql(mut client: Command, db: &str, server: &str) -> anyhow::Result<DbRestoreLock> {
    let name = mysql_lock_name(db);
    ensure!(
        !name.contains(['\'', '\\']),
        "database name {db:?} cannot name a lock (no quotes or backslashes)"
    );
    let cannot = || format!("cannot take the restore lock of database {db} on {server}");
    let mut child = client
        .args(["--batch", "--skip-column-names", "--unbuffered"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("{}: cannot start the mysql client", cannot()))?;
    let asked = child
        .stdin
        .as_mut()
        .expect("piped stdin")
        .write_all(format!("SELECT GET_LOCK('{name}', 0);\n").as_bytes());
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line).map(|_| line);
        let _ = tx.send(read);
    });
    let answer = rx.recv_timeout(LOCK_TIMEOUT);
    let stderr = |child: &mut Child| {
        let _ = child.kill();
        let _ = child.wait();
        let mut text = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut text);
        }
        text.trim().to_owned()
    };
    let answer = match (asked, answer) {
        (Ok(()), Ok(Ok(line))) if !line.is_empty() => line.trim().to_owned(),
        (_, Err(_)) => {
            let _ = stderr(&mut child);
            bail!("{}: no answer within {LOCK_TIMEOUT:?}", cannot());
        }
        _ => {
            let text = stderr(&mut child);
            bail!("{}: the mysql client failed: {text}", cannot());
        }
    };
    // From here on, dropping the guard ends the client (and a lock it
    // holds).
    let lock = DbRestoreLock {
        holder: Holder::Mysql(child),
    };
    match answer.as_str() {
        "1" => Ok(lock),
        "0" => Err(refusal(
            db,
            server,
            &format!("the MySQL lock '{name}'; SELECT IS_USED_LOCK('{name}') names its connection"),
        )),
        other => bail!("{}: GET_LOCK answered {other:?}", cannot()),
    }
}

/// Takes the restore lock of PostgreSQL database `db` on `server`
/// (`host:port`, for messages) over a connection made with `admin` (the
/// `postgres` database); fails at once when another restore holds it.
pub fn postgres(admin: PgConnectOptions, db: &str, server: &str) -> anyhow::Result<DbRestoreLock> {
    let key = postgres_lock_key(db);
    let cannot = format!("cannot take the restore lock of database {db} on {server}");
    let (got_tx, got_rx) = std::sync::mpsc::channel::<Result<bool, sqlx::Error>>();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = got_tx.send(Err(sqlx::Error::Io(e)));
                return;
            }
        };
        rt.block_on(async move {
            let mut conn = match PgConnection::connect_with(&admin).await {
                Ok(c) => c,
                Err(e) => {
                    let _ = got_tx.send(Err(e));
                    return;
                }
            };
            let got = sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
                .bind(key)
                .fetch_one(&mut conn)
                .await;
            let held = matches!(got, Ok(true));
            let _ = got_tx.send(got);
            if held {
                let _ = released.await;
                let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(key)
                    .execute(&mut conn)
                    .await;
            }
            let _ = conn.close().await;
        });
    });
    let lock = DbRestoreLock {
        holder: Holder::Postgres {
            release: Some(release),
            thread: Some(thread),
        },
    };
    match got_rx.recv_timeout(LOCK_TIMEOUT) {
        Ok(Ok(true)) => Ok(lock),
        Ok(Ok(false)) => Err(refusal(
            db,
            server,
            &format!(
                "PostgreSQL advisory lock {key} in database postgres; \
                 pg_locks lists it with locktype 'advisory'"
            ),
        )),
        Ok(Err(e)) => bail!("{cannot}: {e}"),
        Err(_) => bail!("{cannot}: no answer within {LOCK_TIMEOUT:?}"),
    }
}

impl Drop for DbRestoreLock {
    fn drop(&mut self) {
        match &mut self.holder {
            Holder::Mysql(child) => {
                // EOF on stdin ends the client's session and so the lock.
                drop(child.stdin.take());
                let deadline = Instant::now() + END_TIMEOUT;
                while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
            Holder::Postgres { release, thread } => {
                if let Some(tx) = release.take() {
                    let _ = tx.send(());
                }
                if let Some(t) = thread.take() {
                    let _ = t.join();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_fit_the_server_and_differ_per_database() {
        assert_eq!(
            mysql_lock_name("tracker"),
            "maintenance-sidecar restore tracker"
        );
        let long = "d".repeat(64);
        let name = mysql_lock_name(&long);
        assert_eq!(name.len(), 64, "{name}");
        assert_ne!(name, mysql_lock_name(&"e".repeat(64)));
        assert_ne!(postgres_lock_key("tracker"), postgres_lock_key("tracker2"));
        assert_eq!(postgres_lock_key("tracker"), postgres_lock_key("tracker"));
    }
}

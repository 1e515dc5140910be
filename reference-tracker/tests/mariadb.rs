//! The MySQL/MariaDB driver against a real server (`TEST_MARIADB_URL`):
//! counts written behind the request path, deferred across a
//! `defer-writes` window, persisted after resume, and loaded back after a
//! restart. The password comes from `TRACKER_DATABASE_PASSWORD`, not the
//! URL in the config file.

mod common;

use std::time::{Duration, Instant};

use common::*;
use maintenance_proto::State;
use reference_tracker::bencode::Value;
use sqlx::mysql::MySqlPoolOptions;
use sqlx::{MySqlPool, Row};

/// The server URL, or `None` (skip) outside CI when it is not set.
fn server_url() -> Option<String> {
    match std::env::var("TEST_MARIADB_URL") {
        Ok(url) if !url.is_empty() => Some(url.trim_end_matches('/').to_owned()),
        _ if std::env::var_os("CI").is_some() => {
            panic!("TEST_MARIADB_URL is not set, and CI requires the MariaDB tests")
        }
        _ => {
            eprintln!("skipping: TEST_MARIADB_URL is not set");
            None
        }
    }
}

/// `mysql://user:pass@host:port` split into the part before the password,
/// the password, and the part after it.
fn split_password(url: &str) -> (String, String, String) {
    let scheme_end = url.find("://").unwrap() + 3;
    let at = url
        .rfind('@')
        .expect("TEST_MARIADB_URL needs user:password@");
    let creds = &url[scheme_end..at];
    let (user, pass) = creds.split_once(':').unwrap_or((creds, ""));
    (
        format!("{}{user}", &url[..scheme_end]),
        pass.to_owned(),
        url[at..].to_owned(),
    )
}

/// The SQLite test config of `dir` (`defer-writes`) turned into a MySQL
/// one on the database at `url`.
fn mysql_config(dir: &std::path::Path, url: &str) -> String {
    sqlite_config(dir, "defer-writes")
        .replace("driver = \"sqlite3\"", "driver = \"mysql\"")
        .replace(
            &format!("path = \"{}\"", dir.join("tracker.db").display()),
            &format!("path = \"{url}\""),
        )
}

async fn completed(pool: &MySqlPool, hash: &[u8; 20]) -> Option<i64> {
    sqlx::query("SELECT completed FROM torrents WHERE info_hash = ?")
        .bind(hex(hash))
        .fetch_optional(pool)
        .await
        .unwrap()
        .map(|r| r.get::<i64, _>(0))
}

async fn wait_completed(pool: &MySqlPool, hash: &[u8; 20], want: i64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = completed(pool, hash).await;
        if got == Some(want) {
            return;
        }
        assert!(Instant::now() < deadline, "db holds {got:?}, want {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn complete_many(t: &Tracker, hash: &[u8; 20], first: u32, n: u32) {
    for i in first..first + n {
        let v = t
            .announce(hash, &info_hash(9, i), 20_000, "&left=0&event=completed")
            .await;
        assert!(v.get("failure reason").is_none(), "{v:?}");
    }
}

#[tokio::test]
async fn mariadb_counts_survive_a_defer_writes_window_and_a_restart() {
    let Some(server) = server_url() else { return };
    let (before_pw, password, after_pw) = split_password(&server);
    let db_name = format!(
        "rt_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let admin = MySqlPoolOptions::new()
        .max_connections(1)
        .connect(&server)
        .await
        .expect("connect to TEST_MARIADB_URL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}")))
        .execute(&admin)
        .await
        .unwrap();
    let pool = MySqlPoolOptions::new()
        .max_connections(1)
        .connect(&format!("{server}/{db_name}"))
        .await
        .unwrap();

    // The file carries a wrong password; the environment supplies the real one.
    let dir = tempfile::tempdir().unwrap();
    let config = mysql_config(
        dir.path(),
        &format!("{before_pw}:not-the-password{after_pw}/{db_name}"),
    )
    .replace(
        "flush_interval = \"100ms\"",
        &format!(
            "flush_interval = \"100ms\"\ncompletion_journal = \"{}\"",
            dir.path().join("completions.journal").display()
        ),
    );
    assert!(config.contains("not-the-password"), "{config}");
    let env = [("TRACKER_DATABASE_PASSWORD", password.as_str())];
    let hash = info_hash(1, 90);

    let t = start_with_env(dir.path(), &config, &env);
    complete_many(&t, &hash, 0, 15).await;
    wait_completed(&pool, &hash, 15).await;

    t.open_window(30).await;
    t.wait_state(State::Ready, Duration::from_secs(15)).await;
    complete_many(&t, &hash, 15, 25).await;
    assert_eq!(t.scraped_downloaded(&hash).await, 40);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        completed(&pool, &hash).await,
        Some(15),
        "written during the window"
    );

    t.abort().await;
    t.wait_state(State::Idle, Duration::from_secs(15)).await;
    wait_completed(&pool, &hash, 40).await;
    t.stop();

    let t = start_with_env(dir.path(), &config, &env);
    assert_eq!(t.scraped_downloaded(&hash).await, 40);
    let v = t
        .announce(&hash, &info_hash(9, 500), 20_000, "&left=0&event=completed")
        .await;
    assert_eq!(v.get("complete").and_then(Value::as_int), Some(1));
    wait_completed(&pool, &hash, 41).await;

    // SIGKILL during a deferred window: the journal brings the counts back.
    t.open_window(30).await;
    t.wait_state(State::Ready, Duration::from_secs(15)).await;
    complete_many(&t, &hash, 41, 5).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    drop(t);
    assert_eq!(completed(&pool, &hash).await, Some(41));
    let t = start_with_env(dir.path(), &config, &env);
    assert_eq!(t.scraped_downloaded(&hash).await, 46);
    t.stop();
    assert_eq!(completed(&pool, &hash).await, Some(46));
    let t = start_with_env(dir.path(), &config, &env);
    assert_eq!(t.scraped_downloaded(&hash).await, 46);
    t.stop();

    let rows: i64 = sqlx::query("SELECT COUNT(*) FROM torrents")
        .fetch_one(&pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
    pool.close().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {db_name}")))
        .execute(&admin)
        .await
        .unwrap();
}

/// Two instances on one host with the default configuration (a MySQL store
/// and no `completion_journal`, started from one folder): the second
/// refuses to start, naming the journal's absolute path and the fix; the
/// first logged that path and keeps serving.
#[tokio::test]
async fn a_second_tracker_on_the_same_journal_refuses_to_start() {
    let Some(server) = server_url() else { return };
    let (before_pw, password, after_pw) = split_password(&server);
    let db_name = format!("rt_lock_{}", std::process::id());
    let admin = MySqlPoolOptions::new()
        .max_connections(1)
        .connect(&server)
        .await
        .expect("connect to TEST_MARIADB_URL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE IF NOT EXISTS {db_name}"
    )))
    .execute(&admin)
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = mysql_config(dir.path(), &format!("{before_pw}{after_pw}/{db_name}"));
    assert!(!config.contains("completion_journal"), "{config}");
    let env = [("TRACKER_DATABASE_PASSWORD", password.as_str())];
    let first = start_with_env(dir.path(), &config, &env);
    let journal = dir
        .path()
        .canonicalize()
        .unwrap()
        .join("storage/tracker/lib/database/completions.journal");
    assert!(journal.exists(), "{}", journal.display());
    assert!(
        first.logs().contains(&journal.display().to_string()),
        "the absolute journal path is logged:\n{}",
        first.logs()
    );
    let refusal = expect_refusal(dir.path(), &config, &env);
    assert!(
        refusal.contains(&journal.display().to_string())
            && refusal.contains("in use by another tracker")
            && refusal.contains("completion_journal"),
        "{refusal}"
    );
    // The first one is untouched.
    let hash = info_hash(1, 91);
    complete_many(&first, &hash, 0, 1).await;
    assert_eq!(first.scraped_downloaded(&hash).await, 1);
    first.stop();
    // Once it stopped, a new one may take the journal.
    let again = start_with_env(dir.path(), &config, &env);
    again.stop();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {db_name}")))
        .execute(&admin)
        .await
        .unwrap();
}

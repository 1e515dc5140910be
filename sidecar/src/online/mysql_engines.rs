//! Which MySQL/MariaDB tables an online dump cannot copy consistently.
//!
//! `--single-transaction` gives a consistent snapshot of InnoDB tables
//! only: a MyISAM (or Aria, MEMORY, ...) table is read at whatever moment
//! the dump reaches it, so a backup taken while the tracker writes could
//! pair rows from different moments. Such tables are listed from
//! `information_schema` with the server's own client (`mariadb` or
//! `mysql`, password in `MYSQL_PWD`), and the online backup is refused
//! with the `ALTER TABLE` that fixes it.

use std::process::Stdio;

use anyhow::{bail, Context};

use crate::config::MysqlConfig;
use crate::engine::mysql::tool_command;
use crate::engine::process::find_program;

const QUERY: &str = "SELECT TABLE_NAME, IFNULL(ENGINE, '') FROM information_schema.TABLES \
    WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' \
    AND IFNULL(ENGINE, '') <> 'InnoDB' ORDER BY TABLE_NAME";

/// `(table, engine)` of every base table of the configured database that
/// is not InnoDB.
pub fn non_transactional_tables(cfg: &MysqlConfig) -> anyhow::Result<Vec<(String, String)>> {
    let database = cfg
        .database
        .as_deref()
        .context("mysql.database is not set")?;
    let program = match &cfg.client_command {
        Some(c) => c.clone(),
        None => find_program(&["mariadb", "mysql"])
            .context("neither mariadb nor mysql (the client) is on PATH, needed to check the table engines before an online dump")?,
    };
    let out = tool_command(cfg, &program)
        .args(["--batch", "--skip-column-names", "-e", QUERY, database])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start {program:?}"))?;
    if !out.status.success() {
        bail!(
            "listing the table engines of {database} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (table, engine) = l.split_once('\t')?;
            Some((table.to_owned(), engine.to_owned()))
        })
        .collect())
}

/// The refusal naming the tables and the fix.
pub fn refusal(cfg: &MysqlConfig, tables: &[(String, String)]) -> String {
    let list: Vec<String> = tables.iter().map(|(t, e)| format!("{t} ({e})")).collect();
    let fix: Vec<String> = tables
        .iter()
        .map(|(t, _)| format!("ALTER TABLE `{t}` ENGINE=InnoDB;"))
        .collect();
    format!(
        "database {} has tables an online dump cannot copy consistently, because --single-transaction only covers InnoDB: {}. Convert them once (a quiet moment is enough: {}), or keep the stop-copy-start fallback (compose/maintenance-backup.sh --force-stop)",
        cfg.database.as_deref().unwrap_or("?"),
        list.join(", "),
        fix.join(" ")
    )
}

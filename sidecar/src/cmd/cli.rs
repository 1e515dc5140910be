//! The command line: subcommands and their options (clap derive).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::engine::CheckMode;
use maintenance_logging::LogFormat;

const AFTER_HELP: &str = "\
Configuration comes from --config FILE (TOML) overlaid by environment
variables: BACKUP_MODE, BACKUP_INTERVAL, BACKUP_RETENTION_DAYS, BACKUP_KEEP_LAST,
BACKUP_DIR, BACKUP_COMPRESSION, BACKUP_SQLITE_ENABLED, SQLITE_DATABASE_PATH,
BACKUP_MYSQL_ENABLED, MYSQL_HOST, MYSQL_PORT, MYSQL_DATABASE, MYSQL_USER,
MYSQL_PASSWORD(_FILE), MYSQL_DUMP_COMMAND, BACKUP_PATHS_FILE, MAINTENANCE_URL,
MAINTENANCE_TOKEN(_FILE), MAINTENANCE_READY_FILE, BACKUP_WEBHOOK_URL,
BACKUP_WEBHOOK_ON_SUCCESS, BACKUP_SIDECAR_ID, SIDECAR_METRICS_BIND,
BACKUP_AGE_RECIPIENTS(_FILE), BACKUP_AGE_IDENTITY_FILE, BACKUP_REMOTE,
BACKUP_REMOTE_ALLOW_HTTP, AWS_ENDPOINT_URL, AWS_REGION,
AWS_ACCESS_KEY_ID(_FILE), AWS_SECRET_ACCESS_KEY(_FILE). See sidecar/README.md.

Without a subcommand, BACKUP_MODE decides: single = once, continuous = run.

Without MAINTENANCE_URL, `run` takes online backups in the sidecar's own
window: BACKUP_WINDOW=\"HH:MM-HH:MM\", BACKUP_TIMEZONE (IANA, default UTC);
the SQLite pin is bounded by BACKUP_SQLITE_WAL_LIMIT_MIB (1024) and
BACKUP_SQLITE_PIN_TIMEOUT (30 s); the file is read from the disk at most at
BACKUP_ONLINE_READ_LIMIT_MIBPS (64 MiB/s; 0 = no limit).

Exit codes: 0 success, 1 backup/verify/restore failed, 2 usage or configuration error,
4 `once --online` refused: a database cannot be copied online (nothing read).";

/// Backup sidecar for a tracker's maintenance window.
#[derive(Debug, Parser)]
#[command(name = "maintenance-sidecar", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// TOML configuration file (environment variables override its keys).
    #[arg(long, short = 'c', global = true, env = "SIDECAR_CONFIG")]
    pub config: Option<PathBuf>,

    /// Log format on stderr: human-readable `text` or one JSON object per line.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,

    /// What to do; defaults to BACKUP_MODE (single = once, continuous = run).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Autonomous loop: wait for a ready window (ready file or status
    /// long-poll), claim it, snapshot, release, compress, verify, publish,
    /// complete. Without a coordinator URL but with BACKUP_INTERVAL, runs an
    /// uncoordinated backup every interval instead (the original loop).
    Run,
    /// One backup now, without coordination (host-cron fallback: the host
    /// stopped the tracker). Exit code 1 on failure.
    Once {
        /// Back up while the tracker serves (a tracker without the
        /// coordinator): SQLite in WAL mode is pinned from outside, MySQL
        /// must be all InnoDB. What cannot be copied online is refused
        /// with the fix, exit code 4, nothing read.
        #[arg(long)]
        online: bool,
    },
    /// Switch a SQLite database from rollback-journal mode to WAL, once,
    /// with the tracker stopped, so that it can be backed up online.
    SqliteWal {
        /// The tracker's database file (default: SQLITE_DATABASE_PATH).
        path: Option<PathBuf>,
    },
    /// Re-hash every artifact of a backup and check its content (an
    /// encrypted artifact's content only with an identity).
    Verify {
        /// Backup folder path, name inside the backup dir (or on the
        /// remote), or `latest`.
        backup: String,
        /// Verify the copy on the remote (BACKUP_REMOTE) by a streaming download.
        #[arg(long)]
        remote: bool,
        /// age identity file to decrypt encrypted artifacts (default:
        /// BACKUP_AGE_IDENTITY_FILE).
        #[arg(long)]
        identity: Option<PathBuf>,
    },
    /// Restore one artifact of a backup.
    Restore {
        /// Backup folder path, name inside the backup dir, or `latest`.
        backup: String,
        /// Which engine's artifact (sqlite, mysql, postgres, files) when
        /// there are several.
        #[arg(long)]
        engine: Option<String>,
        /// Target: SQLite database file, or folder for files.
        #[arg(long)]
        to: Option<PathBuf>,
        /// Target MySQL or PostgreSQL database (default: MYSQL_DATABASE,
        /// POSTGRES_DATABASE).
        #[arg(long)]
        database: Option<String>,
        /// Overwrite a non-empty target.
        #[arg(long)]
        force: bool,
        /// SQLite content check: `auto` runs the full integrity_check only
        /// when the manifest does not record that it passed at backup time
        /// (otherwise a header check); `full` always runs it.
        #[arg(long, value_enum, default_value = "auto")]
        check: CheckMode,
        /// Restore from the copy on the remote (BACKUP_REMOTE).
        #[arg(long)]
        remote: bool,
        /// age identity file for an encrypted backup (default:
        /// BACKUP_AGE_IDENTITY_FILE).
        #[arg(long)]
        identity: Option<PathBuf>,
    },
    /// Restore drill: restore every artifact of a backup into a temporary
    /// folder in the backup dir, run the full content checks, report the
    /// recovery time (download, decompress, check), then remove it all.
    /// Starts nothing; records success for the last-drill metric.
    Drill {
        /// Backup folder path, name inside the backup dir (or on the
        /// remote), or `latest`.
        #[arg(default_value = "latest")]
        backup: String,
        /// Drill the copy on the remote (BACKUP_REMOTE): download it into a
        /// temporary folder in the backup dir first.
        #[arg(long)]
        remote: bool,
        /// age identity file for an encrypted backup (default:
        /// BACKUP_AGE_IDENTITY_FILE).
        #[arg(long)]
        identity: Option<PathBuf>,
    },
    /// Table of backups: name, age, size, status.
    List {
        /// List the remote's backups (complete or incomplete) instead.
        #[arg(long)]
        remote: bool,
    },
    /// Create an age identity file (mode 0600, never overwritten) and print
    /// its public key, the value for BACKUP_AGE_RECIPIENTS. Keep the file
    /// away from the backups: it is what decrypts them.
    Keygen {
        /// Where to write the identity.
        #[arg(long)]
        out: PathBuf,
    },
    /// Upload a local backup to the remote (again).
    Push {
        /// Backup folder path, name inside the backup dir, or `latest`.
        backup: String,
    },
    /// One screen: the coordinator's state, the next window (UTC and local
    /// time), the last outcomes and the newest backups.
    Status {
        /// A verdict instead of the screen, for a container probe: exit 0
        /// when healthy, 1 when the last window of any instance failed,
        /// expired or was aborted, or no verified backup is younger than
        /// --max-age-hours (none at all is fine until a window has ended).
        #[arg(long)]
        probe: bool,
        /// With --probe: the age a verified backup must be younger than.
        #[arg(long, default_value_t = crate::cmd::probe::DEFAULT_MAX_AGE_HOURS, requires = "probe")]
        max_age_hours: u64,
    },
    /// Apply retention (keep_days, keep_last) and sweep crashed staging folders.
    Prune {
        /// Only print what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Apply retention to the remote instead (and sweep incomplete
        /// uploads older than the grace period).
        #[arg(long)]
        remote: bool,
    },
    /// Ask the coordinator to open an ad hoc maintenance window now.
    OpenWindow {
        /// Window length in seconds.
        #[arg(long, default_value_t = 300)]
        duration: u64,
    },
}

//! `status`: one screen for an operator — each coordinator's state (one
//! section per tracker instance), the next window in UTC and local time,
//! the last outcomes, and the newest backups.
//!
//! The coordinator part is best effort: when one is unreachable (or none is
//! configured) the screen says so and still shows the rest.

use std::fmt::Write;
use std::path::Path;
use std::process::ExitCode;

use chrono::{DateTime, Local, Utc};
use maintenance_proto::{StatusResponse, WindowSpan};

use crate::base::progress::{age, mib};
use crate::client::Coordinators;
use crate::config::Config;
use crate::retention::scan;

/// Outcomes shown.
pub const OUTCOMES_SHOWN: usize = 5;
/// Backups shown.
pub const BACKUPS_SHOWN: usize = 5;

/// `maintenance-sidecar status`: prints the screen; exit code 0 even when
/// the coordinator is unreachable (the note says so).
pub async fn status(cfg: &Config) -> ExitCode {
    let coordinators = fetch(cfg).await;
    print!("{}", render(cfg, &coordinators, Utc::now()));
    if let Some(section) = crate::offsite::status_section(cfg, Utc::now()).await {
        print!("\n{section}");
    }
    ExitCode::SUCCESS
}

/// What the coordinator said, or why it said nothing.
#[derive(Debug)]
pub enum CoordinatorView {
    /// No `MAINTENANCE_URL`.
    NotConfigured,
    /// The status call failed.
    Unreachable {
        /// API URL tried.
        url: String,
        /// The error.
        error: String,
    },
    /// The status.
    Status {
        /// API URL.
        url: String,
        /// The body.
        status: Box<StatusResponse>,
    },
}

/// Asks every configured coordinator for its status, concurrently (10 s
/// timeout each), in configuration order.
pub async fn fetch(cfg: &Config) -> Vec<CoordinatorView> {
    if cfg.coordinator.urls.is_empty() {
        return vec![CoordinatorView::NotConfigured];
    }
    let coords = match Coordinators::discover(&cfg.coordinator).await {
        Ok(c) => c,
        Err(e) => {
            return vec![CoordinatorView::Unreachable {
                url: cfg.coordinator.urls.join(", "),
                error: format!("{e:#}"),
            }]
        }
    };
    let calls = coords.all().iter().map(|c| async move {
        match c.status(None).await {
            Ok(s) => CoordinatorView::Status {
                url: c.url().to_owned(),
                status: Box::new(s),
            },
            Err(e) => CoordinatorView::Unreachable {
                url: c.url().to_owned(),
                error: e.to_string(),
            },
        }
    });
    futures_util::future::join_all(calls).await
}

/// "in 3m 10s" for a time still ahead, else "5s ago" (never "in 0s" for
/// a time already passed).
fn in_or_ago(now: DateTime<Utc>, at: DateTime<Utc>) -> String {
    if at > now {
        format!("in {}", age((at - now).num_seconds()))
    } else {
        ago(now, at)
    }
}

/// "5s ago" for a time that is over by definition (an outcome); a time
/// slightly ahead (clocks of two hosts) reads "0s ago".
fn ago(now: DateTime<Utc>, at: DateTime<Utc>) -> String {
    format!("{} ago", age((now - at).num_seconds()))
}

fn span(now: DateTime<Utc>, w: &WindowSpan) -> String {
    let (ls, le) = (w.start.with_timezone(&Local), w.end.with_timezone(&Local));
    format!(
        "{} - {} UTC ({}) | local {} - {}",
        w.start.format("%Y-%m-%d %H:%M"),
        w.end.format("%H:%M"),
        in_or_ago(now, w.start),
        ls.format("%Y-%m-%d %H:%M"),
        le.format("%H:%M %Z"),
    )
}

/// Renders the screen: one section per coordinator, then the backups.
pub fn render(cfg: &Config, views: &[CoordinatorView], now: DateTime<Utc>) -> String {
    let mut out = String::new();
    for (i, view) in views.iter().enumerate() {
        if views.len() > 1 {
            let _ = writeln!(out, "instance      {} of {}", i + 1, views.len());
        }
        let _ = render_coordinator(&mut out, view, now);
        let _ = writeln!(out);
    }
    if views.len() > 1 {
        let _ = writeln!(
            out,
            "policy        require = {} (a missing instance {}), gather timeout {} s\n",
            cfg.coordinator.require.as_str(),
            match cfg.coordinator.require {
                crate::config::Require::All => "fails the backup",
                crate::config::Require::Reachable => "is left out and named in the manifest",
            },
            cfg.coordinator.gather_timeout_secs
        );
    }
    let _ = backups(&mut out, &cfg.backup_dir, now);
    out
}

fn render_coordinator(
    out: &mut String,
    view: &CoordinatorView,
    now: DateTime<Utc>,
) -> std::fmt::Result {
    match view {
        CoordinatorView::NotConfigured => {
            writeln!(
                out,
                "coordinator   not configured (MAINTENANCE_URL is unset)"
            )?;
        }
        CoordinatorView::Unreachable { url, error } => {
            writeln!(out, "coordinator   {url}")?;
            writeln!(out, "state         UNREACHABLE: {error}")?;
            writeln!(
                out,
                "              (coordinator state unknown; local backups below are still accurate)"
            )?;
        }
        CoordinatorView::Status { url, status: s } => {
            writeln!(out, "coordinator   {url} (instance {})", s.instance_id)?;
            let mut state = format!("{} (policy {})", s.state, s.announce_policy);
            if let Some(id) = &s.window_id {
                let _ = write!(state, ", window {id}");
            }
            if let Some(exp) = s.lease_expires_at {
                let _ = write!(state, ", lease until {}", exp.format("%H:%M:%S UTC"));
            }
            writeln!(out, "state         {state}")?;
            if let Some(w) = &s.current_window {
                writeln!(out, "current       {}", span(now, w))?;
            }
            match &s.next_window {
                Some(w) => writeln!(out, "next window   {}", span(now, w))?,
                None => writeln!(out, "next window   none scheduled")?,
            }
            writeln!(out)?;
            writeln!(out, "last outcomes")?;
            if s.last_outcomes.is_empty() {
                writeln!(out, "  (none since the coordinator started)")?;
            }
            for o in s.last_outcomes.iter().take(OUTCOMES_SHOWN) {
                let reason = o.reason.as_deref().unwrap_or("");
                let backup = o
                    .report
                    .as_ref()
                    .and_then(|r| r.backup.as_deref())
                    .map(|b| format!(" backup {b}"))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "  {:<10} {} ({}) quiesced {:.1} s  window {}{backup}{}",
                    o.outcome.as_str(),
                    o.ended_at.format("%Y-%m-%d %H:%M:%S UTC"),
                    ago(now, o.ended_at),
                    o.quiesced_secs,
                    o.window_id,
                    if reason.is_empty() {
                        String::new()
                    } else {
                        format!("  reason: {reason}")
                    }
                )?;
            }
        }
    }
    Ok(())
}

fn backups(out: &mut String, dir: &Path, now: DateTime<Utc>) -> std::fmt::Result {
    writeln!(out, "newest backups in {}", dir.display())?;
    let entries = match scan(dir) {
        Ok(e) => e,
        Err(e) => return writeln!(out, "  cannot read {}: {e}", dir.display()),
    };
    if entries.is_empty() {
        return writeln!(out, "  (none)");
    }
    let shown = &entries[..entries.len().min(BACKUPS_SHOWN)];
    let w = shown.iter().map(|e| e.name.len()).max().unwrap_or(0).max(4);
    writeln!(
        out,
        "  {:<w$} {:>8} {:>10}  VERIFIED",
        "NAME", "AGE", "SIZE"
    )?;
    for e in shown {
        match &e.manifest {
            Ok(m) => writeln!(
                out,
                "  {:<w$} {:>8} {:>10}  {}",
                e.name,
                age((now - m.started_at).num_seconds()),
                mib(m.total_bytes()),
                if m.verified { "yes" } else { "no" }
            )?,
            Err(err) => writeln!(
                out,
                "  {:<44} {:>8} {:>12}  invalid: {err}",
                e.name, "-", "-"
            )?,
        }
    }
    if entries.len() > BACKUPS_SHOWN {
        writeln!(
            out,
            "  ... {} more (maintenance-sidecar list)",
            entries.len() - BACKUPS_SHOWN
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn several_coordinators_get_one_section_each_and_the_policy() {
        let cfg = Config::from_sources(
            Some("backup_dir = \"/nonexistent-backups\"\n[coordinator]\nurls = [\"http://a:1\", \"http://b:2\"]\nrequire = \"reachable\"\n"),
            &|_| None,
        )
        .unwrap();
        let views = [
            CoordinatorView::Unreachable {
                url: "http://a:1/maintenance/v1".into(),
                error: "connection refused".into(),
            },
            CoordinatorView::Unreachable {
                url: "http://b:2/maintenance/v1".into(),
                error: "timed out".into(),
            },
        ];
        let text = render(&cfg, &views, Utc::now());
        assert!(text.contains("instance      1 of 2"), "{text}");
        assert!(text.contains("instance      2 of 2"), "{text}");
        assert!(text.contains("http://a:1/maintenance/v1"), "{text}");
        assert!(text.contains("UNREACHABLE: timed out"), "{text}");
        assert!(text.contains("require = reachable"), "{text}");
        let one = render(&cfg, &views[..1], Utc::now());
        assert!(!one.contains("instance "), "{one}");
    }

    #[test]
    fn past_times_read_ago_future_times_in() {
        let now = Utc::now();
        let ms = Duration::milliseconds;
        assert_eq!(in_or_ago(now, now - ms(400)), "0s ago");
        assert_eq!(in_or_ago(now, now), "0s ago");
        assert_eq!(in_or_ago(now, now - ms(65_000)), "1m 5s ago");
        assert_eq!(in_or_ago(now, now + ms(190_000)), "in 3m 10s");
        assert_eq!(ago(now, now - ms(900)), "0s ago");
        assert_eq!(ago(now, now + ms(700)), "0s ago");
        assert_eq!(ago(now, now - ms(7_200_000)), "2h 0m ago");
    }
}

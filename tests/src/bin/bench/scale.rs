//! `bench scale`: the pause of a window does not grow with the database.
//!
//! ```text
//! bench scale --size-gib 16 --dir /var/tmp/scale
//! ```
//!
//! The database (`<dir>/scale-<N>g.db`, see `maintenance_e2e::scale`) is
//! generated once and reused by later runs with the same `--dir`.

use std::path::{Path, PathBuf};

use maintenance_e2e::scale;

/// Torrents the tracker loads at start-up (a large public tracker).
const LIVE_ROWS: u64 = 2_000_000;

struct ScaleOpts {
    size_gib: u64,
    dir: PathBuf,
    generate_only: bool,
}

fn parse(args: &[String]) -> ScaleOpts {
    let mut o = ScaleOpts {
        size_gib: 1,
        dir: PathBuf::from("/var/tmp/scale"),
        generate_only: false,
    };
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--size-gib" => o.size_gib = v.parse().expect("--size-gib N"),
            "--dir" => o.dir = PathBuf::from(v),
            "--generate-only" => {
                o.generate_only = true;
                i += 1;
                continue;
            }
            other => {
                panic!("unknown option {other} (scale takes --size-gib N --dir D --generate-only)")
            }
        }
        i += 2;
    }
    o
}

/// The database of `size_gib`, generated unless it is already in `dir`.
fn database(dir: &Path, size_gib: u64) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let db = dir.join(format!("scale-{size_gib}g.db"));
    if db.exists() {
        println!(
            "# reusing {} ({:.2} GiB)",
            db.display(),
            std::fs::metadata(&db).unwrap().len() as f64 / (1u64 << 30) as f64
        );
        return db;
    }
    let tmp = dir.join(format!(".scale-{size_gib}g.db.generating"));
    let _ = std::fs::remove_file(&tmp);
    let g = scale::generate(&tmp, size_gib << 30, LIVE_ROWS);
    std::fs::rename(&tmp, &db).unwrap();
    println!(
        "# generated {}: {:.2} GiB, {} torrents + {} history rows, in {:.1} s ({:.0} MiB/s)",
        db.display(),
        g.bytes as f64 / (1u64 << 30) as f64,
        g.live_rows,
        g.history_rows,
        g.secs,
        g.bytes as f64 / 1048576.0 / g.secs
    );
    db
}

/// Entry point of `bench scale`.
pub fn run(args: &[String]) {
    let o = parse(args);
    let db = database(&o.dir, o.size_gib);
    if o.generate_only {
        return;
    }
    let _ = db;
}

#!/usr/bin/env python3
"""Smoke test with a real BitTorrent client library (libtorrent, as used by
qBittorrent/Deluge): a seeder and a leecher session find each other only
through reference-tracker and transfer a file; then scrape must report the
completion.

Usage: libtorrent_smoke.py http://127.0.0.1:PORT   (the tracker's base URL)
Needs: python3-libtorrent (Debian package). Exits 0 on success, 1 on failure,
77 when libtorrent is not installed.
"""
import sys
import tempfile
import time
import urllib.request

from ltlib import download, make_torrent, session, start_seeder


def main():
    base = sys.argv[1].rstrip("/")
    work = tempfile.mkdtemp(prefix="lt-smoke-")
    ti, payload, seed_dir, leech_dir = make_torrent(work, base + "/announce")
    info_hash = bytes.fromhex(str(ti.info_hashes().v1))

    seeder, leecher = session(), session()
    seed = start_seeder(seeder, ti, seed_dir)
    seed.force_reannounce()
    leech = download(seeder, leecher, ti, leech_dir, payload)

    # libtorrent announces event=completed; wait until scrape shows it.
    quoted = "".join("%%%02X" % b for b in info_hash)
    deadline = time.time() + 30
    while True:
        body = urllib.request.urlopen(base + "/scrape?info_hash=" + quoted).read()
        if b"10:downloadedi1e" in body:
            print("scrape reports the completion:", body)
            return 0
        if time.time() > deadline:
            print("scrape never showed downloaded=1:", body)
            return 1
        leech.force_reannounce()
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Smoke test with a real BitTorrent client library (libtorrent, as used by
qBittorrent/Deluge): a seeder and a leecher session find each other only
through reference-tracker and transfer a file; then scrape must report the
completion.

Usage: libtorrent_smoke.py http://127.0.0.1:PORT   (the tracker's base URL)
Needs: python3-libtorrent (Debian package). Exits 0 on success, 1 on failure,
77 when libtorrent is not installed.
"""
import os
import sys
import tempfile
import time
import urllib.request

try:
    import libtorrent as lt
except ImportError:
    print("skipping: python3 libtorrent module not installed")
    sys.exit(77)


def session():
    return lt.session({
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": lt.alert.category_t.error_notification | lt.alert.category_t.tracker_notification,
    })


def main():
    base = sys.argv[1].rstrip("/")
    work = tempfile.mkdtemp(prefix="lt-smoke-")
    seed_dir = os.path.join(work, "seed")
    leech_dir = os.path.join(work, "leech")
    os.makedirs(seed_dir)
    os.makedirs(leech_dir)
    payload = os.urandom(256 * 1024)
    with open(os.path.join(seed_dir, "payload.bin"), "wb") as f:
        f.write(payload)

    fs = lt.file_storage()
    lt.add_files(fs, os.path.join(seed_dir, "payload.bin"))
    ct = lt.create_torrent(fs)
    ct.add_tracker(base + "/announce")
    lt.set_piece_hashes(ct, seed_dir)
    ti = lt.torrent_info(lt.bencode(ct.generate()))
    info_hash = bytes.fromhex(str(ti.info_hashes().v1))

    seeder, leecher = session(), session()
    p = lt.add_torrent_params()
    p.ti = ti
    p.save_path = seed_dir
    seed = seeder.add_torrent(p)
    deadline = time.time() + 30
    while not seed.status().is_seeding:
        if time.time() > deadline:
            print("seeder never finished checking")
            return 1
        time.sleep(0.1)
    seed.force_reannounce()

    p = lt.add_torrent_params()
    p.ti = lt.torrent_info(ti)
    p.save_path = leech_dir
    leech = leecher.add_torrent(p)

    deadline = time.time() + 60
    while not leech.status().is_seeding:
        for s in (seeder, leecher):
            for a in s.pop_alerts():
                if a.category() & lt.alert.category_t.error_notification:
                    print("alert:", a.message())
        if time.time() > deadline:
            st = leech.status()
            print("leecher did not finish: progress %.2f peers %d" % (st.progress, st.num_peers))
            return 1
        time.sleep(0.2)
    with open(os.path.join(leech_dir, "payload.bin"), "rb") as f:
        if f.read() != payload:
            print("downloaded payload differs")
            return 1
    print("leecher downloaded the payload through peers from the tracker")

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

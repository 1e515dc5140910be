"""Shared pieces of the libtorrent scripts (libtorrent_smoke.py over HTTP,
libtorrent_udp.py over UDP): a loopback-only session, a one-file torrent
with a random payload, a seeder that has checked it, and a leecher that
downloads it through peers the tracker hands out.

Importing this module exits with status 77 when the libtorrent binding is
missing, which the callers report as "skipped".
"""
import os
import sys
import time

try:
    import libtorrent as lt
except ImportError:
    print("skipping: python3 libtorrent module not installed")
    sys.exit(77)


def session():
    """A session on loopback with DHT, LSD, UPnP and NAT-PMP off, so peers
    can only come from the tracker."""
    return lt.session({
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.tracker_notification
        | lt.alert.category_t.status_notification,
    })


def make_torrent(work, tracker_url):
    """Writes a 256 KiB random payload under work/seed and returns
    (torrent_info, payload, seed_dir, leech_dir)."""
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
    ct.add_tracker(tracker_url)
    lt.set_piece_hashes(ct, seed_dir)
    ti = lt.torrent_info(lt.bencode(ct.generate()))
    return ti, payload, seed_dir, leech_dir


def start_seeder(sess, ti, seed_dir):
    """Adds the torrent to `sess` and waits until it seeds."""
    p = lt.add_torrent_params()
    p.ti = ti
    p.save_path = seed_dir
    seed = sess.add_torrent(p)
    deadline = time.time() + 30
    while not seed.status().is_seeding:
        if time.time() > deadline:
            raise SystemExit("seeder never finished checking")
        time.sleep(0.1)
    return seed


def download(seeder, leecher, ti, leech_dir, payload):
    """Adds the torrent to `leecher`, waits until it has the whole payload
    (printing error alerts of both sessions) and checks the bytes."""
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
            raise SystemExit("leecher did not finish: progress %.2f peers %d" % (st.progress, st.num_peers))
        time.sleep(0.1)
    with open(os.path.join(leech_dir, "payload.bin"), "rb") as f:
        if f.read() != payload:
            raise SystemExit("downloaded payload differs")
    print("leecher downloaded the payload through peers from the tracker")
    return leech

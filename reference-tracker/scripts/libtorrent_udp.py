#!/usr/bin/env python3
"""A real BitTorrent client library (libtorrent) against a tracker's UDP
(BEP 15) or HTTP announce URL, across a maintenance window. Any tracker
embedding the coordinator: reference-tracker, and the torrust-actix
embedding (embeddings/torrust-actix) over both protocols.

Usage: libtorrent_udp.py reject|defer-writes udp://127.0.0.1:PORT
       libtorrent_udp.py reject|defer-writes http://127.0.0.1:PORT/announce
Env:   MAINTENANCE_API  http://127.0.0.1:PORT/maintenance/v1
       MAINTENANCE_TOKEN  bearer token for POST windows / abort
       SEEDS_GET_SEEDS  "0" for a tracker that answers a seed without other
                        seeds (torrust-actix): after a reject window the
                        re-announce of the (now seeding) leecher must then
                        be answered, with or without peers

reject:        the leecher downloads through peers from the tracker;
               then a window opens: a re-announce gets the tracker's error
               (over HTTP: its failure reason, naming the maintenance); after the window ends a re-announce
               is answered again with peers.
defer-writes:  a window opens first; the leecher downloads the whole file
               during the window through peers the tracker hands out,
               and announces its completion; then the window ends.

Exits 0 on success, 1 on failure, 77 when libtorrent is not installed.
Prints "OK <mode>" on success.
"""
import json
import os
import sys
import tempfile
import time
import urllib.request

from ltlib import download, lt, make_torrent, session, start_seeder


def api(call, body=None):
    base = os.environ["MAINTENANCE_API"].rstrip("/")
    req = urllib.request.Request(base + "/" + call)
    if body is not None:
        req.data = json.dumps(body).encode()
        req.add_header("content-type", "application/json")
        req.add_header("authorization", "Bearer " + os.environ["MAINTENANCE_TOKEN"])
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def wait_state(want, timeout=30):
    deadline = time.time() + timeout
    while True:
        st = api("status")
        if st["state"] == want:
            return
        if time.time() > deadline:
            raise SystemExit("state stayed %s (wanted %s)" % (st["state"], want))
        time.sleep(0.05)


def reannounce(handle):
    handle.force_reannounce(0, -1, lt.reannounce_flags_t.ignore_min_interval)


def wait_alert(sess, handle, kind, timeout=30):
    """Re-announces until an alert of `kind` arrives; returns it."""
    deadline = time.time() + timeout
    reannounce(handle)
    next_kick = time.time() + 3
    while time.time() < deadline:
        for a in sess.pop_alerts():
            if isinstance(a, kind):
                return a
        if time.time() > next_kick:
            reannounce(handle)
            next_kick = time.time() + 3
        time.sleep(0.05)
    raise SystemExit("no %s within %ss" % (kind.__name__, timeout))


def main():
    mode, tracker = sys.argv[1], sys.argv[2]
    if mode not in ("reject", "defer-writes") or not tracker.startswith(("udp://", "http://")):
        print(__doc__)
        return 2
    work = tempfile.mkdtemp(prefix="lt-udp-")
    ti, payload, seed_dir, leech_dir = make_torrent(work, tracker)
    seeder, leecher = session(), session()
    seed = start_seeder(seeder, ti, seed_dir)
    a = wait_alert(seeder, seed, lt.tracker_reply_alert)
    print("seeder announced:", a.message())

    if mode == "reject":
        leech = download(seeder, leecher, ti, leech_dir, payload)
        api("windows", {"duration_secs": 60})
        wait_state("ready")
        a = wait_alert(leecher, leech, lt.tracker_error_alert)
        msg = a.failure_reason()
        print("during the window:", a.message())
        # libtorrent 2.0 reads a UDP error's text from the start of the
        # packet, whose first byte is 0, so it reports an empty failure
        # reason; the text itself is checked by tracker_udp.rs. What counts
        # here is that the client saw the tracker's error (action 3), not
        # a timeout or a malformed answer.
        if "failure message" not in a.error.message():
            print("expected the tracker's error packet, got:", a.error.message())
            return 1
        if tracker.startswith("http://") and not msg:
            print("an HTTP failure must carry its reason")
            return 1
        if msg and ("maintenance" not in msg or "retry in" not in msg):
            print("the error does not name the maintenance and the retry time:", msg)
            return 1
        api("abort", {})
        wait_state("idle")
        a = wait_alert(leecher, leech, lt.tracker_reply_alert)
        print("after the window:", a.message())
        if a.num_peers < 1 and os.environ.get("SEEDS_GET_SEEDS", "1") != "0":
            print("no peers after the window")
            return 1
    else:
        api("windows", {"duration_secs": 120})
        wait_state("ready")
        leech = download(seeder, leecher, ti, leech_dir, payload)
        a = wait_alert(leecher, leech, lt.tracker_reply_alert)
        print("during the window:", a.message())
        if a.num_peers < 1:
            print("no peers during the window")
            return 1
        if api("status")["state"] != "ready":
            print("the window ended before the download did")
            return 1
        api("abort", {})
        wait_state("idle")
    print("OK", mode)
    return 0


if __name__ == "__main__":
    sys.exit(main())

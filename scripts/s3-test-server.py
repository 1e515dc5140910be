#!/usr/bin/env python3
"""A real S3-compatible server on loopback for the off-site tests and the
upload benchmark: moto's server mode (multipart uploads included) with
authentication switched on, so wrong credentials are refused.

Usage: s3-test-server.py PORT BUCKET [--open]
Prints one JSON line {"endpoint", "access_key_id", "secret_access_key",
"bucket"} once the server answers and the bucket exists, then serves until
killed. The keys belong to a user created at start; any other key is
refused (InvalidAccessKeyId). With --open, authentication stays off (for
a server restarted under a client that keeps its old keys) and the keys
in S3_TEST_KEY_ID / S3_TEST_SECRET are printed. Objects live in this process's memory.
"""
import json
import os
import sys
import time

# The first requests (creating the user, its key and its policy) run
# unauthenticated; every later request must be signed with that key.
OPEN = len(sys.argv) > 3 and sys.argv[3] == "--open"
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "1000000000" if OPEN else "3"
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bootstrap")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bootstrap")

import boto3  # noqa: E402
from moto.core import DEFAULT_ACCOUNT_ID  # noqa: E402
from moto.s3.models import s3_backends  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402


def main():
    port = int(sys.argv[1])
    bucket = sys.argv[2]
    # The bucket exists before the port answers: a client retrying against
    # a restarted server must never see it missing (a missing bucket is an
    # error no retry can fix, and the sidecar does not retry it).
    s3_backends[DEFAULT_ACCOUNT_ID]["aws"].create_bucket(bucket, "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    if OPEN:
        key = {
            "AccessKeyId": os.environ["S3_TEST_KEY_ID"],
            "SecretAccessKey": os.environ["S3_TEST_SECRET"],
        }
    else:
        key = create_user(endpoint)
    print(
        json.dumps(
            {
                "endpoint": endpoint,
                "access_key_id": key["AccessKeyId"],
                "secret_access_key": key["SecretAccessKey"],
                "bucket": bucket,
            }
        ),
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def create_user(endpoint):
    """A user allowed everything, and its access key."""
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1")
    iam.create_user(UserName="backup")
    key = iam.create_access_key(UserName="backup")["AccessKey"]
    iam.put_user_policy(
        UserName="backup",
        PolicyName="all",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        ),
    )
    return key


if __name__ == "__main__":
    main()

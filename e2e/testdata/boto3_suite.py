"""Runs the S3 calls boto3 users make against a Redoubt endpoint.

Environment: REDOUBT_ENDPOINT (http://host:port or https://host:port),
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, REDOUBT_CA (a
PEM file to trust, for https), and REDOUBT_DOMAIN when the server was started
with --domain (virtual-host addressing is tested then). Over https botocore
sends every upload as aws-chunked with a CRC32 trailer.
Exits non-zero with a message at the first failure.
"""

import base64
import hashlib
import os
import socket
import sys
import tempfile
import time
import traceback
import zlib

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["REDOUBT_ENDPOINT"]
REGION = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
DOMAIN = os.environ.get("REDOUBT_DOMAIN", "")
CA = os.environ.get("REDOUBT_CA") or None


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def data(seed, n):
    """Deterministic bytes, cheap to build for a few MiB."""
    block = hashlib.sha256(("%d" % seed).encode()).digest() * 2048
    return (block * (n // len(block) + 1))[:n]


def client(style="path", endpoint=ENDPOINT):
    cfg = Config(
        region_name=REGION,
        s3={"addressing_style": style},
        retries={"max_attempts": 1, "mode": "standard"},
        # A stalled request fails in seconds, not after botocore's 60 s default.
        read_timeout=10,
        connect_timeout=5,
    )
    return boto3.client("s3", endpoint_url=endpoint, config=cfg, verify=CA)


def step(name, fn, *args):
    print("--- " + name, flush=True)
    try:
        fn(*args)
    except SystemExit:
        raise
    except Exception:
        traceback.print_exc()
        fail(name + " raised")


def test_put_get(s3, bucket):
    for i, n in enumerate([0, 1, 1000, 200 * 1024, 6 * 1024 * 1024 + 1]):
        body = data(i, n)
        key = "sizes/%d" % n
        put = s3.put_object(Bucket=bucket, Key=key, Body=body)
        check(put["ETag"] == '"%s"' % hashlib.md5(body).hexdigest(),
              "put_object %d bytes: ETag %s" % (n, put["ETag"]))
        got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        b = got["Body"].read()
        check(b == body, "get_object %d bytes: got %d bytes, content equal: %s" % (n, len(b), b == body))
        check(got["ContentLength"] == n, "get_object %d bytes: ContentLength %s" % (n, got["ContentLength"]))
        crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
        check(n == 0 or got.get("ChecksumCRC32") == crc,
              "get_object %d bytes with ChecksumMode ENABLED: ChecksumCRC32 %r, want %r (botocore's default checksum)" % (n, got.get("ChecksumCRC32"), crc))
        head = s3.head_object(Bucket=bucket, Key=key)
        check(head["ContentLength"] == n, "head_object %d bytes: ContentLength %s" % (n, head["ContentLength"]))
    try:
        s3.get_object(Bucket=bucket, Key="sizes/missing")
        fail("get_object of a missing key succeeded")
    except ClientError as e:
        check(e.response["Error"]["Code"] == "NoSuchKey", "missing key: %s" % e.response["Error"])


def test_metadata(s3, bucket):
    s3.put_object(Bucket=bucket, Key="meta", Body=b"m", Metadata={"k1": "v1", "Mixed": "Case"})
    for op in ("head_object", "get_object"):
        got = getattr(s3, op)(Bucket=bucket, Key="meta")["Metadata"]
        check(got == {"k1": "v1", "mixed": "Case"},
              "%s Metadata %r, want %r: S3 returns x-amz-meta-* names in lower case" % (op, got, {"k1": "v1", "mixed": "Case"}))


def test_transfer(s3, bucket):
    cfg = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024, max_concurrency=4)
    body = data(99, 12 * 1024 * 1024 + 5)
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "src.bin")
        dst = os.path.join(d, "dst.bin")
        with open(src, "wb") as f:
            f.write(body)
        s3.upload_file(src, bucket, "transfer/big.bin", Config=cfg)
        head = s3.head_object(Bucket=bucket, Key="transfer/big.bin")
        check(head["ContentLength"] == len(body), "upload_file: ContentLength %s" % head["ContentLength"])
        check(head["ETag"].endswith('-3"'), "upload_file: ETag %s, want a 3-part multipart ETag" % head["ETag"])
        s3.download_file(bucket, "transfer/big.bin", dst, Config=cfg)
        with open(dst, "rb") as f:
            got = f.read()
        check(got == body, "download_file: %d bytes, content equal: %s" % (len(got), got == body))


def test_list_paging(s3, bucket):
    keys = ["page/key-%03d" % i for i in range(25)]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    pages = 0
    seen = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="page/", PaginationConfig={"PageSize": 7}):
        pages += 1
        seen += [o["Key"] for o in page.get("Contents", [])]
    check(seen == keys, "list_objects_v2 paging: %d keys, want %d in order" % (len(seen), len(keys)))
    check(pages == 4, "list_objects_v2 paging: %d pages, want 4" % pages)


def test_delete_objects(s3, bucket):
    keys = ["page/key-%03d" % i for i in range(25)]
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    check(len(out.get("Deleted", [])) == 25 and not out.get("Errors"), "delete_objects: %s" % out)
    left = s3.list_objects_v2(Bucket=bucket, Prefix="page/").get("KeyCount")
    check(left == 0, "after delete_objects %s keys are left" % left)


def test_empty_then_nonempty(s3, bucket):
    # botocore sends Expect: 100-continue even for empty bodies; the next
    # PUT on the same pooled connection must not stall.
    for i in range(3):
        for key, body in (("folder%d/" % i, b""), ("folder%d/file" % i, data(i, 64 * 1024))):
            t0 = time.monotonic()
            s3.put_object(Bucket=bucket, Key=key, Body=body)
            took = time.monotonic() - t0
            check(took < 1.0, "put_object %s (%d bytes) took %.2fs, want < 1s" % (key, len(body), took))


def test_virtual_host(bucket):
    if not DOMAIN:
        print("virtual-host addressing skipped: the server has no --domain", flush=True)
        return
    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if host == DOMAIN or host.endswith("." + DOMAIN):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    socket.getaddrinfo = resolve
    scheme, rest = ENDPOINT.split("://", 1)
    port = rest.rsplit(":", 1)[1]
    s3 = client("virtual", "%s://%s:%s" % (scheme, DOMAIN, port))
    vb = bucket + "-vhost"
    s3.create_bucket(Bucket=vb)
    s3.put_object(Bucket=vb, Key="a/b c", Body=b"virtual")
    got = s3.get_object(Bucket=vb, Key="a/b c")["Body"].read()
    check(got == b"virtual", "virtual-host get_object: %r" % got)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=vb).get("Contents", [])]
    check(keys == ["a/b c"], "virtual-host list_objects_v2: %s" % keys)
    s3.delete_object(Bucket=vb, Key="a/b c")
    s3.delete_bucket(Bucket=vb)


def main():
    s3 = client()
    bucket = "boto3-%d" % (int(time.time() * 1000) % 1000000)
    step("create_bucket", lambda: s3.create_bucket(Bucket=bucket))
    step("head_bucket", lambda: s3.head_bucket(Bucket=bucket))
    step("put/get sizes", test_put_get, s3, bucket)
    step("upload_file/download_file multipart", test_transfer, s3, bucket)
    step("list_objects_v2 paging", test_list_paging, s3, bucket)
    step("delete_objects", test_delete_objects, s3, bucket)
    step("virtual-host addressing", test_virtual_host, bucket)
    step("user metadata names", test_metadata, s3, bucket)
    step("empty then non-empty put on one client", test_empty_then_nonempty, client(), bucket)
    print("OK", flush=True)


if __name__ == "__main__":
    main()

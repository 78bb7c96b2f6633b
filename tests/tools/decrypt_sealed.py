#!/usr/bin/python3
"""Independent decryptor for aidp sealed datasets (format versions 4, 3, 2 and 1).

Written from docs/sealed-format.md alone, using only the Python standard
library and Debian's python3-cryptography (AES-GCM, RFC 5649 key unwrap,
HKDF). It
shares no code with aidp; the Criterion test test_sealed_python.c runs it on
files sealed by aidp.

usage: decrypt_sealed.py --kek KEKFILE SEALED OUTDIR
       decrypt_sealed.py --kek KEKFILE --verify SEALED
       decrypt_sealed.py --dump-header FILE SEALED      (raw prefix+body, for fuzz seeds)
       decrypt_sealed.py --kek KEKFILE --dump-manifest FILE SEALED
Prints the authenticated header as JSON on stdout. Exit 0 on success, 1 with
a message on stderr on any failure; OUTDIR is only populated after every
segment authenticated.
"""
import argparse
import hashlib
import hmac
import json
import os
import struct
import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap_with_padding

MAGIC = b"AIDPSEAL"
TREE_MAGIC = b"AIDPTREE"
TAG = 16
CLASSES = ["public", "internal", "confidential", "restricted", "regulated"]
FIELDS = {1: "name", 2: "version", 3: "owner", 4: "created_at", 5: "classification",
          6: "residency", 7: "regulation", 8: "key_id", 9: "key_wrap", 10: "wrapped_key",
          11: "content_digest", 12: "segment_size", 13: "payload_len", 14: "schema",
          15: "produced_by"}
REPEATABLE = {6, 7}
VERSIONS = (1, 2, 3, 4)
DIGEST_INFO = b"aidp sealed v2 content digest"


class Refused(Exception):
    pass


def parse_header(data):
    if len(data) < 16 or data[:8] != MAGIC:
        raise Refused("not a sealed dataset")
    version, reserved, body_len = struct.unpack(">HHI", data[8:16])
    if version not in VERSIONS or reserved != 0:
        raise Refused("unsupported version %d" % version)
    if not 1 <= body_len <= 65536 or len(data) < 16 + body_len + TAG:
        raise Refused("bad header length")
    hdr = data[:16 + body_len]
    h = {"residency": [], "regulation": [], "format_version": version}
    off, last = 16, 0
    while off < len(hdr):
        if len(hdr) - off < 4:
            raise Refused("truncated field at %d" % off)
        ftype, flen = struct.unpack(">HH", hdr[off:off + 4])
        val = hdr[off + 4:off + 4 + flen]
        if len(val) != flen or ftype not in FIELDS:
            raise Refused("bad field %d at %d" % (ftype, off))
        if ftype < last or (ftype == last and ftype not in REPEATABLE):
            raise Refused("field order at %d" % off)
        if ftype == 14 and version < 3:
            raise Refused("a schema in a version %d header" % version)
        if ftype == 15 and version < 4:
            raise Refused("a produced-by record in a version %d header" % version)
        last = ftype
        name = FIELDS[ftype]
        if ftype in (1, 2, 3, 8):
            h[name] = val.decode("ascii")
        elif ftype in REPEATABLE:
            h[name].append(val.decode("ascii"))
        elif ftype in (4, 12, 13):
            if flen != {4: 8, 12: 4, 13: 8}[ftype]:
                raise Refused("bad integer width")
            h[name] = int.from_bytes(val, "big")
        elif ftype == 14:
            h[name] = parse_schema(val)
        elif ftype == 15:
            h[name] = parse_produced_by(val)
        elif ftype in (5, 9):
            if flen != 1:
                raise Refused("bad byte field")
            h[name] = val[0]
        else:
            h[name] = bytes(val)
        off += 4 + flen
    optional = REPEATABLE | ({14} if version != 3 else set()) | ({15} if version < 4 else set())
    missing = [FIELDS[t] for t in FIELDS if t not in optional and FIELDS[t] not in h]
    if missing:
        raise Refused("missing fields %s" % missing)
    return hdr, data[16 + body_len:16 + body_len + TAG], h


def parse_schema(val):
    """Record 14 (format 3): the schema as canonical compact JSON."""
    try:
        schema = json.loads(val.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Refused("schema is not JSON")
    canonical = json.dumps(schema, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if not isinstance(schema, dict) or list(schema) != ["v", "files"] or schema["v"] != 1 \
            or canonical != bytes(val):
        raise Refused("schema is not in the canonical encoding")
    for f in schema["files"]:
        if list(f) != ["pattern", "format", "columns"] or f["format"] not in ("csv", "jsonl"):
            raise Refused("schema file entry")
        for c in f["columns"]:
            if list(c) != ["name", "labels"] or c["labels"] != sorted(set(c["labels"])):
                raise Refused("schema column entry")
    return schema


def canonical_json(val, what):
    try:
        obj = json.loads(val.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Refused("%s is not JSON" % what)
    if json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8") != bytes(val):
        raise Refused("%s is not in the canonical encoding" % what)
    return obj


def keys_in_order(obj, required, optional=()):
    """The members of obj are the required ones and some optional ones, in
    the order of required + optional (docs/sealed-format.md, record 15)."""
    order = list(required) + list(optional)
    want = [k for k in order if k in required or k in obj]
    return isinstance(obj, dict) and list(obj) == want


def parse_produced_by(val):
    """Record 15 (format 4): the runs and column views that produced the dataset."""
    rec = canonical_json(val, "produced-by record")
    if not keys_in_order(rec, ["v", "steps"]) or rec["v"] != 1 or not rec["steps"]:
        raise Refused("produced-by record")
    for step in rec["steps"]:
        # a run's step has "run", a re-seal's (aidp seal --derived-from) "sealedBy"
        if not (keys_in_order(step, ["output", "run", "inputs"])
                or keys_in_order(step, ["output", "sealedBy", "inputs"])):
            raise Refused("produced-by step")
        for ds in step["inputs"]:
            if not keys_in_order(ds, ["dataset", "digest", "injected"], ["views", "files"]) \
                    or ("views" in ds) != ("files" in ds):
                raise Refused("produced-by input")
            for f in ds.get("files", []):
                if not keys_in_order(f, ["pattern", "format", "columns"]) \
                        or f["format"] not in ("csv", "jsonl"):
                    raise Refused("produced-by file")
                for c in f["columns"]:
                    if not keys_in_order(c, ["column", "labels", "transform"], ["keyId", "domain"]) \
                            or ("keyId" in c) != ("domain" in c):
                        raise Refused("produced-by column")
    return rec


def nonce(kind, index):
    return struct.pack(">IQ", kind, index)


def open_sealed(path, kek):
    with open(path, "rb") as f:
        data = f.read()
    hdr, htag, h = parse_header(data)
    if h["key_wrap"] != 1:
        raise Refused("key wrap %d needs an exec provider" % h["key_wrap"])
    try:
        dk = aes_key_unwrap_with_padding(kek, h["wrapped_key"])
    except InvalidUnwrap:
        raise Refused("key unwrap failed: wrong key")
    if len(dk) != 32:
        raise Refused("data key length")
    gcm = AESGCM(dk)
    try:
        gcm.decrypt(nonce(2, 0), htag, hdr)  # empty plaintext: the tag alone
    except InvalidTag:
        raise Refused("header authentication failed")
    S, L = h["segment_size"], h["payload_len"]
    n = max(1, -(-L // S))
    payload_off = len(hdr) + TAG
    if len(data) != payload_off + L + n * TAG:
        raise Refused("file size does not match the header")
    aad = hashlib.sha256(hdr).digest()
    plain, seg_digests = bytearray(), bytearray()
    for i in range(n):
        seg_len = min(S, L - i * S)
        start = payload_off + i * (S + TAG)
        ct = data[start:start + seg_len + TAG]
        try:
            p = gcm.decrypt(nonce(1 if i == n - 1 else 0, i), ct, aad)
        except InvalidTag:
            raise Refused("segment %d failed authentication" % i)
        seg_digests += hashlib.sha256(p).digest()
        plain += p
    m = struct.pack(">QI", L, S) + bytes(seg_digests)
    if h["format_version"] == 1:
        digest = hashlib.sha256(m).digest()
    else:
        kd = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=DIGEST_INFO).derive(dk)
        digest = hmac.new(kd, m, hashlib.sha256).digest()
    if not hmac.compare_digest(digest, h["content_digest"]):
        raise Refused("content digest mismatch")
    return hdr, h, bytes(plain)


def parse_manifest(plain):
    if plain[:8] != TREE_MAGIC:
        raise Refused("bad manifest magic")
    mlen, root, reserved, root_mode, count = struct.unpack(">IBBHI", plain[8:20])
    off, entries = 20, []
    for _ in range(count):
        etype, _res, mode, size, plen = struct.unpack(">BBHQH", plain[off:off + 14])
        path = plain[off + 14:off + 14 + plen].decode("utf-8", "surrogateescape")
        comps = path.split("/")
        if not path or path.startswith("/") or any(c in ("", ".", "..") for c in comps):
            raise Refused("unsafe path %r" % path)
        entries.append((etype, mode, size, path))
        off += 14 + plen
    if off != mlen:
        raise Refused("manifest length")
    if [e[3].encode("utf-8", "surrogateescape") for e in entries] != \
            sorted(e[3].encode("utf-8", "surrogateescape") for e in entries):
        raise Refused("manifest not sorted")
    return mlen, root, root_mode, entries


def extract(plain, outdir):
    mlen, root, root_mode, entries = parse_manifest(plain)
    pos = mlen
    os.makedirs(outdir, exist_ok=True)
    for etype, mode, size, path in entries:
        dst = os.path.join(outdir, path)
        if etype == 2:
            os.mkdir(dst, 0o700)
        elif etype == 1:
            fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            os.write(fd, plain[pos:pos + size])
            os.close(fd)
            pos += size
        else:
            raise Refused("entry type %d" % etype)
    if pos != len(plain):
        raise Refused("payload length does not match the manifest")
    for etype, mode, size, path in reversed(entries):
        os.chmod(os.path.join(outdir, path), mode)
    return entries


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kek")
    ap.add_argument("--verify", action="store_true")
    ap.add_argument("--dump-header")
    ap.add_argument("--dump-manifest")
    ap.add_argument("sealed")
    ap.add_argument("outdir", nargs="?")
    a = ap.parse_args()
    try:
        if a.dump_header:
            with open(a.sealed, "rb") as f:
                hdr, _, _ = parse_header(f.read())
            with open(a.dump_header, "wb") as f:
                f.write(hdr)
            return 0
        with open(a.kek, "rb") as f:
            kek = f.read()
        if len(kek) != 32:
            raise Refused("KEK must be 32 bytes")
        hdr, h, plain = open_sealed(a.sealed, kek)
        if a.dump_manifest:
            mlen = struct.unpack(">I", plain[8:12])[0]
            with open(a.dump_manifest, "wb") as f:
                f.write(plain[:mlen])
        elif not a.verify:
            if not a.outdir:
                raise Refused("missing OUTDIR")
            extract(plain, a.outdir)
        else:
            parse_manifest(plain)
        out = {k: (v.hex() if isinstance(v, bytes) else v) for k, v in h.items()}
        out["classification"] = CLASSES[h["classification"]]
        out["header_digest"] = hashlib.sha256(hdr).hexdigest()
        print(json.dumps(out, sort_keys=True))
        return 0
    except (Refused, OSError, UnicodeDecodeError, struct.error) as e:
        print("decrypt_sealed: refused: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

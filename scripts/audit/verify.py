#!/usr/bin/env python3
"""Verifies a Bespin audit proof or export offline, independently of the server's code.

    verify.py PROOF.json [PUBLIC_KEY_B64]
    verify.py --export EXPORT.jsonl PUBLIC_KEY_B64 [CHECKPOINT_NOTE_FILE]

PROOF.json is the body of `GET /v1/audit/proof?from=&to=`. The rows are rehashed with the
encoding documented in bespin-core/src/audit/chain.rs, linked from the proof's `prev_hash`,
and the last one compared with the signed checkpoint (a C2SP signed note), whose Ed25519
signature is checked with `cryptography` (PyPI) against PUBLIC_KEY_B64 — a key obtained
out of band (`GET /v1/audit/public-key`, kept from before); without it, the key in the proof
is used, which proves only that the proof is self-consistent.

EXPORT.jsonl is the body of `GET /v1/audit/export`: every line is rehashed (and its personal
fields checked against their salted digest, unless erased) and linked to the line before, from
the first line's `prev_hash`; with CHECKPOINT_NOTE_FILE (a signed checkpoint's note text, as a
proof's `checkpoint`), the last line must be the signed head. Exit 0 when everything verifies,
1 with the first failure otherwise.
"""
import base64
import hashlib
import json
import struct
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

KEY_NAME = "bespin-audit"


def frame(s):
    if s is None:
        return b"\xff\xff\xff\xff"
    b = s.encode()
    return struct.pack(">I", len(b)) + b


def row_hash(tenant, prev, r):
    h = hashlib.sha256()
    h.update(prev)
    h.update(frame("bespin.audit.v1"))
    h.update(frame(tenant))
    h.update(struct.pack(">q", r["created_at_us"]))
    for name in ("action", "tool_name", "request_id", "outcome", "capability",
                 "target_type", "target_id"):
        h.update(frame(r[name]))
    units = r["units"]
    h.update(struct.pack(">Q", 0xFFFFFFFFFFFFFFFF if units is None else units))
    h.update(base64.b64decode(r["personal_digest"]))
    return h.digest()


def personal_digest(r):
    h = hashlib.sha256()
    h.update(frame("bespin.audit.personal.v1"))
    h.update(base64.b64decode(r["digest_salt"]))
    h.update(frame(r["user_id"]))
    h.update(frame(r["idempotency_key"]))
    return h.digest()


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def check_note(note, public_key, tenant):
    """Returns (size, hash) of a checkpoint whose signature verifies."""
    text, sep, sigs = note.partition("\n\n")
    if not sep:
        fail("checkpoint: no blank line before the signatures")
    text += "\n"
    lines = text.split("\n")
    if lines[0] != f"bespin/{tenant}/audit":
        fail(f"checkpoint: origin {lines[0]!r} is not this tenant's")
    pk = public_key.public_bytes_raw()
    key_id = hashlib.sha256(KEY_NAME.encode() + b"\n\x01" + pk).digest()[:4]
    for line in sigs.splitlines():
        if not line.startswith("\u2014 "):
            fail(f"checkpoint: bad signature line {line!r}")
        name, blob = line[2:].split(" ", 1)
        blob = base64.b64decode(blob)
        if name != KEY_NAME or blob[:4] != key_id:
            continue
        try:
            public_key.verify(blob[4:], text.encode())
        except InvalidSignature:
            fail("checkpoint: the signature does not verify")
        return int(lines[1]), base64.b64decode(lines[2])
    fail("checkpoint: no signature by the expected key")


def verify_export(path, key_b64, note_path):
    public_key = Ed25519PublicKey.from_public_bytes(base64.b64decode(key_b64))
    rows = [json.loads(line) for line in open(path) if line.strip()]
    if not rows:
        fail("no rows")
    tenant = rows[0]["tenant_id"]
    prev = base64.b64decode(rows[0]["prev_hash"])
    expected_n = rows[0]["n"]
    for r in rows:
        if r["tenant_id"] != tenant:
            fail(f"row {r['n']}: another tenant's row")
        if r["n"] != expected_n:
            fail(f"row {r['n']}: gap, expected row {expected_n}")
        if base64.b64decode(r["prev_hash"]) != prev:
            fail(f"row {r['n']}: broken link (prev_hash is not the previous row's hash)")
        if r["digest_salt"] is not None and personal_digest(r) != base64.b64decode(r["personal_digest"]):
            fail(f"row {r['n']}: altered personal fields (their digest does not match)")
        h = row_hash(tenant, prev, r)
        if h != base64.b64decode(r["row_hash"]):
            fail(f"row {r['n']}: altered row (row_hash does not match its contents)")
        prev = h
        expected_n += 1
    if note_path is None:
        print(f"ok: exported rows {rows[0]['n']}..{rows[-1]['n']} link up")
        return
    size, head = check_note(open(note_path).read(), public_key, tenant)
    if size != expected_n or head != prev:
        fail(f"checkpoint of size {size} does not match the exported rows up to {expected_n - 1}")
    print(f"ok: exported rows {rows[0]['n']}..{rows[-1]['n']} verify against the signed checkpoint of size {size}")


def main():
    if sys.argv[1] == "--export":
        verify_export(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None)
        return
    proof = json.load(open(sys.argv[1]))
    key_b64 = sys.argv[2] if len(sys.argv) > 2 else proof["public_key"]["ed25519_public_key"]
    public_key = Ed25519PublicKey.from_public_bytes(base64.b64decode(key_b64))
    tenant = proof["tenant_id"]
    prev = base64.b64decode(proof["prev_hash"])
    rows = proof["rows"]
    if not rows:
        fail("no rows")
    expected_n = rows[0]["n"]
    for r in rows:
        if r["n"] != expected_n:
            fail(f"row {r['n']}: gap, expected row {expected_n}")
        if base64.b64decode(r["prev_hash"]) != prev:
            fail(f"row {r['n']}: broken link (prev_hash is not the previous row's hash)")
        h = row_hash(tenant, prev, r)
        if h != base64.b64decode(r["row_hash"]):
            fail(f"row {r['n']}: altered row (row_hash does not match its contents)")
        prev = h
        expected_n += 1
    if proof["checkpoint"] is None:
        print(f"ok: rows {rows[0]['n']}..{rows[-1]['n']} link up; no checkpoint signed yet")
        return
    size, head = check_note(proof["checkpoint"], public_key, tenant)
    if size != expected_n or head != prev:
        fail(f"checkpoint of size {size} does not match the rows up to {expected_n - 1}")
    print(f"ok: rows {rows[0]['n']}..{rows[-1]['n']} verify against the signed checkpoint of size {size}")


if __name__ == "__main__":
    main()

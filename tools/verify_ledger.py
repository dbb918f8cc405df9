#!/usr/bin/env python3
"""Check an AlphaLab ledger's integrity without Rust: the hash chain and the seal's signature.

    python3 tools/verify_ledger.py <ledger.jsonl> --public-key <base64>

Needs the standard library and `cryptography` (pip install cryptography). Checks that every
line's `prev` is the SHA-256 of the line before (64 zeros for the first), that the seal's
`entries` and `head` match the candle lines, and that the seal's Ed25519 signature verifies
with the public key (GET /api/ledger/keys lists them). It does not replay the engine: run
`alphalab verify-ledger` for the metrics and the evidence.

Exit codes: 0 the ledger is intact; 1 a line fails (printed as `line <n>: <why>`, 1-based);
2 the file or the key cannot be read.

What is signed is the seal object's RFC 8785 form without its `signature` member. A seal line
is itself in RFC 8785 form, `{"prev":"<hex>","seal":{...}}`, and `signature` sorts last among
the seal's members, so the signed bytes are the seal object's text up to `,"signature":` with
its closing `}` put back: this script takes them from the line's bytes (no JSON re-encoding).
"""

import argparse
import base64
import hashlib
import json
import sys

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
except ImportError:  # pragma: no cover
    print("this tool needs the `cryptography` package: pip install cryptography", file=sys.stderr)
    sys.exit(2)

GENESIS = "0" * 64


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stated(line: bytes, *path):
    """A member of a line's JSON object, or None when the line does not read."""
    try:
        value = json.loads(line)
        for name in path:
            value = value[name]
        return value
    except (ValueError, KeyError, TypeError):
        return None


def broken_link(lines, i):
    """The failure for a `prev` mismatch at 0-based line i: the line before it when line i is
    intact (the next line, or the seal's head, still has its hash), else line i."""
    if i > 0:
        if i + 1 < len(lines):
            changed_before = stated(lines[i + 1], "prev") == sha256_hex(lines[i])
        else:
            changed_before = stated(lines[i], "seal", "head") != sha256_hex(lines[i - 1])
        if changed_before:
            return i, "changed: its SHA-256 is not the next line's `prev`"
    return i + 1, "`prev` is not the SHA-256 of the line before"


def signed_bytes(line: bytes):
    """The seal's RFC 8785 form without `signature`, cut from the seal line's bytes."""
    prefix_end = len(b'{"prev":"') + 64 + len(b'","seal":')
    if not (line.startswith(b'{"prev":"') and line[prefix_end - 9:prefix_end] == b'","seal":'
            and line.endswith(b"}}")):
        return None
    seal = line[prefix_end:-1]
    cut = seal.rfind(b',"signature":"')
    if cut < 0 or not seal[cut:].endswith(b'"}'):
        return None
    return seal[:cut] + b"}"


def verify(data: bytes, public_key: Ed25519PublicKey):
    """None when intact, else (line number, why)."""
    if data.endswith(b"\n"):
        data = data[:-1]
    lines = data.split(b"\n")
    prev = GENESIS
    entries = 0
    last_entry = None
    for i, line in enumerate(lines):
        at = i + 1
        try:
            value = json.loads(line)
        except ValueError as e:
            return at, f"not JSON ({e})"
        if not isinstance(value, dict):
            return at, "not a JSON object"
        if not isinstance(value.get("prev"), str):
            return at, "`prev` is missing"
        if value["prev"] != prev:
            return broken_link(lines, i)
        prev = sha256_hex(line)
        if i == 0:
            if "header" not in value:
                return at, "the first line is not the header"
        elif "seal" in value:
            if at != len(lines):
                return at + 1, "a line after the seal"
            seal = value["seal"]
            head = last_entry if last_entry is not None else sha256_hex(lines[0])
            if seal.get("head") != head:
                return at, "`head` is not the SHA-256 of the last candle line"
            if seal.get("entries") != entries:
                return at, "`entries` is not the number of candle lines"
            message = signed_bytes(line)
            signature = seal.get("signature")
            try:
                if message is None or not isinstance(signature, str):
                    raise InvalidSignature()
                public_key.verify(base64.b64decode(signature, validate=True), message)
            except (InvalidSignature, ValueError):
                return at, "the signature does not verify with this public key"
            return None
        else:
            entries += 1
            last_entry = prev
    return len(lines), "no seal: the ledger is cut short"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ledger", help="the ledger file (JSON Lines), or - for stdin")
    parser.add_argument("--public-key", required=True, help="base64 of the 32-byte Ed25519 key")
    args = parser.parse_args()
    try:
        raw = base64.b64decode(args.public_key, validate=True)
        key = Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as e:
        print(f"unreadable public key: {e}", file=sys.stderr)
        return 2
    try:
        if args.ledger == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(args.ledger, "rb") as f:
                data = f.read()
    except OSError as e:
        print(f"cannot read {args.ledger}: {e}", file=sys.stderr)
        return 2
    failure = verify(data, key)
    if failure is not None:
        print(f"line {failure[0]}: {failure[1]}")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())

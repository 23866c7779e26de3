#!/usr/bin/env python3
"""A stand-in for the age program's decryption (`age -d -i KEY FILE`), on pyrage (rage, the
Rust age): no age binary is installed where the tests run. Only what the standalone restore
script calls: -d, -i KEY, one input file, the plaintext on standard output."""

from __future__ import annotations

import sys

import pyrage


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[0] != "-d" or argv[1] != "-i":
        print("fake age: usage: -d -i KEY FILE", file=sys.stderr)
        return 2
    with open(argv[2], encoding="utf-8") as fh:
        keys = [line.strip() for line in fh if line.strip() and not line.startswith("#")]
    identities = [pyrage.x25519.Identity.from_str(k) for k in keys]
    with open(argv[3], "rb") as fh:
        data = fh.read()
    try:
        sys.stdout.buffer.write(pyrage.decrypt(data, identities))
    except pyrage.DecryptError as exc:
        print(f"age: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

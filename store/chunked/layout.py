"""Where things live in a store directory, as relative POSIX paths (also the keys offsite).

sha256/ab/<digest><suffix>                  whole blobs (the first layout; still read)
packs/ab/<sha256 of the pack file>.pack     chunks, each compressed on its own
manifests/ab/<digest>.<codec>.manifest      an artifact: its chunk list and whole digest
index.sqlite                                where each chunk is (rebuilt from packs)
"""

from __future__ import annotations

import re

from store.codecs import SUFFIXES, Codec

BLOBS = "sha256"
PACKS = "packs"
MANIFESTS = "manifests"
INDEX = "index.sqlite"
PACK_SUFFIX = ".pack"
MANIFEST_SUFFIX = ".manifest"
TMP_PREFIX = ".tmp-"

_HEX = r"[0-9a-f]{64}"
_PACK = re.compile(rf"^{PACKS}/([0-9a-f]{{2}})/({_HEX})\{PACK_SUFFIX}$")
_MANIFEST = re.compile(rf"^{MANIFESTS}/([0-9a-f]{{2}})/({_HEX})\.([a-z+]+)\{MANIFEST_SUFFIX}$")
_BLOB = re.compile(rf"^{BLOBS}/([0-9a-f]{{2}})/({_HEX})(\..+)$")


def blob_rel(digest: str, codec: Codec) -> str:
    return f"{BLOBS}/{digest[:2]}/{digest}{SUFFIXES[Codec(codec)]}"


def pack_rel(name: str) -> str:
    return f"{PACKS}/{name[:2]}/{name}{PACK_SUFFIX}"


def manifest_rel(digest: str, codec: Codec) -> str:
    return f"{MANIFESTS}/{digest[:2]}/{digest}.{Codec(codec).value}{MANIFEST_SUFFIX}"


def parse_rel(rel: str) -> tuple[str, str, Codec | None] | None:
    """("blob"|"pack"|"manifest", digest or pack name, codec) of a relative path; None for
    anything else (a path that could leave the store, a temp file, the index)."""
    if m := _PACK.fullmatch(rel):
        return ("pack", m[2], None) if m[1] == m[2][:2] else None
    if m := _MANIFEST.fullmatch(rel):
        try:
            codec = Codec(m[3])
        except ValueError:
            return None
        return ("manifest", m[2], codec) if m[1] == m[2][:2] else None
    if m := _BLOB.fullmatch(rel):
        by_suffix = {s: c for c, s in SUFFIXES.items()}
        blob_codec = by_suffix.get(m[3])
        ok = blob_codec is not None and m[1] == m[2][:2]
        return ("blob", m[2], blob_codec) if ok else None
    return None

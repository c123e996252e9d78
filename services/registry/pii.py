"""Clear PII at rest: AES-256-GCM under a key ring, each ciphertext bound to its row.

The key ring is a setting such as `"k2:BASE64KEY,k1:BASE64KEY"`: the first entry is the
current key, used for every encryption; all entries can decrypt, so old rows stay readable
while they are rotated onto the current key. A stored value is `(key_id, nonce || ciphertext)`
with a fresh 12-byte random nonce per encryption.

The associated data (`aad`) names the row and column a value belongs to, e.g.
`f"{person_id}:name".encode()`: a ciphertext copied to another row or column fails to
decrypt instead of silently showing another person's data.

Make a key with `python -m services.registry.pii --new-key [--key-id k3]`. Rotating onto it:
put it first in `REGISTRY_PII_KEYS` (the old keys after it) and restart the registry, so new
values are sealed under it while old ones still open; then `python -m services.registry.pii
--rotate` re-encrypts every stored value onto the current key, in short transactions, beside
the running service, and prints how many values each key still holds. Once the old keys hold
none, remove them from the ring (docs/security.md, "Secrets and keys").
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import os
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

if TYPE_CHECKING:
    from services.registry.config import RegistrySettings

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16

# Development and tests only: 32 fixed, public bytes (0x00..0x1f). Never use in production.
DEV_PII_KEYS: Final = "dev1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

_KEY_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,32}")


class PiiError(Exception):
    """Stored PII cannot be read: a fault of keys or storage, never of the caller's input."""


class PiiKeyMissing(PiiError):
    """The value was encrypted under a key that is not in the key ring."""

    def __init__(self, key_id: str, known: Sequence[str]) -> None:
        super().__init__(
            f"PII key {key_id!r} is not in the key ring (it holds {', '.join(known)}); "
            "add it back to decrypt values still stored under it"
        )
        self.key_id = key_id


class PiiTampered(PiiError):
    """The value fails authentication: altered, truncated, or bound to another row."""

    def __init__(self, key_id: str) -> None:
        super().__init__(
            f"PII value under key {key_id!r} failed authentication: it was altered, "
            "truncated, or belongs to another row or column"
        )
        self.key_id = key_id


def _decode_key(key_id: str, encoded: str) -> bytes:
    text = encoded.strip()
    try:
        # the URL-safe alphabet (-, _) is accepted too
        standard = text.translate(str.maketrans("-_", "+/")).encode("ascii")
        raw = base64.b64decode(standard, validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ValueError(f"PII key {key_id!r} is not valid base64") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(f"PII key {key_id!r} must be {KEY_BYTES} bytes, got {len(raw)}")
    return raw


def parse_key_ring(spec: str) -> dict[str, bytes]:
    """`"k2:BASE64,k1:BASE64"` → {key_id: key}, in order (first = current). ValueError if
    empty, malformed, duplicated, or any key is not 32 bytes; messages never show keys."""
    ring: dict[str, bytes] = {}
    for position, entry in enumerate(spec.split(","), start=1):
        entry = entry.strip()
        if not entry:
            raise ValueError(f"PII key ring entry {position} is empty")
        key_id, colon, encoded = entry.partition(":")
        key_id = key_id.strip()
        if not colon:
            raise ValueError(f"PII key ring entry {position} must look like 'key_id:base64key'")
        if not _KEY_ID.fullmatch(key_id):
            raise ValueError(
                f"PII key ring entry {position}: key id must be 1-32 letters, digits, _ or -"
            )
        if key_id in ring:
            raise ValueError(f"PII key id {key_id!r} appears twice in the key ring")
        ring[key_id] = _decode_key(key_id, encoded)
    return ring


class PiiCipher:
    """Encrypts under the current key of a key ring, decrypts under any of its keys."""

    def __init__(self, key_ring: str) -> None:
        keys = parse_key_ring(key_ring)
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._current = next(iter(keys))

    @property
    def current_key_id(self) -> str:
        return self._current

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._ciphers)

    @staticmethod
    def generate_key() -> str:
        """Base64 of 32 random bytes, for a new key ring entry."""
        return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")

    def encrypt(self, plaintext: str, aad: bytes) -> tuple[str, bytes]:
        """(current key id, nonce || ciphertext-with-tag)."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self._current].encrypt(nonce, plaintext.encode("utf-8"), aad)
        return self._current, nonce + sealed

    def decrypt(self, key_id: str, blob: bytes, aad: bytes) -> str:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PiiKeyMissing(key_id, self.key_ids)
        if len(blob) < NONCE_BYTES + TAG_BYTES:
            raise PiiTampered(key_id)
        try:
            clear = cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except InvalidTag:
            raise PiiTampered(key_id) from None
        return clear.decode("utf-8")

    def needs_rotation(self, key_id: str) -> bool:
        """True if the value is not under the current key."""
        return key_id != self._current

    def rotate(self, key_id: str, blob: bytes, aad: bytes) -> tuple[str, bytes]:
        """The value re-encrypted under the current key (unchanged if it already is, but
        verified either way)."""
        clear = self.decrypt(key_id, blob, aad)
        if not self.needs_rotation(key_id):
            return key_id, blob
        return self.encrypt(clear, aad)


async def rotate_store(settings: RegistrySettings) -> tuple[int, dict[str, int]]:
    """Re-encrypt the registry's stored values onto the ring's current key: (how many were
    re-encrypted, how many values each key holds afterwards)."""
    from services.registry import pii_store  # the store needs the database; the cipher not
    from shared.db import create_pool

    cipher = PiiCipher(settings.pii_keys)
    pool = await create_pool(settings.database_url, settings.schema_name, max_size=2)
    try:
        done = await pii_store.rotate(pool, cipher)
        rows = await pool.fetch("SELECT key_id, count(*) AS n FROM pii GROUP BY key_id")
    finally:
        await pool.close()
    return done, {r["key_id"]: r["n"] for r in rows}


def _rotate() -> int:
    from services.registry.config import RegistrySettings

    settings = RegistrySettings()
    try:
        done, held = asyncio.run(rotate_store(settings))
    except PiiError as exc:
        print(f"rotation stopped: {exc}", file=sys.stderr)
        return 1
    current = PiiCipher(settings.pii_keys).current_key_id
    print(f"re-encrypted {done} values onto key {current}")
    print("values per key: " + (", ".join(f"{k}={n}" for k, n in sorted(held.items())) or "none"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.registry.pii", description="PII key ring tools"
    )
    parser.add_argument(
        "--new-key", action="store_true", help="print a new random base64 AES-256 key"
    )
    parser.add_argument("--key-id", help="print it as a key ring entry 'KEY_ID:KEY'")
    parser.add_argument(
        "--rotate",
        action="store_true",
        help="re-encrypt every stored value onto the first key of REGISTRY_PII_KEYS "
        "(the registry's settings: REGISTRY_DATABASE_URL, REGISTRY_DB_SCHEMA)",
    )
    args = parser.parse_args(argv)
    if args.rotate:
        return _rotate()
    if not args.new_key:
        parser.print_help(sys.stderr)
        return 2
    key = PiiCipher.generate_key()
    if args.key_id is not None:
        if not _KEY_ID.fullmatch(args.key_id):
            parser.error("--key-id must be 1-32 letters, digits, _ or -")
        print(f"{args.key_id}:{key}")
    else:
        print(key)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

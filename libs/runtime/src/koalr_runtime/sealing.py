"""Sealing of provider credentials: AES-256-GCM with a key id, so keys can rotate.

A sealed value reads ``v1.<key id>.<base64url(nonce || ciphertext+tag)>``. Several keys may be
configured (newest first): the newest seals, any of them opens. The integration id is bound as
associated data, so a sealed key copied onto another integration does not open.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import sys
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = "v1"
_NONCE_BYTES = 12
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class SealingError(Exception):
    """A sealed value could not be opened (tampered, wrong key, unknown key id, malformed)."""


def _b64decode(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.urlsafe_b64decode(padded.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise SealingError("sealed value is not valid base64url") from exc


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Sealer:
    """Seals and opens short secrets with the configured keys."""

    def __init__(self, keys: Mapping[str, bytes], active_key_id: str) -> None:
        if not keys:
            raise ValueError("at least one sealing key is required")
        if active_key_id not in keys:
            raise ValueError(f"active sealing key {active_key_id!r} is not among the keys")
        for key_id, key in keys.items():
            if not _KEY_ID.match(key_id):
                raise ValueError(f"sealing key id {key_id!r} must match {_KEY_ID.pattern}")
            if len(key) != 32:
                raise ValueError(f"sealing key {key_id!r} must be 32 bytes (AES-256)")
        self._aead = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.active_key_id = active_key_id

    @classmethod
    def from_config(cls, config: str) -> Sealer:
        """Parse ``key_id:base64url-key[,key_id:base64url-key...]``; the first entry seals."""
        keys: dict[str, bytes] = {}
        entries = [e.strip() for e in config.split(",") if e.strip()]
        if not entries:
            raise ValueError("KOALR_SEALING_KEYS is empty; set at least one `key_id:key` entry")
        for entry in entries:
            key_id, sep, encoded = entry.partition(":")
            if not sep:
                raise ValueError("each KOALR_SEALING_KEYS entry must look like `key_id:key`")
            try:
                keys[key_id] = _b64decode(encoded)
            except SealingError as exc:
                raise ValueError(f"sealing key {key_id!r} is not valid base64url") from exc
        first = entries[0].partition(":")[0]
        return cls(keys, active_key_id=first)

    def seal(self, plaintext: str, *, context: str) -> str:
        """Encrypt ``plaintext``; ``context`` (e.g. the integration id) must match on open."""
        nonce = os.urandom(_NONCE_BYTES)
        ciphertext = self._aead[self.active_key_id].encrypt(
            nonce, plaintext.encode("utf-8"), context.encode("utf-8")
        )
        return f"{_VERSION}.{self.active_key_id}.{_b64encode(nonce + ciphertext)}"

    def open(self, sealed: str, *, context: str) -> str:
        """Decrypt a sealed value. Raises :class:`SealingError` if anything is off."""
        parts = sealed.split(".")
        if len(parts) != 3 or parts[0] != _VERSION:
            raise SealingError("sealed value has an unknown format")
        _, key_id, body = parts
        aead = self._aead.get(key_id)
        if aead is None:
            raise SealingError(
                f"sealed with key id {key_id!r}, which is not configured; "
                "keep retired keys in KOALR_SEALING_KEYS until every value is resealed"
            )
        raw = _b64decode(body)
        if len(raw) <= _NONCE_BYTES + 16:
            raise SealingError("sealed value is truncated")
        try:
            plaintext = aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode())
        except InvalidTag as exc:
            raise SealingError(
                "sealed value failed authentication: tampered, or sealed for another context"
            ) from exc
        return plaintext.decode("utf-8")

    def needs_reseal(self, sealed: str) -> bool:
        """True when a value was sealed with an older key than the active one."""
        return sealed.split(".")[1:2] != [self.active_key_id]


def generate_key_entry(key_id: str) -> str:
    """A fresh ``key_id:key`` entry for KOALR_SEALING_KEYS."""
    return f"{key_id}:{_b64encode(secrets.token_bytes(32))}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] != "generate":
        sys.stderr.write("usage: python -m koalr_runtime.sealing generate [key_id]\n")
        return 2
    key_id = args[1] if len(args) > 1 else f"k{secrets.token_hex(3)}"
    sys.stdout.write(generate_key_entry(key_id) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

from __future__ import annotations

import base64

import pytest

from koalr_runtime.sealing import Sealer, SealingError, generate_key_entry

CONTEXT = "6f1c1f43-2d0e-4f59-9a36-2f1f6c1c0a11"


@pytest.fixture
def sealer() -> Sealer:
    return Sealer.from_config(generate_key_entry("k2") + "," + generate_key_entry("k1"))


def test_round_trip_and_format(sealer: Sealer) -> None:
    sealed = sealer.seal("crsr_secret_value", context=CONTEXT)
    assert sealed.startswith("v1.k2.")
    assert "crsr_secret_value" not in sealed
    assert sealer.open(sealed, context=CONTEXT) == "crsr_secret_value"


def test_each_seal_uses_a_fresh_nonce(sealer: Sealer) -> None:
    assert sealer.seal("same", context=CONTEXT) != sealer.seal("same", context=CONTEXT)


def test_rotation_newest_seals_any_opens() -> None:
    old_entry = generate_key_entry("k1")
    old = Sealer.from_config(old_entry)
    sealed_with_old = old.seal("key-a", context=CONTEXT)
    rotated = Sealer.from_config(generate_key_entry("k2") + "," + old_entry)
    assert rotated.active_key_id == "k2"
    assert rotated.open(sealed_with_old, context=CONTEXT) == "key-a"
    assert rotated.needs_reseal(sealed_with_old)
    resealed = rotated.seal("key-a", context=CONTEXT)
    assert resealed.startswith("v1.k2.")
    assert not rotated.needs_reseal(resealed)


def test_retired_key_fails_loudly() -> None:
    sealed = Sealer.from_config(generate_key_entry("k1")).seal("x", context=CONTEXT)
    with pytest.raises(SealingError, match="key id 'k1', which is not configured"):
        Sealer.from_config(generate_key_entry("k2")).open(sealed, context=CONTEXT)


def test_tampered_ciphertext_fails_loudly(sealer: Sealer) -> None:
    sealed = sealer.seal("crsr_secret_value", context=CONTEXT)
    prefix, body = sealed.rsplit(".", 1)
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[-1] ^= 0x01
    tampered = prefix + "." + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(SealingError, match="failed authentication"):
        sealer.open(tampered, context=CONTEXT)


def test_sealed_value_is_bound_to_its_context(sealer: Sealer) -> None:
    sealed = sealer.seal("crsr_secret_value", context=CONTEXT)
    with pytest.raises(SealingError, match="sealed for another context"):
        sealer.open(sealed, context="another-integration")


@pytest.mark.parametrize("bad", ["", "v1.k2", "v2.k2.AAAA", "v1.k2.!!!!", "v1.k2.QUJD"])
def test_malformed_values_are_rejected(sealer: Sealer, bad: str) -> None:
    with pytest.raises(SealingError):
        sealer.open(bad, context=CONTEXT)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("", "empty"),
        ("k1", "key_id:key"),
        ("k1:" + base64.urlsafe_b64encode(b"short").decode(), "32 bytes"),
        ("bad id:" + base64.urlsafe_b64encode(b"x" * 32).decode(), "must match"),
    ],
)
def test_bad_key_configuration_is_explained(config: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Sealer.from_config(config)

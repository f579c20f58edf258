from __future__ import annotations

from tests.deploy.config_reference import DOC, render


def test_the_configuration_reference_matches_the_settings() -> None:
    assert DOC.read_text() == render(), "docs/configuration.md is stale; run `make docs`"


def test_every_shared_secret_is_documented_as_required() -> None:
    text = render()
    assert "| `KOALR_JWT_SECRET` | (none) |" in text  # or KOALR_JWKS_URL: one is required
    assert "| `KOALR_JWKS_URL` | (none) |" in text
    assert "| `KOALR_SEALING_KEYS` | **required** |" in text
    assert "| `CURSOR_API_BASE_URL` | `https://api.cursor.com` |" in text

"""Settings refuse a bad value naming the variable, and never with a secret in the message: the message
goes to the terminal and the container's log."""

from __future__ import annotations

import pytest

from stack.settings import Settings

SECRET = "S3cretPart"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ABH_CHAT_WEBHOOK_URL", f"hooks.slack.com/services/T0001/B0002/{SECRET}"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", f"otel.example.com?api-key={SECRET}"),
        ("DATABASE_URL", f"postgresql://abh:{SECRET}/x@app-db:5432/abh"),
        ("DATABASE_URL", f"mysql://abh:{SECRET}@db/abh"),
    ],
)
def test_a_bad_value_that_may_hold_a_secret_is_named_not_shown(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"invalid settings: {variable}: expected") as refused:
        Settings.from_env({variable: value})
    assert SECRET not in str(refused.value)


def test_a_database_url_with_its_password_percent_encoded_is_taken() -> None:
    url = f"postgresql://abh:{SECRET}%2Fx@app-db:5432/abh"
    assert Settings.from_env({"DATABASE_URL": url}).database_url == url
    assert Settings.from_env({"DATABASE_URL": "postgresql:///abh?host=/run/pg"}).database_url


def test_codec_origins_are_exact_origins_never_a_wildcard() -> None:
    origins = Settings.from_env(
        {"ABH_CODEC_CORS_ORIGINS": "https://ui.example.com:8080, http://localhost:8233/"}
    )
    assert origins.cors_origins == ("https://ui.example.com:8080", "http://localhost:8233")
    for bad in ("*", "https://ui.example.com/path", "ui.example.com", "https://*.example.com"):
        with pytest.raises(ValueError, match=r"ABH_CODEC_CORS_ORIGINS: .* is not an origin"):
            Settings.from_env({"ABH_CODEC_CORS_ORIGINS": bad})


def test_a_codec_token_read_from_a_file_loses_its_newline() -> None:
    token = Settings.from_env({"ABH_CODEC_TOKEN": "s3cret\n"}).codec_token
    assert token is not None and token.get_secret_value() == "s3cret"

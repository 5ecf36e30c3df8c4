"""ABH_API_TOKENS: `scope=token` pairs, a scope given more than once, a token holding several scopes; a
bad value is refused naming the variable, read from the process environment as the server reads it."""

from __future__ import annotations

import pytest

from stack.settings import Settings


def test_pairs_become_tokens_with_their_scopes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABH_API_TOKENS", " intake=t1, read=t1 ,read=t2,act=t3")
    assert Settings.from_env().api_tokens == {
        "t1": frozenset({"intake", "read"}),
        "t2": frozenset({"read"}),
        "t3": frozenset({"act"}),
    }


def test_unset_or_empty_means_no_token() -> None:
    assert Settings.from_env({}).api_tokens == {}
    assert Settings.from_env({"ABH_API_TOKENS": "  "}).api_tokens == {}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("admin=t1", r"pair 1: unknown scope \(scope=token, the scopes being intake, act, read\)"),
        ("read=t1,s3cret-token=act", r"pair 2: unknown scope \(scope=token"),
        ("s3cret-token", "expected scope=token pairs; pair 1 has no scope= or no token"),
        ("read=", "expected scope=token pairs; pair 1 has no scope= or no token"),
        ("read=t1,,act=t2", "expected scope=token pairs; pair 2 has no scope= or no token"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("ABH_API_TOKENS", value)
    with pytest.raises(ValueError, match=f"invalid settings: ABH_API_TOKENS: {message}") as refused:
        Settings.from_env()
    assert "s3cret" not in str(refused.value)

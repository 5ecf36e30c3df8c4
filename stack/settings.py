"""Every setting, read once from the environment into one model: typed, defaulted and checked here.

A bad value fails at start naming the variable (`SMTP_PORT: ...`), not at the first notification. The
Temporal connection itself comes from Temporal's own environment configuration (`TEMPORAL_ADDRESS`,
`TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, TLS, profiles), read by the SDK.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Self
from urllib.parse import urlsplit

from pydantic import (
    BeforeValidator,
    Field,
    PositiveFloat,
    PrivateAttr,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from temporalio.envconfig import ClientConfigProfile

from stack.encryption import PayloadKey, parse_keys
from workflows.models import TASK_QUEUE
from workflows.safe_text import one_line

PROJECT_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_DIR / ".data"
UI_URL = "http://localhost:8233"
CODEC_PORT = 8234
LOOPBACK = ("127.0.0.1", "localhost", "::1")
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
# Set while settings are read from a given mapping (tests, tools) rather than the process environment.
_GIVEN_ONLY: ContextVar[bool] = ContextVar("given_only", default=False)


def _blank_is_unset(value: Any) -> Any:
    """An empty (or whitespace) variable counts as unset, as shells and compose files leave them."""
    return None if isinstance(value, str) and not value.strip() else value


def _or(default: Any) -> Any:
    def blank_is_default(value: Any) -> Any:
        return default if _blank_is_unset(value) is None else value

    return blank_is_default


def _flag(value: Any) -> Any:
    """true/false/yes/no/on/off/1/0, or `auto` (and empty) for the default."""
    value = _blank_is_unset(value)
    if not isinstance(value, str):
        return value
    word = value.strip().lower()
    return None if word == "auto" else word


def _url(value: Any) -> Any:
    """Never echoed: a chat webhook's URL is its credential, and an endpoint may carry a key."""
    value = _blank_is_unset(value)
    if isinstance(value, str) and not value.strip().startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL (the value is not shown: it may hold a secret)")
    return value.strip() if isinstance(value, str) else value


def _stripped(value: Any) -> Any:
    """A secret read from a file keeps its trailing newline; the newline is no part of it."""
    value = _blank_is_unset(value)
    return value.strip() if isinstance(value, str) else value


def _database_url(value: Any) -> Any:
    """Checked here, since asyncpg's own parse error quotes parts of the password. Never echoed."""
    value = _blank_is_unset(value)
    if not isinstance(value, str):
        return value
    value = value.strip()
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(
            "expected postgresql://user:password@host:port/database, with any / @ : # in the password "
            "percent-encoded (the value is not shown: it holds the password)"
        )
    return value


Text = Annotated[str | None, BeforeValidator(_blank_is_unset)]
Flag = Annotated[bool | None, BeforeValidator(_flag)]
Url = Annotated[str | None, BeforeValidator(_url)]
Port = Annotated[int, Field(gt=0, lt=65536)]
FilePath = Annotated[Path | None, BeforeValidator(_blank_is_unset)]
Seconds = Annotated[PositiveFloat, BeforeValidator(_blank_is_unset)]

API_SCOPES = ("intake", "act", "read")
"""What an API token may do: open cases, act on them, read them."""


def _api_tokens(value: Any) -> Any:
    """`scope=token` pairs, comma-separated, into {token: scopes}; a token may hold several scopes."""
    value = _blank_is_unset(value)
    if not isinstance(value, str):
        return value or {}
    tokens: dict[str, frozenset[str]] = {}
    for n, pair in enumerate(value.split(","), 1):
        scope, sep, token = (part.strip() for part in pair.partition("="))
        if not sep or not token:
            # Never echoed: what lacks its `=` may well be a token.
            raise ValueError(f"expected scope=token pairs; pair {n} has no scope= or no token")
        if scope not in API_SCOPES:
            # Not echoed either: written token=scope, the `scope` is the token.
            scopes = ", ".join(API_SCOPES)
            raise ValueError(f"pair {n}: unknown scope (scope=token, the scopes being {scopes})")
        tokens[token] = tokens.get(token, frozenset()) | {scope}
    return tokens


ApiTokens = Annotated[dict[str, frozenset[str]], NoDecode, BeforeValidator(_api_tokens)]


def _keys(value: Any) -> Any:
    value = _blank_is_unset(value)
    return () if value is None else parse_keys(value) if isinstance(value, str) else value


ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


def _origins(value: Any) -> Any:
    """Exact origins (scheme://host[:port]): a page's origin is matched, never a wildcard, since the
    codec server answers with credentials allowed."""
    value = _blank_is_unset(value)
    if not isinstance(value, str):
        return value
    origins = tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
    for origin in origins:
        if not ORIGIN.fullmatch(origin):
            shown = one_line(origin, 80)
            raise ValueError(f"{shown!r} is not an origin: expected scheme://host[:port], no *")
    return origins


# NoDecode: read as the text they are, not as JSON.
PayloadKeys = Annotated[tuple[PayloadKey, ...], NoDecode, BeforeValidator(_keys)]
Origins = Annotated[tuple[str, ...] | None, NoDecode, BeforeValidator(_origins)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", validate_by_name=False)

    task_queue: Annotated[str, BeforeValidator(_or(TASK_QUEUE))] = Field(TASK_QUEUE, alias="ABH_TASK_QUEUE")
    database_url: Annotated[str | None, BeforeValidator(_database_url)] = Field(None, alias="DATABASE_URL")
    policy_file: Annotated[Path | None, BeforeValidator(_blank_is_unset)] = Field(
        None, alias="ABH_POLICY_FILE"
    )
    data_dir: Annotated[Path, BeforeValidator(_or(DATA_DIR))] = Field(DATA_DIR, alias="ABH_DATA_DIR")
    ui_url: Annotated[str, BeforeValidator(_or(UI_URL))] = Field(UI_URL, alias="ABH_UI_URL")

    smtp_host: Text = Field(None, alias="SMTP_HOST")
    smtp_port: Annotated[Port | None, BeforeValidator(_blank_is_unset)] = Field(None, alias="SMTP_PORT")
    smtp_from: Text = Field(None, alias="SMTP_FROM")
    smtp_username: Text = Field(None, alias="SMTP_USERNAME")
    smtp_password: Text = Field(None, alias="SMTP_PASSWORD")
    smtp_starttls: Flag = Field(None, alias="SMTP_STARTTLS")
    smtp_ssl: Flag = Field(None, alias="SMTP_SSL")
    smtp_reply_to: Text = Field(None, alias="SMTP_REPLY_TO")
    smtp_timeout: Annotated[PositiveFloat, BeforeValidator(_blank_is_unset)] = Field(
        15.0, alias="SMTP_TIMEOUT"
    )
    smtp_ca_file: Text = Field(None, alias="SMTP_CA_FILE")

    chat_webhook_url: Url = Field(None, alias="ABH_CHAT_WEBHOOK_URL")
    page_webhook_url: Url = Field(None, alias="ABH_PAGE_WEBHOOK_URL")
    page_routing_key: Text = Field(None, alias="ABH_PAGE_ROUTING_KEY")
    page_source: Text = Field(None, alias="ABH_PAGE_SOURCE")
    call_webhook_url: Url = Field(None, alias="ABH_CALL_WEBHOOK_URL")
    webhook_secret: Text = Field(None, alias="ABH_WEBHOOK_SECRET")
    webhook_timeout: Seconds = Field(10.0, alias="ABH_WEBHOOK_TIMEOUT")
    chat_idempotent: Flag = Field(None, alias="ABH_CHAT_IDEMPOTENT")
    page_idempotent: Flag = Field(None, alias="ABH_PAGE_IDEMPOTENT")
    call_idempotent: Flag = Field(None, alias="ABH_CALL_IDEMPOTENT")

    # Worker tuning: defaults fit a 2-core machine with cases that mostly sleep (docs/performance.md).
    max_cached_workflows: Annotated[int, Field(ge=0), BeforeValidator(_or(1000))] = Field(
        1000, alias="ABH_MAX_CACHED_WORKFLOWS"
    )
    max_concurrent_workflow_tasks: Annotated[int, Field(ge=2), BeforeValidator(_or(100))] = Field(
        100, alias="ABH_MAX_CONCURRENT_WORKFLOW_TASKS"
    )
    max_concurrent_activities: Annotated[int, Field(ge=1), BeforeValidator(_or(100))] = Field(
        100, alias="ABH_MAX_CONCURRENT_ACTIVITIES"
    )
    max_concurrent_local_activities: Annotated[int, Field(ge=1), BeforeValidator(_or(100))] = Field(
        100, alias="ABH_MAX_CONCURRENT_LOCAL_ACTIVITIES"
    )
    database_pool_size: Annotated[int, Field(ge=2), BeforeValidator(_or(20))] = Field(
        20, alias="ABH_DATABASE_POOL_SIZE"
    )
    metrics_port: Annotated[Port | None, BeforeValidator(_blank_is_unset)] = Field(
        None, alias="ABH_METRICS_PORT"
    )
    metrics_host: Annotated[str, BeforeValidator(_or("127.0.0.1"))] = Field(
        "127.0.0.1", alias="ABH_METRICS_HOST"
    )
    gauge_interval: Seconds = Field(15.0, alias="ABH_GAUGE_INTERVAL")
    otlp_endpoint: Url = Field(None, alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    shutdown_grace: Seconds = Field(20.0, alias="ABH_SHUTDOWN_GRACE")

    payload_keys: PayloadKeys = Field((), alias="ABH_PAYLOAD_KEYS")
    codec_host: Annotated[str, BeforeValidator(_or("127.0.0.1"))] = Field("127.0.0.1", alias="ABH_CODEC_HOST")
    codec_port: Annotated[Port, BeforeValidator(_or(CODEC_PORT))] = Field(CODEC_PORT, alias="ABH_CODEC_PORT")
    codec_url: Url = Field(None, alias="ABH_CODEC_URL")
    codec_token: Annotated[SecretStr | None, BeforeValidator(_stripped)] = Field(
        None, alias="ABH_CODEC_TOKEN"
    )
    codec_origins: Origins = Field(None, alias="ABH_CODEC_CORS_ORIGINS")
    api_tokens: ApiTokens = Field(default_factory=dict, alias="ABH_API_TOKENS")
    zendesk_secret: Text = Field(None, alias="ABH_ZENDESK_SECRET")
    jira_secret: Text = Field(None, alias="ABH_JIRA_SECRET")
    replay_window: Seconds = Field(300.0, alias="ABH_WEBHOOK_REPLAY_WINDOW")
    answer_within: Seconds = Field(20.0, alias="ABH_API_ANSWER_WITHIN")

    _temporal: ClientConfigProfile = PrivateAttr(default_factory=ClientConfigProfile)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,) if _GIVEN_ONLY.get() else (init_settings, env_settings)

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.smtp_host and not self.smtp_from:
            raise ValueError("SMTP_FROM is required when SMTP_HOST is set")
        if self.page_webhook_url and not self.page_routing_key:
            raise ValueError("ABH_PAGE_ROUTING_KEY is required when ABH_PAGE_WEBHOOK_URL is set")
        if self.codec_token is None and self.codec_host not in LOOPBACK:
            raise ValueError("ABH_CODEC_TOKEN is required when ABH_CODEC_HOST is not a loopback address")
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings of `env` (the process environment when None); ValueError naming each bad one."""
        token = _GIVEN_ONLY.set(env is not None)
        try:
            settings = cls() if env is None else cls.model_validate(dict(env))
        except ValidationError as err:
            raise ValueError(f"invalid settings: {_named(err)}") from None
        finally:
            _GIVEN_ONLY.reset(token)
        if env is None:
            settings._temporal = ClientConfigProfile.load()
        return settings

    @property
    def temporal(self) -> ClientConfigProfile:
        return self._temporal

    @property
    def embedded_temporal(self) -> bool:
        """No address from TEMPORAL_ADDRESS or a Temporal config profile: run the dev server."""
        return not self.temporal.address

    @property
    def embedded_database(self) -> bool:
        return not self.database_url

    @property
    def codec_endpoint(self) -> str:
        """Where the Web UI and the CLI reach the codec server."""
        return self.codec_url or f"http://{self.codec_host}:{self.codec_port}"

    @property
    def cors_origins(self) -> tuple[str, ...]:
        """Origins whose pages may call the codec server: the Web UI's, unless set."""
        return self.codec_origins or (self.ui_url.rstrip("/"),)


def _named(err: ValidationError) -> str:
    """Each error as `VARIABLE: what is wrong`."""
    parts = []
    for e in err.errors(include_url=False, include_input=False):
        message = one_line(e["msg"].removeprefix("Value error, "), 300)
        where = ".".join(str(p) for p in e["loc"])
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)

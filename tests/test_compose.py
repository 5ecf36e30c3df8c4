"""The container deployment, checked without a Docker engine: docker-compose.yml against the Compose
schema and for the facts the stack depends on, and the Dockerfile for what it runs and as whom."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML  # ships with check-jsonschema (dev extras)
from temporalio.common import SearchAttributeIndexedValueType as IndexedType

from workflows.search import ALL_KEYS

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

TEMPORAL = "temporal:7233"
APP_DATABASE_URL = "postgresql://abh:abh@app-db:5432/abh"

# The --type spelling of `temporal operator search-attribute create`.
CLI_TYPE = {
    IndexedType.TEXT: "Text",
    IndexedType.KEYWORD: "Keyword",
    IndexedType.INT: "Int",
    IndexedType.DOUBLE: "Double",
    IndexedType.BOOL: "Bool",
    IndexedType.DATETIME: "Datetime",
    IndexedType.KEYWORD_LIST: "KeywordList",
}

# `${VAR:-default}` / `${VAR-default}`: what Compose substitutes when VAR is unset.
INTERPOLATION = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = YAML(typ="safe", pure=True).load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


def with_defaults(value: object) -> str:
    return INTERPOLATION.sub(r"\1", str(value))


def environment(service: dict[str, Any]) -> dict[str, str]:
    """The service's environment with defaults substituted, whether written as a map or a list."""
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): with_defaults(v) for k, v in env.items()}


def dependencies(service: dict[str, Any]) -> dict[str, str]:
    """depends_on as {service: condition}; the short list form means service_started."""
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def published(service: dict[str, Any]) -> set[tuple[str, str]]:
    """(host port, container port) pairs from short ("[ip:]host:container") or long port syntax."""
    pairs = set()
    for port in service.get("ports", []):
        if isinstance(port, dict):
            pairs.add((with_defaults(port["published"]), with_defaults(port["target"])))
        else:
            *_, host, container = with_defaults(port).split(":")
            pairs.add((host, container.split("/")[0]))
    return pairs


def shell_text(service: dict[str, Any]) -> str:
    """entrypoint + command as one shell text, line continuations joined."""
    parts: list[str] = []
    for key in ("entrypoint", "command"):
        value = service.get(key, [])
        parts.extend([value] if isinstance(value, str) else [str(v) for v in value])
    return re.sub(r"\\\n\s*", " ", "\n".join(parts))


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, comments dropped and continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, args = line.partition(" ")
            instructions.append((keyword.upper(), args.strip()))
    return instructions


def check_jsonschema() -> str:
    beside = Path(sys.executable).parent / "check-jsonschema"
    found = str(beside) if beside.exists() else shutil.which("check-jsonschema")
    if not found:
        pytest.fail("check-jsonschema not found; install the dev extras: pip install -e '.[dev]'")
    return found


def test_compose_file_is_valid_against_the_compose_schema() -> None:
    result = subprocess.run(
        [check_jsonschema(), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"check-jsonschema failed:\n{result.stdout}\n{result.stderr}"


def test_compose_file_uses_the_compose_spec_without_a_version_key(compose: dict[str, Any]) -> None:
    assert "version" not in compose
    assert {"postgresql", "temporal", "temporal-ui", "temporal-admin-tools", "app-db", "worker"} <= set(
        compose["services"]
    )


def test_worker_is_built_from_the_dockerfile_and_pointed_at_the_stack(services: dict[str, Any]) -> None:
    worker = services["worker"]
    build = worker["build"]
    if isinstance(build, str):
        build = {"context": build}
    context, dockerfile = build.get("context", "."), build.get("dockerfile", "Dockerfile")
    assert (ROOT / context / dockerfile).resolve() == DOCKERFILE

    env = environment(worker)
    assert env["TEMPORAL_ADDRESS"] == TEMPORAL
    assert env["TEMPORAL_NAMESPACE"] == "default"
    assert env["DATABASE_URL"] == APP_DATABASE_URL


def test_worker_starts_after_temporal_the_app_database_and_the_search_attributes(
    services: dict[str, Any],
) -> None:
    deps = dependencies(services["worker"])
    assert deps["temporal"] in {"service_started", "service_healthy"}
    assert deps["app-db"] == "service_healthy"
    assert deps["temporal-admin-tools"] == "service_completed_successfully"
    assert "healthcheck" in services["app-db"]
    if deps["temporal"] == "service_healthy":
        assert "healthcheck" in services["temporal"]


def test_the_api_runs_starter_serve_from_the_worker_image_on_the_same_stack(services: dict[str, Any]) -> None:
    api = services["api"]
    assert api["image"] == services["worker"]["image"]
    assert api["command"][:3] == ["python", "starter.py", "serve"]
    assert "--host" in api["command"] and api["command"][api["command"].index("--host") + 1] == "0.0.0.0"
    env = environment(api)
    assert (env["TEMPORAL_ADDRESS"], env["DATABASE_URL"]) == (TEMPORAL, APP_DATABASE_URL)
    assert env["ABH_API_TOKENS"] == "", "tokens come from the host environment only"
    assert "worker" in dependencies(api)


def test_every_service_of_the_project_that_talks_to_temporal_has_the_payload_keys(
    services: dict[str, Any],
) -> None:
    """A process without the keys would start cases in clear and fail to read the encrypted ones."""
    ours = {name: s for name, s in services.items() if s.get("image") == services["worker"]["image"]}
    assert {"worker", "api"} <= set(ours)
    for name, service in ours.items():
        raw = service.get("environment", {})
        assert raw.get("ABH_PAYLOAD_KEYS") == "${ABH_PAYLOAD_KEYS:-}", name


def test_worker_reads_policies_from_a_read_only_mount(services: dict[str, Any]) -> None:
    assert "./policies:/app/policies:ro" in services["worker"]["volumes"]


def test_temporal_and_the_application_have_separate_postgresql_databases(services: dict[str, Any]) -> None:
    temporal_env = environment(services["temporal"])
    assert temporal_env["DB"] == "postgres12"
    assert temporal_env["POSTGRES_SEEDS"] == "postgresql"
    assert dependencies(services["temporal"])["postgresql"] == "service_healthy"
    assert ("7233", "7233") in published(services["temporal"])

    db_url_host = APP_DATABASE_URL.split("@", 1)[1].split(":", 1)[0]
    assert db_url_host == "app-db" != temporal_env["POSTGRES_SEEDS"]
    for name in ("postgresql", "app-db"):
        db = services[name]
        assert with_defaults(db["image"]) == "postgres:16"
        assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    volumes = [{v.split(":", 1)[0] for v in services[name]["volumes"]} for name in ("postgresql", "app-db")]
    assert volumes[0].isdisjoint(volumes[1])


def test_web_ui_is_published_on_8233_like_the_embedded_one(services: dict[str, Any]) -> None:
    ui = services["temporal-ui"]
    assert ("8233", "8080") in published(ui)
    assert environment(ui)["TEMPORAL_ADDRESS"] == TEMPORAL


def test_admin_tools_registers_every_case_search_attribute_with_its_type(services: dict[str, Any]) -> None:
    script = shell_text(services["temporal-admin-tools"])
    creates = [line for line in script.splitlines() if "temporal operator search-attribute create" in line]
    assert len(creates) == 1, script
    create = creates[0]
    assert "--namespace default" in create
    assert f"--address {TEMPORAL}" in create

    registered = dict(re.findall(r"--name\s+(\w+)\s+--type\s+(\w+)", create))
    expected = {key.name: CLI_TYPE[key.indexed_value_type] for key in ALL_KEYS}
    assert len(expected) == 9
    assert registered == expected
    # SQL visibility (the compose stack's PostgreSQL, the dev server's SQLite) has three Bool columns.
    assert list(registered.values()).count("Bool") <= 3


def test_admin_tools_is_a_one_shot_that_tolerates_a_rerun(services: dict[str, Any]) -> None:
    admin = services["temporal-admin-tools"]
    assert str(admin.get("restart", "no")) == "no"
    script = shell_text(admin)
    # A re-run finds the attributes listed and succeeds without creating them again.
    assert "temporal operator search-attribute list" in script
    for key in ALL_KEYS:
        assert script.count(key.name) >= 2, key.name


def test_dockerfile_runs_worker_py_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions()
    keywords = [keyword for keyword, _ in instructions]

    assert [a for k, a in instructions if k == "FROM"] == ["python:3.11-slim"]
    cmd = [a for k, a in instructions if k == "CMD"][-1]
    assert json.loads(cmd) == ["python", "worker.py"]

    users = [a for k, a in instructions if k == "USER"]
    assert users, "the image must switch to a non-root USER"
    user = users[-1].split(":", 1)[0]
    assert user not in {"root", "0"}
    assert max(i for i, k in enumerate(keywords) if k == "USER") < max(
        i for i, k in enumerate(keywords) if k == "CMD"
    )


def test_dockerfile_installs_dependencies_before_copying_the_sources() -> None:
    copies = [a for k, a in dockerfile_instructions() if k == "COPY"]
    first_pyproject = next(i for i, a in enumerate(copies) if a.startswith("pyproject.toml"))
    everything = next(i for i, a in enumerate(copies) if a.split()[0] == ".")
    assert first_pyproject < everything
    runs = " ".join(a for k, a in dockerfile_instructions() if k == "RUN")
    assert "pip install ." in runs
    assert "[dev]" not in runs


def test_build_context_leaves_out_local_state() -> None:
    ignored = {line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()}
    assert {".git", ".venv", ".data"} <= ignored


def test_every_published_port_is_bound_to_loopback(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for port in service.get("ports", []):
            assert isinstance(port, str) and with_defaults(port).startswith("127.0.0.1:"), (name, port)


def test_prometheus_scrapes_every_worker_on_its_metrics_port(services: dict[str, Any]) -> None:
    worker = environment(services["worker"])
    assert worker["ABH_METRICS_HOST"] == "0.0.0.0"  # inside the compose network only: not published
    assert "ports" not in services["worker"]
    config = YAML(typ="safe", pure=True).load((ROOT / "deploy" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    (discovery,) = job["dns_sd_configs"]
    assert discovery["names"] == ["worker"] and discovery["port"] == int(worker["ABH_METRICS_PORT"])
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in services["prometheus"]["volumes"]
    probe = " ".join(services["worker"]["healthcheck"]["test"])
    assert f"127.0.0.1:{worker['ABH_METRICS_PORT']}/readyz" in probe


def test_grafana_loads_the_case_dashboard_over_that_prometheus(services: dict[str, Any]) -> None:
    grafana = ROOT / "deploy" / "grafana"
    (source,) = YAML(typ="safe", pure=True).load(
        (grafana / "provisioning/datasources/prometheus.yaml").read_text()
    )["datasources"]
    assert source["url"] == "http://prometheus:9090"
    (provider,) = YAML(typ="safe", pure=True).load(
        (grafana / "provisioning/dashboards/abh.yaml").read_text()
    )["providers"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in services["grafana"]["volumes"]}
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    dashboard = json.loads((grafana / "dashboards" / "abh-cases.json").read_text())
    assert {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]} == {source["uid"]}


def test_a_stopping_worker_is_given_longer_than_its_shutdown_grace(services: dict[str, Any]) -> None:
    worker = services["worker"]
    grace = float(environment(worker)["ABH_SHUTDOWN_GRACE"])
    assert int(str(worker["stop_grace_period"]).removesuffix("s")) > grace

"""Links into the Temporal Web UI, built in one place: the namespace is the client's (TEMPORAL_NAMESPACE)."""

from __future__ import annotations

from urllib.parse import quote


def case_url(ui_url: str, namespace: str, workflow_id: str) -> str:
    """The Web UI page of one case."""
    return (
        f"{ui_url.rstrip('/')}/namespaces/{quote(namespace, safe='')}/workflows/{quote(workflow_id, safe='')}"
    )

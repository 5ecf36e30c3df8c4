"""One registry of actions: each action is its model; the handler, the signal and update, the CLI command,
the HTTP route and the README line all come from it."""

from __future__ import annotations

import argparse

import pytest

import starter
from api.app import create_app
from stack.settings import Settings
from workflows.actions import README, payload_shape, readme_table
from workflows.case import CaseWorkflow
from workflows.models import ACTIONS, ENGAGED, ActionPayload, AddNote, CustomerReplied, MilestoneVerified


def test_every_action_is_applied_by_one_handler_of_the_case() -> None:
    assert set(CaseWorkflow.handlers) == set(ACTIONS)


def test_each_action_model_names_itself_in_the_registry() -> None:
    assert all(model.action == name for name, model in ACTIONS.items())
    assert list(ACTIONS) == [model.action for model in ActionPayload.__subclasses__()]


def test_the_payload_shape_comes_from_the_fields() -> None:
    assert payload_shape(AddNote) == "{text, by?}"
    assert payload_shape(MilestoneVerified) == (
        "{milestone: first_response/data_verified/troubleshooting, note?, by?}"
    )


def test_the_readme_table_is_the_registry() -> None:
    """`python -m workflows.actions --readme` rewrites it; this fails when someone forgot to."""
    assert readme_table() in README.read_text(encoding="utf-8")
    assert "| `customer_replied` | `{note?}` | engaged and paused |" in readme_table()


def test_every_action_is_a_starter_command_of_one_function_with_its_fields_as_options() -> None:
    parser = starter.build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(ACTIONS) <= set(commands.choices)
    for name, sub in commands.choices.items():
        assert callable(sub.get_default("handler")), name
    args = parser.parse_args(["milestone_verified", "T-1", "--milestone", "data_verified", "--by", "al"])
    assert (args.milestone, args.by, args.note) == ("data_verified", "al", None)


def test_every_action_is_an_http_route_whose_body_is_its_model() -> None:
    paths = create_app(Settings.from_env({})).openapi()["paths"]
    for name, model in ACTIONS.items():
        body = paths[f"/cases/{{ticket_id}}/actions/{name}"]["post"]["requestBody"]
        schema = body["content"]["application/json"]["schema"]
        refs = [schema.get("$ref")] + [s.get("$ref") for s in schema.get("anyOf", [])]
        assert f"#/components/schemas/{model.__name__}" in refs, name
        assert body.get("required", False) is any(f.is_required() for f in model.model_fields.values())


def test_a_case_workflow_without_a_handler_for_an_action_is_refused_at_import() -> None:
    class Escalate(ActionPayload):
        """Ask for the next escalation level now."""

        action = "escalate_now_exercise"
        accepted_in = ENGAGED

    try:
        with pytest.raises(TypeError, match="no @handles method for: escalate_now_exercise"):

            class Incomplete(CaseWorkflow):
                pass

    finally:
        del ACTIONS[Escalate.action]
    assert CustomerReplied.while_paused is True

"""One registry of actions: every action has its model, its phases, its handler, and its README line."""

from __future__ import annotations

import typing
from pathlib import Path

from workflows.actions import ACTIONS, readme_table
from workflows.case import CaseWorkflow
from workflows.models import Action

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_action_is_applied_by_one_handler_of_the_case() -> None:
    assert set(CaseWorkflow.handlers) == set(ACTIONS)


def test_every_action_model_is_part_of_the_action_union() -> None:
    assert {spec.model for spec in ACTIONS.values()} == set(typing.get_args(Action))


def test_the_readme_table_is_the_registry() -> None:
    assert readme_table() in README.read_text(encoding="utf-8")


def test_every_starter_command_is_one_function() -> None:
    import argparse

    import starter

    parser = starter.build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(ACTIONS) <= set(commands.choices)
    for name, sub in commands.choices.items():
        assert callable(sub.get_default("handler")), name

"""Fixtures of the bad-input corpus (tests/base/test_bad_*.py): a pristine copy of the program, and a fresh copy per case."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.base.bad_inputs import Project
from tests.conftest import DEMO, copy_program


@pytest.fixture(scope="session")
def pristine(tmp_path_factory) -> Path:
    root = copy_program(tmp_path_factory.mktemp("pristine") / "project", base=DEMO)  # cases name its products
    (root / "policies").mkdir()
    return root


@pytest.fixture
def project(pristine, tmp_path) -> Project:
    root = tmp_path / "work" / "project"
    shutil.copytree(pristine, root)
    return Project(root)

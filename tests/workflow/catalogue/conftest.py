"""Fixtures shared by the tests of workflow.catalogue."""
from __future__ import annotations

import os

import pytest

from workflow import catalogue as C
from workflow.catalogue import load_catalogue

from .helpers import ROOT


@pytest.fixture(scope="package")
def catalogue() -> dict[str, C.LoadedPaper]:
    """load_catalogue() with no arguments, run from the project root (catalogue/ may be cwd-relative)."""
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return load_catalogue()
    finally:
        os.chdir(cwd)

"""Fixtures for the engine's unit tests: the shipped lifecycle bundle, parsed."""
from pathlib import Path

import pytest

from app import engine

LIFECYCLE_BUNDLE = Path(__file__).resolve().parents[2] / "workflows" / "dispute_lifecycle"


@pytest.fixture(scope="module")
def parsed():
    """workflows/dispute_lifecycle as the engine parses it (the real diagrams, not copies)."""
    bpmn = {p.name: p.read_text("utf-8") for p in LIFECYCLE_BUNDLE.glob("*.bpmn")}
    dmn = {p.name: p.read_text("utf-8") for p in LIFECYCLE_BUNDLE.glob("*.dmn")}
    return engine.parse_bundle("dispute_lifecycle", bpmn, dmn)

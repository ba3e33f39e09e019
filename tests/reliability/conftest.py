"""Fixtures of the reliability suite (the shared ones in tests/conftest.py: settings, database, Redis)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from echain.settings import Settings
from tests.reliability.harness import LiveApp


@pytest.fixture
def live(settings: Settings) -> Iterator[LiveApp]:
    """The real app on a real port (its own loop and thread), on the test database and Redis."""
    app = LiveApp(settings).start()
    try:
        yield app
    finally:
        app.stop()


HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every scenario here carries the `reliability` marker (`make reliability` selects them with -m)."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.reliability)

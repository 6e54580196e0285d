"""Engine tests of the example application (src/app, data/iris.csv): its training and its HTTP API
through the real tasks. The fixtures are the template's (helpers/engine_fixtures.py)."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def _an_engine_answers(engine) -> None:
    """Every test here drives the real engine: skipped with the reason where none answers (never in CI)."""

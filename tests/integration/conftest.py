"""Engine tests: the real invoke tasks against the real container engine, for any app that keeps the
README's app contract. Their fixtures (the images, the invoke runner, a registry, a non-root caller) are
in helpers/engine_fixtures.py, shared with the example's engine tests in tests/example/integration/."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def _an_engine_answers(engine) -> None:
    """Every test here drives the real engine: skipped with the reason where none answers (never in CI)."""

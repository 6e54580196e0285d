"""The template's engine test: a project that copier generates builds and serves. Skipped with the
reason where no engine answers (never in CI), as the template's other engine tests are."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def _an_engine_answers(engine) -> None:
    """Every test here drives the real engine."""

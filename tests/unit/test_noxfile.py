"""The noxfile: what nox prints around the sessions."""

import logging

import noxfile  # noqa: F401 (importing it sets nox's options and its log filter)


def test_nox_says_nothing_of_uv_which_this_project_does_not_use():
    probe = logging.LogRecord("nox", logging.INFO, __file__, 0, "uv binary not found.", None, None)
    assert logging.getLogger("nox").filter(probe) is False
    other = logging.LogRecord("nox", logging.INFO, __file__, 0, "Running session tests", None, None)
    assert logging.getLogger("nox").filter(other) is not False

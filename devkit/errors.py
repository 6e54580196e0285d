"""The one error type the tasks turn into a single line on stderr and a non-zero exit."""

import functools

from invoke import Exit


class UserError(Exception):
    """Something the user can fix: bad configuration, a missing engine, a refused option.

    `problem` says what is wrong, `fix` (where there is one) what to do; the message is both.
    """

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(f"{problem}; {fix}" if fix else problem)
        self.problem = problem
        self.fix = fix


def one_line_errors(body):
    """For a task: a UserError becomes one line on stderr and exit status 1, never a traceback."""

    @functools.wraps(body)
    def wrapper(c, *args, **kwargs):
        try:
            return body(c, *args, **kwargs)
        except UserError as error:
            raise Exit(f"error: {error}", code=1) from None

    return wrapper

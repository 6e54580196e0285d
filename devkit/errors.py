"""The one error type the tasks turn into a single line on stderr and a non-zero exit."""


class UserError(Exception):
    """Something the user can fix: bad configuration, a missing engine, a refused option.

    `problem` says what is wrong, `fix` (where there is one) what to do; the message is both.
    """

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(f"{problem}; {fix}" if fix else problem)
        self.problem = problem
        self.fix = fix

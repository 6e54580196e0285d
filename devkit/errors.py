"""The one error type the tasks turn into a single line on stderr and a non-zero exit."""


class UserError(Exception):
    """Something the user can fix: bad configuration, a missing engine, a refused option."""

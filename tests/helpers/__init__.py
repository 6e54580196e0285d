"""Helpers of the template's tests, importable from every test folder (pyproject's `pythonpath`)."""

"""The example application that the template's images serve (`python -m app`)."""

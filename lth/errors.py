"""The one base class for errors a user can fix: the CLI prints them without a traceback."""


class LthError(Exception):
    """Bad input, missing data, or a refused action; the message names the value and the fix."""


class UsageError(LthError):
    """Bad input to a command that the user can fix (a flag's value, a file it names)."""

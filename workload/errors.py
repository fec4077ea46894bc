"""The one error type a user sees without a traceback."""


class UserError(Exception):
    """Bad input the user can fix: the CLI prints it as one line and exits with status 2."""

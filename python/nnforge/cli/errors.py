"""The command line's one error type (its own file, so commands import it without
importing the dispatcher in nnforge.cli and no import circle forms)."""


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2, no traceback."""

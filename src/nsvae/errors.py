"""Errors a user can act on.

Library functions raise ``ValueError`` (bad arguments, malformed data) or
:class:`UserError`; the command line prints their message on one line and
exits with status 2.
"""


class UserError(Exception):
    """A problem with the user's input or environment, with a message that says what to do."""


class FieldError(ValueError):
    """A config field's value is refused: :attr:`field` names the field (the config reader adds the section, so
    the user reads ``config key 'run.steps': steps must be at least 1, got 0``)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where a command turns it into an interruption (as Ctrl-C is) to save its work first; the
    command line exits with 143 (128 + SIGTERM), as a process killed by it would."""


#: Exit status of the command line for a user-facing error.
EXIT_USER_ERROR = 2


class NsvaeWarning(UserWarning):
    """Something the user should know that did not stop the command (the CLI prints it on one line)."""


class SolverAccuracyWarning(RuntimeWarning):
    """A numerical solver stopped short of its promised accuracy; the result says how far."""

"""The ``nsvae`` command line: a thin layer over the library.

Each subcommand lives in :mod:`nsvae.commands` and registers its own
arguments. User-facing failures (``UserError``, ``ValueError`` from input
validation, unreadable files) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from . import __version__
from .commands import config as config_command
from .commands import data as data_command
from .commands import evaluate as evaluate_command
from .commands import info as info_command
from .commands import plot as plot_command
from .commands import report as report_command
from .commands import results as results_command
from .commands import study as study_command
from .commands import sweep as sweep_command
from .commands import train as train_command
from .errors import EXIT_USER_ERROR, NsvaeWarning, Terminated, UserError

SUBCOMMANDS = (
    info_command,
    data_command,
    train_command,
    evaluate_command,
    plot_command,
    report_command,
    sweep_command,
    results_command,
    study_command,
    config_command,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nsvae",
        description="Non-Synergistic VAEs and the information theory behind them.",
    )
    parser.add_argument("--version", action="version", version=f"nsvae {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in SUBCOMMANDS:
        module.register(sub)
    return parser


def _one_line_warnings(command: str):
    """A ``warnings.showwarning`` that prints nsvae's own warnings (:class:`NsvaeWarning`) as one line
    ``nsvae CMD: warning: ...`` and the others as Python does."""
    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, NsvaeWarning):
            print(f"nsvae {command}: warning: {message}", file=sys.stderr)
        else:
            previous(message, category, filename, lineno, file, line)

    return show


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("always", NsvaeWarning)
        warnings.showwarning = _one_line_warnings(args.command)
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.run(args) or 0)
    except BrokenPipeError:
        # The reader went away (e.g. `nsvae data list | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (UserError, ValueError, OSError) as exc:
        print(f"nsvae {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except MemoryError:
        print(
            f"nsvae {args.command}: error: not enough memory for this input; use a smaller file or fewer samples",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    except Terminated:
        print(f"nsvae {args.command}: stopped by SIGTERM", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"nsvae {args.command}: interrupted", file=sys.stderr)
        return 130


def _one_line(exc: BaseException) -> str:
    text = " ".join(part.strip() for part in str(exc).strip().splitlines() if part.strip())
    return text or type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The `ccscore` command. `ccscore IMAGE...` scores images; `ccscore COMMAND ...` runs another command.

The first argument names a command only when it is exactly one of COMMANDS and no file or folder of that
name exists here (then ccscore refuses to guess); anything else is an image or folder to score.

One module per command; each exposes a Typer `app`. Usage errors of every command are one line, exit 2.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

# Click's exception types, from the click that this typer uses (typer >= 0.26 vendors its own).
_click_exceptions = sys.modules[typer.BadParameter.__module__]
ABORTS = tuple({typer.Abort, getattr(_click_exceptions, "Abort", typer.Abort)})

# Subcommand name -> module in this package. Anything else on the command line is an image to score.
COMMANDS = {"score": "score", "bench": "bench"}
# Exit statuses of every command (README: Exit status).
EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 0, 1, 2, 130, 141


def split_command(args: list[str]) -> tuple[str, list[str]]:
    """(command, its arguments). The first argument is a command when it is exactly a command's name; a
    command's name that is also a file or folder here is refused (`UsageError`): `./bench` is the path."""
    if not args or args[0] not in COMMANDS:
        return "score", args
    if os.path.lexists(args[0]):
        raise _click_exceptions.UsageError(
            f"'{args[0]}' is both a ccscore command and a file or folder here: write ./{args[0]} to score it, "
            f"or run the command from another directory")
    return args[0], args[1:]


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        name, args = split_command(args)
    except _click_exceptions.UsageError as exc:
        typer.echo(f"ccscore: error: {one_line_usage(exc)}", err=True)
        sys.exit(EXIT_USAGE)
    prog = f"ccscore {name}" if name != "score" else "ccscore"
    module = importlib.import_module(f".{COMMANDS[name]}", __name__)
    try:
        code = module.app(args=args, prog_name=prog, standalone_mode=False)
    except _click_exceptions.ClickException as exc:  # a bad option or argument: one line, not a usage box
        typer.echo(f"{prog}: error: {one_line_usage(exc)} (see {prog} --help)", err=True)
        code = exc.exit_code
    except ABORTS:  # Ctrl-C before scoring started (newer typers return 130 themselves)
        code = EXIT_INTERRUPTED
    sys.exit(code if isinstance(code, int) else 0)


def one_line_usage(exc) -> str:
    return " ".join(exc.format_message().split())

"""The `ccscore` command. `ccscore IMAGE...` scores images; `ccscore COMMAND ...` runs another command.

One module per command; each exposes a Typer `app`. Usage errors of every command are one line, exit 2.
"""

from __future__ import annotations

import importlib
import sys

import typer

# Click's exception types, from the click that this typer uses (typer >= 0.26 vendors its own).
_click_exceptions = sys.modules[typer.BadParameter.__module__]

# Subcommand name -> module in this package. Anything else on the command line is an image to score.
COMMANDS = {"score": "score", "bench": "bench"}
EXIT_USAGE, EXIT_INTERRUPTED = 2, 130


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    name = args[0] if args and args[0] in COMMANDS else "score"
    if args and args[0] == name:
        args = args[1:]
    prog = f"ccscore {name}" if name != "score" else "ccscore"
    module = importlib.import_module(f".{COMMANDS[name]}", __name__)
    try:
        code = module.app(args=args, prog_name=prog, standalone_mode=False)
    except _click_exceptions.ClickException as exc:  # a bad option or argument: one line, not a usage box
        typer.echo(f"{prog}: error: {one_line_usage(exc)} (see {prog} --help)", err=True)
        code = exc.exit_code
    except typer.Abort:  # Ctrl-C before scoring started
        code = EXIT_INTERRUPTED
    sys.exit(code if isinstance(code, int) else 0)


def one_line_usage(exc) -> str:
    return " ".join(exc.format_message().split())

"""The `ccscore` command. `ccscore IMAGE...` scores images; `ccscore COMMAND ...` runs another command.

The first argument names a command only when it is exactly one of COMMANDS and no file or folder of that
name exists here (then ccscore refuses to guess); anything else is an image or folder to score.

One module per command; each exposes a Typer `app`. Usage errors of every command are one line, exit 2.
"""

from __future__ import annotations

import atexit
import importlib
import os
import signal
import sys
import threading

# Subcommand name -> module in this package. Anything else on the command line is an image to score.
COMMANDS = {"score": "score", "bench": "bench", "heatmap": "heatmap", "report": "report", "act": "act", "ray": "ray"}
# Exit statuses of every command (README: Exit status); 130 is 128 + SIGINT, as shells report Ctrl-C.
EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 0, 1, 2, 130, 141


def exit_interrupted(signum=None, frame=None) -> None:
    """SIGINT handler outside the part of a run that stops cleanly on KeyboardInterrupt: exit 130 at once.

    Raised from here, an exception could land anywhere: inside an import (numpy's, onnxruntime's native
    code turns it into an ImportError) or a class definition, with a traceback and a wrong exit status. Exiting
    on the spot is as safe as the kill -9 that every run must survive anyway: nothing is half written."""
    os.write(2, b"ccscore: interrupted\n")
    os._exit(EXIT_INTERRUPTED)


def split_command(args: list[str]) -> tuple[str, list[str]]:
    """(command, its arguments). The first argument is a command when it is exactly a command's name; a
    command's name that is also a file or folder here is refused (`AmbiguousCommand`): `./bench` is the path."""
    if not args or args[0] not in COMMANDS:
        return "score", args
    if os.path.lexists(args[0]):
        raise AmbiguousCommand(f"'{args[0]}' is both a ccscore command and a file or folder here: write "
                               f"./{args[0]} to score it, or run the command from another directory")
    return args[0], args[1:]


class AmbiguousCommand(ValueError):
    """A command's name that is also a path here."""


def main(argv: list[str] | None = None) -> None:
    signal.signal(signal.SIGINT, exit_interrupted)  # first, before anything slow is imported
    # onnxruntime (1.2x on Linux too) records usage telemetry by default: a device id and events kept in
    # ~/.cache/Microsoft/DeveloperTools and sent to Microsoft. The command turns it off unless the variable is set
    # (ORT_DISABLE_TELEMETRY=0 keeps it on); its workers inherit the choice.
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    for stream_name in ("stdout", "stderr"):
        if getattr(sys, stream_name) is None:
            # Started with the stream closed (cron, `2>&-`): what would go there goes nowhere. Left None, a
            # print to stderr would land in stdout (print's fallback), inside JSONL records.
            setattr(sys, stream_name, open(os.devnull, "w"))
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        name, args = split_command(args)
    except AmbiguousCommand as exc:
        print(f"ccscore: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    for stream in (sys.stdout, sys.stderr):
        try:  # every command: file names that are not valid UTF-8 print as they are instead of crashing the run
            stream.reconfigure(errors="surrogateescape" if stream is sys.stdout else "backslashreplace")
        except (AttributeError, ValueError):
            pass
    import typer

    # Click's exception types, from the click that this typer uses (typer >= 0.26 vendors its own).
    click_exceptions = sys.modules[typer.BadParameter.__module__]
    aborts = tuple({typer.Abort, getattr(click_exceptions, "Abort", typer.Abort)})
    prog = f"ccscore {name}" if name != "score" else "ccscore"
    module = importlib.import_module(f".{COMMANDS[name]}", __name__)
    try:
        code = module.app(args=args, prog_name=prog, standalone_mode=False)
    except click_exceptions.ClickException as exc:  # a bad option or argument: one line, not a usage box
        typer.echo(f"{prog}: error: {one_line_usage(exc)} (see {prog} --help)", err=True)
        code = exc.exit_code
    except aborts:  # Ctrl-C before scoring started (newer typers return 130 themselves)
        code = EXIT_INTERRUPTED
    sys.exit(code if isinstance(code, int) else 0)


def run() -> None:
    """The program's entry point (the `ccscore` script, `python -m ccscore`): `main`, then `exit_without_teardown`.
    `main` itself ends in SystemExit, which an in-process caller can catch."""
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    else:
        code = EXIT_OK
    if code is not None and not isinstance(code, int):  # sys.exit("message"), as the interpreter reports it
        print(code, file=sys.stderr)
        code = 1
    exit_without_teardown(code or EXIT_OK)


def exit_without_teardown(code: int) -> None:
    """Ends the process with `code` after what an exit must do (atexit handlers: the decode workers are stopped;
    stdout and stderr flushed), skipping the interpreter's teardown: freeing the ONNX session and every module
    object by object, ~0.1 s of CPU after the last record that the OS does at once. Every file a command writes
    is closed by then. A thread that the interpreter would wait for gets the ordinary exit."""
    if any(not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):  # never None here: `main` gave a missing one devnull
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: the interpreter exits 120 then, and so do we
            code = 120
    os._exit(code)


def command_app():
    """The Typer app of a command module: plain help (nothing cut at 80 columns), -h too."""
    import typer

    return typer.Typer(add_completion=False, rich_markup_mode=None,
                       context_settings={"help_option_names": ["--help", "-h"]})


def say(line: str) -> None:
    """One line on stderr (an error, a note, a summary), the names in it shown as readable output shows them
    (`outputs.shown_path`: a line break or a control character in a name cannot make it two lines)."""
    import typer

    from ..outputs import shown_path

    typer.echo(shown_path(line), err=True)


def fail_as(prog: str, message: str, code: int = EXIT_USAGE) -> None:
    """Ends a command with a one-line error on stderr (a usage error unless `code` says otherwise)."""
    import typer

    say(f"{prog}: error: {message}")
    raise typer.Exit(code)


def one_line_usage(exc) -> str:
    return " ".join(exc.format_message().split())

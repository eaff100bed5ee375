"""The one entry point of every stage script: arguments, params, and errors as one line.

A stage script in ``pipelines/`` declares its path arguments (paths are written once, in
``dvc.yaml``) and hands its ``main(args, params)`` to :func:`run_stage`, which

1. builds the argument parser: each declared path is a required ``--name PATH`` option,
   ``--params`` names the params file (default ``params.yaml``), and an optional callback
   adds anything else (``--arm``, repeated ``--artifact``);
2. reads and validates the whole params file into :class:`medssl.params.Params` once, so
   a bad value anywhere stops the first stage that runs, before anything is trained;
3. runs ``main`` and turns the errors a user can fix (:class:`~medssl.params.ParamsError`
   and those the stage declares: a bad label CSV, a missing secret, ...) into one line,
   ``error: <message>``, on stderr with exit status 1, never a traceback. Set
   ``MEDSSL_TRACEBACK=1`` to see the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from medssl.params import PARAMS_NAME, Params, ParamsError, read_params

#: ``main`` of a stage script: parsed arguments and validated params.
StageMain = Callable[[argparse.Namespace, Params], None]
#: Environment variable that lets known errors raise with their traceback.
TRACEBACK_ENV = "MEDSSL_TRACEBACK"


def stage_parser(
    doc: str | None,
    paths: Sequence[str],
    arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.ArgumentParser:
    """The stage's argument parser.

    Args:
        doc: the script's docstring (the ``--help`` text).
        paths: option names of required paths, e.g. ``("--ingested", "--out")``.
        arguments: adds the stage's other arguments to the parser.

    Returns:
        A parser with one required ``Path`` option per name and ``--params``.
    """
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for name in paths:
        parser.add_argument(name, type=Path, required=True, metavar="PATH")
    parser.add_argument("--params", type=Path, default=Path(PARAMS_NAME), metavar="YAML")
    if arguments is not None:
        arguments(parser)
    return parser


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (whitespace runs collapsed)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def run_stage(
    main: StageMain,
    doc: str | None,
    *,
    paths: Sequence[str] = (),
    arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    errors: tuple[type[BaseException], ...] = (),
    argv: Sequence[str] | None = None,
) -> None:
    """Parse arguments, validate params once, run ``main``; known errors exit as one line.

    Args:
        main: the stage: reads its inputs, calls one library function, writes its outputs.
        doc: the script's docstring.
        paths: required path options (see :func:`stage_parser`).
        arguments: adds the stage's other arguments.
        errors: exception types, besides :class:`~medssl.params.ParamsError`, whose
            message is meant for the user (it names the file, row or key).
        argv: arguments (default: ``sys.argv[1:]``).

    Raises:
        SystemExit: ``error: <message>`` (status 1) for a known error.
    """
    args = stage_parser(doc, paths, arguments).parse_args(argv)
    known: tuple[type[BaseException], ...] = (ParamsError, *errors)
    try:
        params = read_params(args.params)
        main(args, params)
    except known as exc:
        if os.environ.get(TRACEBACK_ENV):
            raise
        sys.exit(f"error: {one_line(exc)}")

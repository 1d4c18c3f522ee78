"""Project commands for the ``kedro`` CLI (found by Kedro as ``<package>.cli.cli``; commands
here override Kedro's own of the same name).

``run`` is Kedro's ``kedro run`` with every one of its options (its callback is wrapped, not
copied), except that a ``simlabel.errors.UserError`` (a bad input folder, label table,
setting, a run already in progress) is printed as one line ``Error: <message>`` on stderr and
exits with status 1. Every other exception keeps Kedro's full traceback.
"""

from __future__ import annotations

from typing import Any

import click
from kedro.framework.cli.project import run as kedro_run

from simlabel.errors import find_user_error, format_user_error


@click.group(name="simlabel")
def cli() -> None:
    """simlabel: problems with the input folder or settings stop `kedro run` with one line
    `Error: <message>` (exit status 1)."""


def _run(**kwargs: Any) -> Any:
    try:
        return kedro_run.callback(**kwargs)
    except Exception as error:
        user_error = find_user_error(error)
        if user_error is None:
            raise
        click.echo(format_user_error(user_error), err=True)
        raise click.exceptions.Exit(1) from None


run = click.Command(
    name="run",
    callback=_run,
    params=list(kedro_run.params),
    help=kedro_run.help,
    short_help=kedro_run.short_help,
    epilog=kedro_run.epilog,
    context_settings=kedro_run.context_settings,
)
cli.add_command(run)

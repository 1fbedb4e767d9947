"""The `reconciler` command group: global flags, and expected errors turned into one message and an exit status."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click

from reconciler.cli.common import EXIT_INTERRUPTED
from reconciler.errors import ReconcilerError

GLOBAL_FLAGS = ("--debug",)  # accepted before or after the command: `reconciler plan --debug` too


class ReconcilerGroup(click.Group):
    """Turns expected errors into one `Error: ...` line and their exit status, in one place."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if ctx.parent is None:  # the top-level group: move a global flag given after the command to the front
            end = args.index("--") if "--" in args else len(args)
            moved = [a for a in args[:end] if a in GLOBAL_FLAGS]
            args = moved + [a for a in args[:end] if a not in GLOBAL_FLAGS] + args[end:]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ReconcilerError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(EXIT_INTERRUPTED)


@click.group(cls=ReconcilerGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="reconciler")
@click.option(
    "-C",
    "--chdir",
    "chdir",
    type=click.Path(exists=True, file_okay=False),
    metavar="DIR",
    help="Run as if started in DIR: manifests, state, reconciler.yaml, outputs and plan files resolve from it.",
)
@click.option(
    "--debug",
    is_flag=True,
    help="Log every HTTP request and response to stderr (the key shows as ***). Also accepted after the command.",
)
def cli(chdir: str | None, debug: bool) -> None:
    """Declarative plan/apply for LoRA training and image generation on Novita.ai.

    Keep Datasets, LoraModels and Generations as YAML manifests in git; `plan` shows what would change,
    `apply` uploads, trains and generates only what is missing, and can be killed at any moment without
    losing or repeating paid work. NOVITA_API_KEY holds the key; NOVITA_API_BASE overrides the base URL.
    """
    if chdir is not None:
        os.chdir(chdir)
    if debug:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
        for name in ("asyncio", "PIL"):
            logging.getLogger(name).setLevel(logging.WARNING)

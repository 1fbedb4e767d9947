"""Command line: parse flags, call one library function per command, render, exit.

Expected errors (ReconcilerError) become one message and exit status 1 in `main`; anything else is a bug
and shows a traceback. Heavy modules are imported inside the commands that need them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from reconciler.errors import ReconcilerError

MANIFESTS_DEFAULT = "manifests"


def _manifest_paths(paths: tuple[str, ...]) -> list[Path]:
    return [Path(p) for p in paths] or [Path(MANIFESTS_DEFAULT)]


manifests_option = click.option(
    "-f",
    "--file",
    "files",
    multiple=True,
    type=click.Path(),
    help="A manifest file or folder (repeatable). Default: manifests/.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="reconciler")
def cli() -> None:
    """Declarative plan/apply for LoRA training and image generation on Novita.ai.

    Keep Datasets, LoraModels and Generations as YAML manifests in git; `plan` shows what would change,
    `apply` uploads, trains and generates only what is missing.
    """


@cli.command()
@manifests_option
def validate(files: tuple[str, ...]) -> None:
    """Check the manifests offline: every error at once, as file:line:col."""
    from reconciler.manifest import load_manifests

    manifests = load_manifests(_manifest_paths(files), Path.cwd())
    count = len(manifests.datasets) + len(manifests.models) + len(manifests.generations)
    click.echo(f"{count} resource{'s' if count != 1 else ''} valid")


@cli.command()
@click.option("--kind", type=click.Choice(["Dataset", "LoraModel", "Generation"]), help="Only this kind.")
def schema(kind: str | None) -> None:
    """Print the JSON Schema of a manifest document (for editors and the YAML language server)."""
    import json

    from reconciler.manifest import document_schema

    click.echo(json.dumps(document_schema(kind), indent=2))


def _register_sim() -> None:
    from reconciler.sim.cli import sim

    cli.add_command(sim)


def main() -> None:
    """Entry point: run the CLI, turning expected errors into a message and exit status 1."""
    try:
        _register_sim()
    except ImportError:  # the simulator is optional at import time only while it is being built
        pass
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ReconcilerError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)

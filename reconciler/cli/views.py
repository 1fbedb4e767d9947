"""Read-only views of what apply produced: show, output, gallery."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler.cli.common import (
    colour,
    empty_state_note,
    gathers_flags,
    isatty,
    make_settings,
    on_unless_no,
    where_options,
)
from reconciler.cli.group import cli

if TYPE_CHECKING:
    from reconciler.commands.workspace import Flags


@cli.command(short_help="Show a saved plan, or the state.")
@click.argument("planfile", required=False, type=click.Path(dir_okay=False))
@where_options()
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON (the plan as `plan --json` does).")
@gathers_flags
def show(planfile: str | None, flags: Flags, as_json: bool) -> None:
    """Show a saved PLANFILE in the same text as `plan` (with where it was made), or, without one, every
    resource in the state and what it owns. Reads only; needs no key."""
    import json

    if planfile is not None:
        from reconciler.plan.planfile import load_plan
        from reconciler.present.render import plan_json, render_text

        saved = load_plan(Path(planfile))
        if as_json:
            from dataclasses import asdict

            origin = None if saved.origin is None else asdict(saved.origin)
            click.echo(json.dumps({**plan_json(saved.plan), "origin": origin}, indent=2, ensure_ascii=False))
            return
        made = f", made against {saved.origin.describe()}" if saved.origin else ""
        click.echo(f"Saved plan {planfile}{made}.\n")
        click.echo(render_text(saved.plan, colour=colour(), legend=isatty(sys.stdout)), nl=False)
        if saved.origin is not None and not saved.plan.empty:
            click.echo(f"\nApply exactly this plan with: {saved.origin.apply_command(planfile)}")
        return
    from reconciler.commands.state_cmds import pull_state
    from reconciler.present.readout import state_text
    from reconciler.urls import redact_url_password

    settings = make_settings(flags)
    data = pull_state(settings)
    if as_json:
        click.echo(data.model_dump_json(indent=2))
        return
    if not data.resources:
        empty_state_note(settings)
        return
    where = redact_url_password(settings.state_url) if settings.state_url else str(settings.state_path)
    click.echo(state_text(data, where), nl=False)


@cli.command(short_help="Print what apply produced: trained model names, image paths.")
@click.argument("name", required=False)
@where_options()
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON.")
@gathers_flags
def output(name: str | None, flags: Flags, as_json: bool) -> None:
    """Print what apply produced, for scripts: each LoraModel's trained model file name (to use in other
    tools) and each Generation's image paths with their sha256. NAME (alice-v1 or LoraModel/alice-v1)
    prints only that one: the model file name alone, or the image paths one per line; a matrix's name prints
    each member's. In JSON a matrix member also has `matrix` and `axes` (its swept values). Reads the state only."""
    from reconciler.commands.state_cmds import pull_state
    from reconciler.present.readout import (
        find_output,
        matrix_outputs,
        one_output_text,
        output_json,
        output_text,
        output_values,
    )

    settings = make_settings(flags)
    values = output_values(pull_state(settings))
    members = matrix_outputs(values, name) if name is not None and name not in values else {}
    if members:  # a matrix: each member's outputs, its axis values under `axes` in JSON
        click.echo(output_json(members) if as_json else output_text(members), nl=False)
        return
    if name is not None:
        addr, value = find_output(values, name)
        click.echo(output_json(value) if as_json else one_output_text(addr, value), nl=False)
        return
    if not values and not as_json:
        empty_state_note(settings)
    click.echo(output_json(values) if as_json else output_text(values), nl=False)


@cli.command(short_help="Write a static HTML gallery of the outputs.")
@where_options()
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False),
    help="The folder to write it to. Default: gallery/ in the project folder (where apply refreshes it).",
)
@click.option(
    "--serve", is_flag=True, help="Then serve the project folder on 127.0.0.1 and print the URL (Ctrl-C stops)."
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="The port for --serve (0: any free one).",
)
@gathers_flags
def gallery(flags: Flags, out: str | None, serve: bool, port: int) -> None:
    """Write a static HTML gallery of the images the state records: models with their training images,
    each generation with its parameters and history, each matrix as a grid.

    It opens from disk (gallery/index.html) with no server and no network; thumbnails are made once and
    kept by content hash. `apply` refreshes it after writing images (unless --no-gallery, or
    `outputs.gallery: false` in reconciler.yaml).
    """
    from reconciler.commands.gallery import gallery_command, gallery_folder
    from reconciler.present.gallery import serve_gallery

    settings = make_settings(flags)
    folder = Path(out).resolve() if out else gallery_folder(settings)
    result = gallery_command(settings, folder)
    click.echo(result.summary())
    if serve:
        if not folder.is_relative_to(settings.root):
            raise click.UsageError("--serve needs the gallery inside the project folder (its pages link to the images)")
        serve_gallery(settings.root, folder, port, lambda url: click.echo(f"Serving on {url} (Ctrl-C stops)."))


@cli.command(short_help="Say what a resource's identity is made of, where it is held, and what apply pays for it.")
@click.argument("address")
@where_options(files=True)
@on_unless_no("refresh", "Read the account's trainings first; --no-refresh explains from the state and the disk alone.")
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON.")
@gathers_flags
def explain(address: str, flags: Flags, refresh: bool, as_json: bool) -> None:
    """Explain ADDRESS (e.g. Generation/alice-portraits, or a bare name): the fields its identity is the hash of
    (what is asked of Novita), that hash, where the project already holds that identity (the state, history
    folders, another resource, the outputs remote, a training on the account), and what the next apply does about
    it: nothing, a free action (move, copy, adopt) or a paid one, with the plan's reason. Changes nothing."""
    from reconciler.commands.explain import explain_command
    from reconciler.present.explain import explain_json, explain_text

    settings = make_settings(flags)
    found = explain_command(settings, address, refresh=refresh)
    click.echo(explain_json(found) if as_json else explain_text(found), nl=False)

"""Commands that work on the project offline: init, validate, schema, models, graph."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli.common import files_option
from reconciler.cli.group import cli


@cli.command(short_help="Create a project skeleton that works as it is.")
def init() -> None:
    """Create a project skeleton in the current folder (or -C DIR): a commented example of each kind with
    placeholder photos, the JSON Schema editors complete manifests from, a reconciler.yaml with the defaults
    commented, and a .gitignore. Never overwrites a file: whatever is already there is skipped and named.
    `reconciler validate`, `plan --sim` and `apply --sim` work on the result with no edit."""
    from reconciler.commands.skeleton import EXAMPLE, init_project

    done = init_project(Path.cwd())
    if done.written:
        click.echo(f"Initialized a reconciler project in {Path.cwd()}:")
        for path in done.written:
            click.echo(f"  wrote {path}")
    for what in done.skipped:
        click.echo(f"  skipped {what}")
    if not done.written:
        click.echo("Nothing to write: the project already has every file of the skeleton.")
        return
    click.echo(
        "\nNext: reconciler validate, then reconciler plan --sim and reconciler apply --sim (a local simulator, "
        "no key)."
    )
    if EXAMPLE in done.written:
        click.echo(
            "Put your own photos in manifests/photos/example/, export NOVITA_API_KEY, and plan and apply without --sim."
        )


@cli.command(short_help="Check the manifests offline.")
@files_option
def validate(files: tuple[str, ...]) -> None:
    """Check the manifests and reconciler.yaml offline: every error at once, as file:line:col."""
    from reconciler.errors import ConfigError, ManifestError, ReconcilerError
    from reconciler.load import load_manifests
    from reconciler.load.config import CONFIG_FILE, load_config
    from reconciler.text import plural

    settings: ConfigError | None = None
    try:
        has_config = load_config(Path.cwd()).file is not None
    except ConfigError as exc:
        settings, has_config = exc, True
    try:
        manifests = load_manifests([Path(f) for f in files] or [Path("manifests")], Path.cwd())
    except ManifestError as exc:
        if settings is not None:  # both: the manifests' errors, then the settings' ones
            raise ReconcilerError(f"{exc}\n{settings}") from None
        raise
    if settings is not None:
        raise settings
    for note in manifests.notes:
        click.echo(f"Note: {note}", err=True)
    count = len(manifests.datasets) + len(manifests.models) + len(manifests.generations)
    swept = [m.matrix for m in manifests.models.values() if m.matrix]
    swept += [g.matrix for g in manifests.generations.values() if g.matrix]
    members = f" ({plural(len(set(swept)), 'matrix', 'matrices')}: {len(swept)} members)" if swept else ""
    click.echo(f"{plural(count, 'resource')} valid{members}" + (f"; {CONFIG_FILE} valid" if has_config else ""))


@cli.command(short_help="Print the JSON Schema of a manifest document.")
@click.option("--kind", type=click.Choice(["Dataset", "LoraModel", "Generation"]), help="Only this kind.")
def schema(kind: str | None) -> None:
    """Print the JSON Schema of a manifest document (for editors and the YAML language server)."""
    import json

    from reconciler.load import document_schema

    click.echo(json.dumps(document_schema(kind), indent=2))


@cli.command(short_help="List the base models and samplers the manifests accept.")
@click.option("--json", "as_json", is_flag=True, help="Print them as JSON.")
def models(as_json: bool) -> None:
    """List the base models a LoraModel can train on (by family: SD 1.5, SDXL) and the samplers a Generation
    accepts: the same tables the validation uses."""
    import json

    from reconciler.load.schema import BASE_MODEL_FAMILY, FAMILIES, FAMILY_BASE, SAMPLERS, base_models_of

    if as_json:
        data = {
            "base_models": [{"name": n, "family": BASE_MODEL_FAMILY[n]} for f in FAMILIES for n in base_models_of(f)],
            "samplers": list(SAMPLERS),
        }
        click.echo(json.dumps(data, indent=2))
        return
    lines = ["Base models (LoraModel spec.base_model), by family:"]
    for family in FAMILIES:
        lines += ["", f"  {family}"]
        lines += [
            f"    {name}" + ("   (the original)" if name == FAMILY_BASE[family] else "")
            for name in base_models_of(family)
        ]
    lines += ["", "Samplers (Generation spec.sampler_name, default Euler a):", ""]
    lines += [f"    {name}" for name in SAMPLERS]
    click.echo("\n".join(lines))


@cli.command(short_help="Print the dependency graph (dot or mermaid).")
@files_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["dot", "mermaid"]),
    default="dot",
    show_default=True,
    help="dot for Graphviz (`| dot -Tsvg > graph.svg`), mermaid for a pull-request comment.",
)
def graph(files: tuple[str, ...], fmt: str) -> None:
    """Print how the manifests depend on each other: each Dataset → the LoraModels trained on it → the
    Generations that use them. Offline; reads the manifests only."""
    from reconciler.load import load_manifests
    from reconciler.present.graph import dependency_graph, render_dot, render_mermaid

    manifests = load_manifests([Path(f) for f in files] or [Path("manifests")], Path.cwd())
    found = dependency_graph(manifests)
    click.echo(render_dot(found) if fmt == "dot" else render_mermaid(found), nl=False)

"""`reconciler sim ...`: click adapters over reconciler.sim.server; no logic of their own."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.sim.config import ConfigError, SimConfig


@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    short_help="A local Novita simulator (no account, no key).",
)
def sim() -> None:
    """A local Novita.ai simulator: same endpoints, shapes, errors and limits, no account needed."""


@sim.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (loopback by default).")
@click.option(
    "--port", default=8080, show_default=True, type=int, help="Port to listen on; 0 picks a free one and prints it."
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder holding the account (tasks, assets, outputs, requests.jsonl) across restarts. Default: memory.",
)
@click.option(
    "--api-key",
    "api_keys",
    multiple=True,
    help="An accepted API key (repeatable). Default: any non-empty key is accepted.",
)
@click.option(
    "--training-seconds",
    type=float,
    help="Total duration of a training, split 1:3:1 over QUEUING, TRAINING and DEPLOYING. Default 5.",
)
@click.option(
    "--generation-seconds",
    type=float,
    help="Total duration of an image task, split 3:7 over QUEUED and PROCESSING. Default 1.",
)
@click.option("--ipm-txt2img", type=int, help="txt2img images per minute per key (0 = unlimited). Default 20.")
@click.option("--ipm-img2img", type=int, help="img2img images per minute per key (0 = unlimited). Default 10.")
@click.option("--rps", "rps_limit", type=float, help="Requests per second per key on every API endpoint. Default off.")
@click.option("--seed-foreign", type=int, help="Create N trainings of 'another team' in a fresh account.")
@click.option(
    "--list-page-max",
    "list_max_limit",
    type=click.IntRange(1, 100),
    help="Serve at most N trainings per page of GET /v3/training, whatever pagination.limit asks. Default 100.",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="SPEC",
    help="Inject a fault (repeatable): [ENDPOINT:]KIND=VALUE, e.g. 5xx=0.2, txt2img:429=0.1, drop=0.05, "
    "drop-after=0.05, latency=0.05, jitter=0.1, training-fail=0.1, training-cancel-pattern=^bob-, "
    "generation-fail=0.1, upload-expire=0.2, asset-forget=0.1, ghost=0.2 (handle, then answer 500 / "
    "CREATE_TASK_FAILED / 503 / drop; ghost-answer=503 picks one), list-lag=3 (seconds before a new training "
    "is listed).",
)
@click.option(
    "--clock-control", is_flag=True, default=None, help="Allow POST /_sim/clock to move the simulator's time forward."
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A JSON file of SimConfig fields; command-line options override it.",
)
@click.option(
    "--balance",
    type=click.FloatRange(0),
    metavar="USD",
    help="The account's balance in USD when it starts (a fresh account has $1,000; a data folder keeps what is "
    "left). Each training costs $1.50 and each image $0.002; a submit it cannot cover is refused with "
    'BILLING_BALANCE_NOT_ENOUGH. POST /_sim/balance {"top_up": N} adds N/10,000 USD.',
)
@click.option("--random-seed", type=int, help="Seed of every random choice (ids, faults, seed -1). Default: random.")
def serve(
    host: str,
    port: int,
    data_dir: Path | None,
    api_keys: tuple[str, ...],
    training_seconds: float | None,
    generation_seconds: float | None,
    ipm_txt2img: int | None,
    ipm_img2img: int | None,
    rps_limit: float | None,
    seed_foreign: int | None,
    list_max_limit: int | None,
    faults: tuple[str, ...],
    clock_control: bool | None,
    config_file: Path | None,
    random_seed: int | None,
    balance: float | None,
) -> None:
    """Serve the simulator over HTTP until Ctrl-C.

    Prints `Novita simulator listening on http://HOST:PORT (data: DIR)` once the socket is bound. Point the
    client at it with NOVITA_API_BASE=http://HOST:PORT and any key. Admin endpoints (no key): GET /_sim/state,
    GET /_sim/requests, POST /_sim/faults, POST /_sim/seed, POST /_sim/clock, POST /_sim/balance.
    """
    from reconciler.sim.server import serve_forever

    try:
        config = SimConfig.from_file(config_file) if config_file else SimConfig()
        if api_keys:
            config.api_keys = frozenset(api_keys)
        if training_seconds is not None:
            config.with_training_total(training_seconds)
        if generation_seconds is not None:
            config.with_generation_total(generation_seconds)
        overrides = {
            "ipm_txt2img": ipm_txt2img,
            "ipm_img2img": ipm_img2img,
            "rps_limit": rps_limit,
            "seed_foreign_tasks": seed_foreign,
            "list_max_limit": list_max_limit,
            "clock_control": clock_control,
            "random_seed": random_seed,
            "balance": None if balance is None else round(balance * 10_000),
        }
        for name, value in overrides.items():
            if value is not None:
                setattr(config, name, value)
        for spec in faults:
            config.faults.apply_spec(spec)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None
    try:
        serve_forever(config, data_dir, host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    except KeyboardInterrupt:
        pass

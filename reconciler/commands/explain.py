"""`reconciler explain ADDRESS`: what a resource's identity is made of, where that identity is already held, and
what the next apply does about it. Reads only: no lock, nothing written but the stat cache (as `plan`)."""

from __future__ import annotations

import contextlib

from reconciler.commands.plan_apply import PlanInputs, observe_all
from reconciler.commands.workspace import Endpoint, Settings, load_desired, novita_endpoint
from reconciler.desired.resources import Desired
from reconciler.errors import UsageError
from reconciler.load.matrix import normalise_address
from reconciler.observe.holdings import model_names, observe_run_cache, training_holdings
from reconciler.observe.runcache import run_cache
from reconciler.plan.planner import plan
from reconciler.present.explain import Explanation


def explain_command(settings: Settings, address: str, *, refresh: bool = True) -> Explanation:
    """The explanation of ADDRESS (a resource of the manifests; a bare name when only one resource has it)."""
    desired, cache = load_desired(settings)
    addr = resolve_address(desired, address)
    with settings.backend() as backend:
        state = backend.read()
    with contextlib.ExitStack() as stack:
        endpoint: Endpoint | None = stack.enter_context(novita_endpoint(settings)) if refresh else None
        seen = observe_all(PlanInputs(settings, desired, cache, state, endpoint))
    trainings = run_cache((), training_holdings(state, seen.account))
    kind, _, name = addr.partition("/")
    names = model_names(desired, trainings, state)
    wanted: list[str] = []
    if kind == "Generation" and (identity := desired.generations[name].identity(names)) is not None:
        wanted = [identity]
    held = observe_run_cache(
        desired, state, cache, settings.root, seen.outputs, seen.account, seen.outputs_remote, identities=wanted
    )
    everything = observe_run_cache(
        desired, state, cache, settings.root, seen.outputs, seen.account, seen.outputs_remote
    )
    planned = plan(
        desired, state, seen.account, seen.outputs, orphans=seen.orphans, policy=settings.policy, run_cache=everything
    )
    cache.save()
    change = planned.get(addr)
    if kind == "LoraModel":
        model = desired.models[name]
        found = held.training(model.identity)
        return Explanation(addr, model.identity, model.identity_fields(), found, change, task_name=model.task_name)
    if kind == "Dataset":
        dataset = desired.datasets[name]
        fields = {"images": [[i.sha256, i.caption] for i in dataset.images]}
        return Explanation(addr, dataset.identity, fields, (), change)
    gen = desired.generations[name]
    fields = gen.identity_fields(names)
    if not wanted:
        waits = tuple(m for m in gen.lora_models if not names.get(m))
        return Explanation(addr, None, fields, (), change, waits_for=waits)
    return Explanation(addr, wanted[0], fields, held.generation(wanted[0]), change)


def resolve_address(desired: Desired, address: str) -> str:
    """ADDRESS as given (a member's axes in any order), or a bare name when exactly one resource has it."""
    known = desired.addresses()
    if "/" in address:
        addr = normalise_address(address)
        if addr in known:
            return addr
        raise UsageError(
            f"{address} is not in the manifests (explain looks at what the manifests declare; "
            "`reconciler state list` shows what the state holds)"
        )
    matches = [a for a in known if a.partition("/")[2] == address]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UsageError(f"{address} names {' and '.join(matches)}; write the whole address, e.g. {matches[0]}")
    raise UsageError(f"no resource named {address} in the manifests; write an address such as Generation/{address}")

"""EarlyListing: the training list fetched on a thread while the manifests load, against a real socket."""

from __future__ import annotations

import socket

import pytest

from reconciler.errors import NovitaError
from reconciler.novita import NovitaClient
from reconciler.observe.refresh import EarlyListing
from reconciler.sim.config import SimConfig
from reconciler.sim.server import running_simulator


def test_every_page_arrives_in_the_caller() -> None:
    config = SimConfig.fast(seed_foreign_tasks=120, list_max_limit=50)
    with running_simulator(config) as sim:
        listing = EarlyListing(lambda: NovitaClient("sk-test", sim.base_url))
        tasks = listing.tasks()
        log = [r["endpoint"] for r in sim.account.request_log]
    assert len({t.task_id for t in tasks}) == 120
    assert log == ["training-list"] * 3  # pages of 50, one after another
    assert tasks.pages == 3  # what the plan's "Refreshing: 3 pages of trainings" counts


def test_what_the_fetch_raised_is_raised_by_tasks() -> None:
    with running_simulator(SimConfig.fast(api_keys=frozenset({"sk-good"}))) as sim:
        listing = EarlyListing(lambda: NovitaClient("sk-wrong", sim.base_url))
        with pytest.raises(NovitaError) as caught:
            listing.tasks()
    assert caught.value.status == 403 and "INVALID_API_KEY" in str(caught.value)


def test_cancel_abandons_a_server_that_never_answers() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:  # accepts connections, answers nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        listing = EarlyListing(lambda: NovitaClient("sk-test", url))
        listing.cancel()
        assert not listing._thread.is_alive()

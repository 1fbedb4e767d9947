"""Slots: at most N holders; the most urgent waiter goes next, first come first served within a priority."""

from __future__ import annotations

import asyncio

from reconciler.apply.slots import Slots


def test_urgent_waiters_jump_the_upload_queue() -> None:
    async def go() -> list[str]:
        slots = Slots(2)
        order: list[str] = []
        gate = asyncio.Event()

        async def hold(name: str, priority: int) -> None:
            async with slots.at(priority):
                order.append(name)
                await gate.wait()

        async def urgent(name: str) -> None:
            async with slots:
                order.append(name)
                await gate.wait()

        tasks = [asyncio.create_task(hold(f"up{i}-{p}", p)) for i, p in enumerate([2, 1, 2, 1, 2])]
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(urgent("submit")))
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(*tasks)
        return order

    # the first two took the free slots; then the submit, then priority 1 before 2, each in arrival order
    assert asyncio.run(go()) == ["up0-2", "up1-1", "submit", "up3-1", "up2-2", "up4-2"]


def test_never_more_holders_than_slots_and_a_cancelled_waiter_loses_nothing() -> None:
    async def go() -> tuple[int, int]:
        slots = Slots(3)
        holding = peak = 0

        async def work(priority: int) -> None:
            nonlocal holding, peak
            async with slots.at(priority):
                holding += 1
                peak = max(peak, holding)
                await asyncio.sleep(0.001)
                holding -= 1

        tasks = [asyncio.create_task(work(i % 4)) for i in range(40)]
        await asyncio.sleep(0)
        for task in tasks[10:20]:  # cancelled while waiting: their turn is skipped, no slot leaks
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        free = 0
        while True:  # every slot is free again
            try:
                await asyncio.wait_for(slots.acquire(), 0.05)
            except TimeoutError:
                return peak, free
            free += 1

    assert asyncio.run(go()) == (3, 3)

"""IdempotencyWindow: one run per key within the window, shared by concurrent callers."""

from __future__ import annotations

import asyncio

import pytest

from roomcast.idempotency import IdempotencyWindow


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_key_runs_once_and_repeats_get_its_result() -> None:
    runs: list[int] = []

    async def work() -> int:
        runs.append(1)
        return len(runs)

    window: IdempotencyWindow[int] = IdempotencyWindow(60)
    assert [await window.run("k", work) for _ in range(3)] == [1, 1, 1]
    assert await window.run("other", work) == 2


async def test_concurrent_calls_with_one_key_share_one_run() -> None:
    release = asyncio.Event()
    runs = 0

    async def work() -> str:
        nonlocal runs
        runs += 1
        await release.wait()
        return "done"

    window: IdempotencyWindow[str] = IdempotencyWindow(60)
    callers = [asyncio.create_task(window.run("k", work)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    async with asyncio.timeout(5):
        assert await asyncio.gather(*callers) == ["done"] * 5
    assert runs == 1


async def test_a_failed_run_is_forgotten_so_a_retry_runs() -> None:
    attempts = 0

    async def work() -> int:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("broker down")
        return attempts

    window: IdempotencyWindow[int] = IdempotencyWindow(60)
    with pytest.raises(RuntimeError):
        await window.run("k", work)
    assert await window.run("k", work) == 2


async def test_keys_expire_after_the_window_and_the_oldest_go_first() -> None:
    clock = Clock()
    counter = 0

    async def work() -> int:
        nonlocal counter
        counter += 1
        return counter

    window: IdempotencyWindow[int] = IdempotencyWindow(10, max_keys=2, clock=clock)
    assert await window.run("a", work) == 1
    clock.now = 11
    assert await window.run("a", work) == 2  # the window passed
    assert await window.run("b", work) == 3
    assert await window.run("c", work) == 4  # "a" is dropped: at most two keys
    assert await window.run("a", work) == 5

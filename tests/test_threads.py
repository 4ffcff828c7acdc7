"""The learner's threads: chosen by the work, bounded by the free cores, overridable."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sslzoo._engine import threads
from sslzoo.errors import OptionError


def test_a_small_model_trains_on_one_thread_and_a_large_one_on_the_free_cores(monkeypatch):
    monkeypatch.setattr(threads, "free_cores", lambda usable, look=threads.LOOK: 3)
    assert threads.choose(threads.SMALL_MODEL, share=4, environ={}) == 1
    assert threads.choose(threads.SMALL_MODEL + 1, share=4, environ={}) == 3
    assert threads.choose(10**7, share=1, environ={}) == 1


def test_the_users_thread_count_wins(monkeypatch):
    monkeypatch.setattr(threads, "free_cores", lambda usable, look=threads.LOOK: 1)
    assert threads.choose(10, share=4, environ={"SSLZOO_THREADS": "3"}) == 3
    assert threads.choose(10**7, share=4, environ={"OMP_NUM_THREADS": "2"}) == 2
    assert threads.choose(10**7, share=4, environ={"SSLZOO_THREADS": "4", "OMP_NUM_THREADS": "1"}) == 4
    with pytest.raises(OptionError, match=r"SSLZOO_THREADS='two' is not allowed: give a whole number"):
        threads.choose(10, share=4, environ={"SSLZOO_THREADS": "two"})


def stat(*cores: tuple[int, int]) -> dict[str, tuple[int, int]]:
    return {f"cpu{i}": busy_total for i, busy_total in enumerate(cores)}


def test_a_core_that_another_process_keeps_busy_is_not_free(monkeypatch):
    looks = iter([stat((0, 0), (0, 0)), stat((90, 100), (5, 100))])  # cpu0 busy 90 %, cpu1 5 %
    monkeypatch.setattr(threads, "_cpu_times", lambda: next(looks))
    monkeypatch.setattr(threads, "_affinity", lambda: {0, 1})
    assert threads.free_cores(2, look=0) == 1


def test_every_core_busy_still_leaves_one_thread_and_an_unreadable_machine_all(monkeypatch):
    looks = iter([stat((0, 0), (0, 0)), stat((100, 100), (100, 100))])
    monkeypatch.setattr(threads, "_cpu_times", lambda: next(looks))
    monkeypatch.setattr(threads, "_affinity", lambda: {0, 1})
    assert threads.free_cores(2, look=0) == 1
    monkeypatch.setattr(threads, "_cpu_times", lambda: None)
    assert threads.free_cores(2, look=0) == 2


def test_counting_a_models_parameters_leaves_the_random_state_alone():
    state = torch.get_rng_state()
    assert threads.parameters(lambda shape, classes: nn.Linear(shape[0], classes), (2,), 3) == 9
    assert torch.equal(torch.get_rng_state(), state)

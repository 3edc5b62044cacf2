"""orchestration.runtime.wait_settled on scripted state sequences (no engine)."""
from __future__ import annotations

from orchestration.runtime import ServiceState as S
from orchestration.runtime import wait_settled


def scripted(**sequences: list[S]):  # noqa: ANN201
    """status(name): the next state of `name`'s sequence, repeating its last one."""
    reads = {name: list(seq) for name, seq in sequences.items()}
    return lambda name: reads[name].pop(0) if len(reads[name]) > 1 else reads[name][0]


def test_waits_until_every_replica_leaves_the_transient_states() -> None:
    status = scripted(a=[S.STARTING, S.STARTING, S.RUNNING], b=[S.STARTING, S.BACKOFF, S.STARTING, S.FATAL])
    assert wait_settled(status, ["a", "b"], 5, poll_s=0) == {"a": S.RUNNING, "b": S.FATAL}


def test_the_deadline_returns_the_last_states_read() -> None:
    status = scripted(a=[S.BACKOFF], b=[S.RUNNING])
    assert wait_settled(status, ["a", "b"], 0.05, poll_s=0.01) == {"a": S.BACKOFF, "b": S.RUNNING}


def test_transient_states_are_the_callers_choice() -> None:
    status = scripted(a=[S.UNKNOWN, S.BACKOFF])
    assert wait_settled(status, ["a"], 5, poll_s=0) == {"a": S.UNKNOWN}
    assert wait_settled(scripted(a=[S.UNKNOWN, S.BACKOFF]), ["a"], 5, transient=(S.STARTING, S.UNKNOWN),
                        poll_s=0) == {"a": S.BACKOFF}

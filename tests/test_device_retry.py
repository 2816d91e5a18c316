"""One retry policy for every layer (itb_device.retry, issue 16), and the programmer's timeout."""

from __future__ import annotations

import pytest
from test_wire_serve import fresh_pump, open_port, serving

from itb_device import serial_backend
from itb_device.errors import TransientLinkError
from itb_device.retry import RetryPolicy
from itb_device.serial_backend import SerialProgrammer
from itb_device.sim.pump import PumpConfig, SimulatedPump
from itb_device.sim_backend import SimProgrammer
from itb_device.wire.link import Link
from itb_device.wire.server import PumpService


def test_a_policy_counts_its_attempts_and_pauses_between_them():
    pauses: list[float] = []
    policy = RetryPolicy(3, 0.5, sleep=pauses.append)
    assert (policy.attempts, policy.retries) == (3, 2)
    assert list(policy) == [1, 2, 3]
    assert pauses == [0.5, 0.5]  # before each attempt after the first
    assert RetryPolicy.from_retries(2) == RetryPolicy(3)
    assert not policy.exhausted(2) and policy.exhausted(3)


@pytest.mark.parametrize(("attempts", "backoff_s"), [(0, 0.0), (-1, 0.0), (True, 0.0), (2.5, 0.0),
                                                     (1, -1.0), (1, float("nan"))])
def test_a_policy_makes_at_least_one_attempt_and_never_pauses_backwards(attempts, backoff_s):
    with pytest.raises(ValueError):
        RetryPolicy(attempts, backoff_s)


def test_call_retries_only_what_it_is_told_and_raises_the_last_failure():
    tries: list[int] = []
    failures: list[tuple[int, str]] = []

    def flaky() -> str:
        tries.append(1)
        if len(tries) < 3:
            raise TransientLinkError(f"lost {len(tries)}")
        return "ok"

    policy = RetryPolicy(3)
    assert policy.call(flaky, retry_on=TransientLinkError,
                       on_failure=lambda n, exc: failures.append((n, str(exc)))) == "ok"
    assert failures == [(1, "lost 1"), (2, "lost 2")]
    tries.clear()
    with pytest.raises(TransientLinkError, match="lost 2"):
        RetryPolicy(2).call(flaky, retry_on=TransientLinkError)
    tries.clear()
    with pytest.raises(TransientLinkError, match="lost 1"):  # not retried: another kind of error
        RetryPolicy(3).call(flaky, retry_on=KeyError)
    assert len(tries) == 1


def test_each_layer_keeps_its_numbers():
    prog = SimProgrammer(SimulatedPump(PumpConfig(), 0, reservoir_ml=20.0))
    assert prog.retry == RetryPolicy(3) and prog.retries == 2
    prog.retries = 5
    assert prog.retry == RetryPolicy(6)
    link = Link(None)
    assert link.retry == RetryPolicy(9) and link.retries == 8
    link.retries = 2
    assert link.retry == RetryPolicy(3)
    assert serial_backend.BLOCK_RETRY.attempts == serial_backend.MAX_BLOCK_FAILURES + 1
    assert serial_backend.READ_BLOCK_RETRY.attempts == 1
    assert serial_backend.SNAPSHOT_RETRY == serial_backend.SESSION_END_RETRY == RetryPolicy(3)
    # no layer pauses: the link's response timeout paces its retries (a capture replays exactly)
    for policy in (prog.retry, link.retry, serial_backend.BLOCK_RETRY, serial_backend.SNAPSHOT_RETRY):
        assert policy.backoff_s == 0


def test_a_serial_programmer_waits_its_timeout_for_each_answer():
    with serving(PumpService(fresh_pump(days=1)), "tcp") as srv:
        prog = SerialProgrammer(open_port(srv.url), link_timeout=0.3)
        try:
            assert prog.timeout == prog.link.timeout == 0.3
            assert prog.link.retries == 30
        finally:
            prog.close()


def test_a_serial_programmer_names_its_timeout_option():
    with pytest.raises(TypeError, match="link_timeout="):
        SerialProgrammer(None, timeout=1.0)

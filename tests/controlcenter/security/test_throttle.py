"""The login throttle on a clock the test moves: limits, doubling lockouts, forgetting, memory."""

from __future__ import annotations

from controlcenter.security.throttle import (
    LoginThrottle,
    ThrottlePolicy,
    ThrottleSubject,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fail(throttle: LoginThrottle, times: int, user: str = "olga", address: str = "10.0.0.1") -> int:
    """Refuse ``times`` logins; return how many lockouts they started."""
    return sum(len(throttle.record_failure(user, address)) for _ in range(times))


def test_lockouts_double_up_to_the_maximum() -> None:
    clock = Clock()
    policy = ThrottlePolicy(max_failures_per_user=3, first_lockout_s=10, max_lockout_s=35)
    throttle = LoginThrottle(policy, monotonic=clock)
    durations = []
    for _ in range(4):
        assert throttle.lockout("olga", "10.0.0.1") is None
        assert fail(throttle, 3) == 1
        lockout = throttle.lockout("olga", "10.0.0.1")
        assert lockout is not None
        assert lockout.subject is ThrottleSubject.USER
        durations.append(lockout.retry_after_s)
        clock.now += lockout.retry_after_s
    assert durations == [10, 20, 35, 35]


def test_the_address_limit_counts_every_name() -> None:
    clock = Clock()
    throttle = LoginThrottle(ThrottlePolicy(max_failures_per_address=4), monotonic=clock)
    for index in range(4):
        fail(throttle, 1, user=f"name{index}")
    lockout = throttle.lockout("someone-else", "10.0.0.1")
    assert lockout is not None
    assert lockout.subject is ThrottleSubject.ADDRESS
    assert throttle.lockout("someone-else", "10.0.0.2") is None


def test_quiet_names_start_afresh_and_success_clears_the_user() -> None:
    clock = Clock()
    policy = ThrottlePolicy(max_failures_per_user=3, forget_after_s=600)
    throttle = LoginThrottle(policy, monotonic=clock)
    fail(throttle, 2)
    clock.now += 600
    assert fail(throttle, 2) == 0
    throttle.record_success("olga")
    assert fail(throttle, 2) == 0
    assert fail(throttle, 1) == 1


def test_memory_is_bounded() -> None:
    clock = Clock()
    throttle = LoginThrottle(ThrottlePolicy(max_tracked=100), monotonic=clock)
    for index in range(1000):
        throttle.record_failure(f"name{index}", f"10.0.{index // 250}.{index % 250}")
    assert len(throttle._records) <= 100

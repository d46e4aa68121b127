"""SimDevice: taking every value at once gives what reading each point gives, faults included."""

from __future__ import annotations

import pytest

from plc_sim.device import FaultKind, PointBinding, PointSpec, SimDevice


class _Model:
    def __init__(self) -> None:
        self.level = 2.5
        self.running = False
        self.mode = 1


def _device(model: _Model) -> SimDevice:
    def set_running(value: float | bool | int) -> None:
        model.running = bool(value)

    return SimDevice(
        "water.rtu1",
        "modbus",
        [
            PointBinding(
                PointSpec("water.tank1.level", "float", "m", low=0, high=5), lambda: model.level
            ),
            PointBinding(
                PointSpec("water.pump1.run", "bool", writable=True, role="output"),
                lambda: model.running,
                set_running,
            ),
            PointBinding(PointSpec("water.pump1.mode", "int"), lambda: model.mode),
        ],
        seed=7,
    )


@pytest.mark.parametrize(
    "faults", [(), (FaultKind.STUCK,), (FaultKind.NOISY,), (FaultKind.STUCK, FaultKind.NOISY)]
)
def test_read_all_gives_what_reading_each_point_gives(faults: tuple[FaultKind, ...]) -> None:
    one_by_one, at_once = _Model(), _Model()
    reader, bulk = _device(one_by_one), _device(at_once)
    for device in (reader, bulk):
        for kind in faults:
            device.set_fault(kind, noise=0.1)
    for model in (one_by_one, at_once):
        model.level, model.running = 3.75, True  # after a stuck fault froze the old values
    for _ in range(3):
        expected = [reader.read(spec.tag) for spec in reader.points]
        assert bulk.read_all() == expected
    stuck = FaultKind.STUCK in faults
    assert expected[1] is (not stuck)
    if not faults:
        assert expected == [3.75, True, 1]
    elif FaultKind.NOISY in faults and not stuck:
        assert expected[0] != 3.75  # noise on the analog value only
        assert expected[2] == 1

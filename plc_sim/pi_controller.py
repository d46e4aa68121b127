"""The proportional-integral loop that field controllers run for valves and dampers.

One algorithm shared by the simulated substation and zone controllers: a positional PI with
clamped output and anti-windup by clamping the integral term so that proportional plus integral
stays inside the output range (the integrator never winds up while the actuator is saturated).
While an operator overrides the output, the loop tracks the override so that a release is
bumpless: the output continues from where the operator left it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PiTuning:
    """Gain in output units per unit of error, integral time, and the output range."""

    gain: float
    integral_time_s: float
    low: float = 0.0
    high: float = 100.0

    def __post_init__(self) -> None:
        if self.gain <= 0 or self.integral_time_s <= 0:
            raise ValueError("PI gain and integral time must be positive")
        if self.low >= self.high:
            raise ValueError(f"PI output range {self.low}..{self.high} is empty")


def pi_step(tuning: PiTuning, integral: float, error: float, dt_s: float) -> tuple[float, float]:
    """Advance the loop by ``dt_s`` with ``error`` (setpoint - measurement); (output, integral)."""
    # Conditional expressions rather than min/max: this runs for every valve on every step.
    low, high = tuning.low, tuning.high
    proportional = tuning.gain * error
    integral += proportional * dt_s / tuning.integral_time_s
    # Anti-windup: the integral keeps proportional + integral within the output range.
    upper, lower = high - proportional, low - proportional
    integral = upper if integral > upper else integral
    integral = lower if integral < lower else integral
    integral = high if integral > high else low if integral < low else integral
    output = proportional + integral
    output = high if output > high else low if output < low else output
    return output, integral


def pi_track(tuning: PiTuning, output: float, error: float) -> float:
    """The integral that makes the loop's output equal ``output`` now (bumpless transfer)."""
    integral = output - tuning.gain * error
    return min(max(integral, tuning.low), tuning.high)

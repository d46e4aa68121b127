"""Two-position (on/off) control with a differential gap, as a level switch pair does."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HysteresisRule:
    """Switch ``output`` on when ``input`` falls below ``on_below``, off when above ``off_above``.

    Between the two levels the output keeps its state: the gap stops the output from chattering
    when the input hovers around one switching level.
    """

    name: str
    input_tag: str
    output_tag: str
    on_below: float
    off_above: float
    min_command_interval_s: float = 10.0
    description: str = ""
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.on_below >= self.off_above:
            raise ValueError(f"rule {self.name}: on_below must be lower than off_above")

    def desired_output(self, measured: float) -> bool | None:
        """The output this measurement calls for, or None inside the gap (keep the state)."""
        if measured < self.on_below:
            return True
        if measured > self.off_above:
            return False
        return None

    def reason(self, measured: float, desired: bool) -> str:
        """Why the rule commands ``desired`` at ``measured``, for the command journal."""
        if desired:
            return f"{self.input_tag} {measured:.3f} below {self.on_below:g}: switch on"
        return f"{self.input_tag} {measured:.3f} above {self.off_above:g}: switch off"

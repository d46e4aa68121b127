"""Plug-flow transport of supply water from a heat plant along its pipes.

A temperature change at the plant reaches a substation only when the water that left with it
has travelled the pipe's length; at a lower flow the water moves slower and arrives later. The
line records, for each parcel of water leaving the plant, how far the water column had moved
(the cumulative displacement), when it left and how hot it was. A consumer at distance ``L``
receives the parcel that left when the displacement was ``now - L``, whatever the flow did in
between: a variable transport delay with no per-consumer state.
"""

from __future__ import annotations

from bisect import bisect_right

_COMPACT_AFTER = 1024
"""Dropped parcels kept in the lists before they are deleted in one slice (amortised)."""


class TransportLine:
    """The supply water in transit from the plant to consumers up to ``max_length_m`` away."""

    def __init__(
        self, initial_temp_c: float, max_length_m: float, resolution_m: float = 5.0
    ) -> None:
        if max_length_m <= 0 or resolution_m <= 0:
            raise ValueError("pipe length and resolution must be positive")
        self._max_length_m = max_length_m
        self._resolution_m = resolution_m
        # The pipe starts full of water at the initial temperature, departed at time 0.
        self._positions_m = [-(max_length_m + resolution_m), 0.0]
        self._times_s = [0.0, 0.0]
        self._temps_c = [initial_temp_c, initial_temp_c]
        self._head = 0
        self.displacement_m = 0.0
        """How far the water column has moved since the start, m."""

    def advance(self, distance_m: float, time_s: float, temp_c: float) -> None:
        """Move the water ``distance_m`` on; the water now leaving the plant is at ``temp_c``."""
        if distance_m < 0:
            raise ValueError(f"water cannot flow backwards, got {distance_m} m")
        self.displacement_m += distance_m
        if self.displacement_m - self._positions_m[-1] >= self._resolution_m:
            self._positions_m.append(self.displacement_m)
            self._times_s.append(time_s)
            self._temps_c.append(temp_c)
        else:
            # The parcel at the plant outlet has not moved a resolution step: it is the same
            # water, reheated by the plant.
            self._times_s[-1] = time_s
            self._temps_c[-1] = temp_c
        self._drop_delivered()

    def arrival(self, length_m: float) -> tuple[float, float]:
        """The water now arriving at ``length_m`` from the plant: its temperature when it left
        and its departure time (linear between parcels; a plain tuple, as this is hot)."""
        if not 0 <= length_m <= self._max_length_m:
            raise ValueError(f"consumer at {length_m} m is beyond the line's {self._max_length_m}")
        positions = self._positions_m
        target = self.displacement_m - length_m
        index = bisect_right(positions, target, lo=self._head) - 1
        if index >= len(positions) - 1:
            return self._temps_c[-1], self._times_s[-1]
        index = max(index, self._head)
        span = positions[index + 1] - positions[index]
        weight = (target - positions[index]) / span
        temps, times = self._temps_c, self._times_s
        return (
            temps[index] + (temps[index + 1] - temps[index]) * weight,
            times[index] + (times[index + 1] - times[index]) * weight,
        )

    def __len__(self) -> int:
        return len(self._positions_m) - self._head

    def _drop_delivered(self) -> None:
        """Forget parcels that every consumer has already received."""
        oldest_needed = self.displacement_m - self._max_length_m
        positions = self._positions_m
        head = self._head
        while head + 1 < len(positions) and positions[head + 1] <= oldest_needed:
            head += 1
        if head > _COMPACT_AFTER:
            del positions[:head], self._times_s[:head], self._temps_c[:head]
            head = 0
        self._head = head

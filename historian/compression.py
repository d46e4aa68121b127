"""Per-tag compression of samples before they are stored, as PI and Ignition do it.

Two stages, applied in this order (as the PI Data Archive does):

1. **Exception deviation** (deadband, ``ExceptionFilter``): a value passes when it differs from the
   last passed value by more than the exception deviation. When a value passes, the last rejected
   value before it passes too, so a ramp or a step starts where it really started.
2. **Swinging door** (``SwingingDoorFilter``; E. H. Bristol, "Swinging door trending: adaptive
   trend recording?", ISA National Conference, 1990): a value is stored only when the straight line
   from the last stored value can no longer pass within the compression deviation of every value
   received since.

Rules common to both stages: the first sample is stored; a quality change stores the value held
before it and the changed sample itself; non-numeric values (bool, str, missing, NaN or infinite)
are stored on change only; when more than the maximum interval (heartbeat) has passed since the
last stored value, the held value is stored; ``flush()`` stores the held value so nothing is lost
on shutdown. A sample not later than the previous one is stored as is and restarts the filter.
Compression works on ``server_time``, the time the store orders and keys samples on (the time the
center received them; a device's source time may stand still or go back after an outage).

Error bound, with linear interpolation between consecutive stored values of one tag: every
numeric sample of a run of equal quality is reconstructed within ``compression_deviation`` by the
swinging door alone, within ``2 * exception_deviation`` by the exception filter alone (the passed
"previous" value may itself lie up to one deviation away, on the other side), and within
``compression_deviation + 2 * exception_deviation`` by both (``CompressionSettings.error_bound``).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Literal, Protocol

from controlcenter.model import Sample, TagDef

CompressionMode = Literal["raw", "exception", "deadband", "swinging_door"]
"""``raw`` stores every sample; ``exception`` the exception filter only (``deadband`` is the same,
by Ignition's name for it); ``swinging_door`` both, as PI does."""

COMPRESSION_MODES: tuple[CompressionMode, ...] = ("raw", "exception", "deadband", "swinging_door")
"""Every compression mode, in order of increasing compression."""

_EXCEPTION_ONLY = ("exception", "deadband")


class CompressionConfigError(ValueError):
    """Compression settings that cannot be used (negative deviation, span unknown...)."""


@dataclass(frozen=True, slots=True)
class CompressionSettings:
    """How one tag's samples are compressed; deviations in engineering units or % of span."""

    mode: CompressionMode = "raw"
    exception_deviation: float = 0.0
    exception_is_percent_of_span: bool = False
    compression_deviation: float = 0.0
    compression_is_percent_of_span: bool = False
    max_interval_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.mode not in COMPRESSION_MODES:
            raise CompressionConfigError(f"unknown compression mode {self.mode!r}")
        for name in ("exception_deviation", "compression_deviation"):
            deviation = getattr(self, name)
            if not math.isfinite(deviation) or deviation < 0.0:
                raise CompressionConfigError(f"{name} must be finite and >= 0, not {deviation!r}")
        # An infinite maximum interval switches the heartbeat off; zero would store everything.
        if math.isnan(self.max_interval_s) or self.max_interval_s <= 0.0:
            raise CompressionConfigError(f"max_interval_s must be > 0, not {self.max_interval_s!r}")

    @property
    def is_absolute(self) -> bool:
        """Whether both deviations are in engineering units (percent of span resolved)."""
        return not (self.exception_is_percent_of_span or self.compression_is_percent_of_span)

    @property
    def error_bound(self) -> float:
        """Largest reconstruction error of a numeric sample, in engineering units.

        Linear interpolation between stored values reconstructs every numeric sample of a run of
        equal quality within this bound (see the module documentation for why it is twice the
        exception deviation). Only defined once percentages are resolved.
        """
        if not self.is_absolute:
            raise CompressionConfigError("resolve percent-of-span deviations first")
        if self.mode == "raw":
            return 0.0
        if self.mode in _EXCEPTION_ONLY:
            return 2.0 * self.exception_deviation
        return self.compression_deviation + 2.0 * self.exception_deviation

    def resolve_span(self, low: float | None, high: float | None) -> CompressionSettings:
        """These settings with percent-of-span deviations turned into engineering units."""
        if self.is_absolute:
            return self
        if low is None or high is None or not math.isfinite(high - low) or high <= low:
            raise CompressionConfigError(
                f"a deviation in percent of span needs a range with low < high, not {low}..{high}"
            )
        span = high - low
        return replace(
            self,
            exception_deviation=_percent_of(self.exception_deviation, span)
            if self.exception_is_percent_of_span
            else self.exception_deviation,
            exception_is_percent_of_span=False,
            compression_deviation=_percent_of(self.compression_deviation, span)
            if self.compression_is_percent_of_span
            else self.compression_deviation,
            compression_is_percent_of_span=False,
        )

    def resolved_for(self, tag: TagDef) -> CompressionSettings:
        """These settings in engineering units for ``tag``, using its low..high range as span."""
        try:
            return self.resolve_span(tag.low, tag.high)
        except CompressionConfigError as err:
            raise CompressionConfigError(f"tag {tag.name}: {err}") from err


RAW = CompressionSettings()
"""Store every sample."""


def _percent_of(percent: float, span: float) -> float:
    return percent / 100.0 * span


def _checked_deviation(deviation: float) -> float:
    if not math.isfinite(deviation) or deviation < 0.0:
        raise CompressionConfigError(f"a deviation must be finite and >= 0, not {deviation!r}")
    return deviation


def _number(sample: Sample) -> float | None:
    """The value as a float when it can be compressed as a number (not bool, not NaN/inf)."""
    value = sample.value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _same_value(a: Sample, b: Sample) -> bool:
    # True == 1 in Python, yet a bool tag turning into an int is a change worth storing; and a
    # NaN repeated is no change, though NaN != NaN.
    if type(a.value) is not type(b.value):
        return False
    if isinstance(a.value, float) and isinstance(b.value, float):
        return a.value == b.value or (math.isnan(a.value) and math.isnan(b.value))
    return a.value == b.value


def _seconds_between(earlier: Sample, later: Sample) -> float:
    return (later.server_time - earlier.server_time).total_seconds()


class SampleFilter(Protocol):
    """A streaming, per-tag filter: which samples to store now, and what it still holds."""

    def offer(self, sample: Sample) -> list[Sample]:
        """Take the next sample of the tag; return the samples to store now, oldest first."""
        ...

    def flush(self) -> list[Sample]:
        """Return the held sample, if any, so that nothing is lost on shutdown."""
        ...


class _HoldingFilter:
    """The rules both stages share; subclasses decide on numeric samples of an unbroken run."""

    def __init__(self, max_interval_s: float) -> None:
        self._max_interval_s = max_interval_s
        self._stored: Sample | None = None
        """The last sample this filter passed on: the reference of its tests."""
        self._held: Sample | None = None
        """The last sample received if it was not passed on."""

    def offer(self, sample: Sample) -> list[Sample]:
        """Take the next sample of the tag; return the samples to store now, oldest first."""
        stored = self._stored
        if stored is None:
            self._restart(sample)
            return [sample]
        previous = self._held if self._held is not None else stored
        if (
            sample.server_time <= previous.server_time
            or sample.quality != previous.quality
            or (_number(sample) is None) != (_number(previous) is None)
        ):
            # Out of order, a quality change, or a change between numeric and non-numeric: what
            # came before is kept as it was, and this sample starts a new run.
            out = self.flush()
            self._restart(sample)
            out.append(sample)
            return out
        out = []
        if self._held is not None and _seconds_between(stored, sample) > self._max_interval_s:
            # Heartbeat: the held sample is still within max_interval of the last stored one.
            out.extend(self.flush())
        if _number(sample) is None:
            # A non-numeric run holds only repeats of its stored value, so compare with that.
            reference = self._held if self._held is not None else self._stored
            assert reference is not None
            if _same_value(sample, reference):
                self._held = sample
            else:
                out.extend(self.flush())
                self._restart(sample)
                out.append(sample)
            return out
        out.extend(self._offer_number(sample))
        return out

    def flush(self) -> list[Sample]:
        """Return the held sample, if any, so that nothing is lost on shutdown."""
        held = self._held
        if held is None:
            return []
        self._restart(held)
        return [held]

    def _restart(self, stored: Sample) -> None:
        self._stored = stored
        self._held = None

    def _offer_number(self, sample: Sample) -> list[Sample]:
        raise NotImplementedError


class ExceptionFilter(_HoldingFilter):
    """Exception deviation (deadband): pass a value that moved more than the deviation."""

    def __init__(self, deviation: float, max_interval_s: float = RAW.max_interval_s) -> None:
        super().__init__(max_interval_s)
        self._deviation = _checked_deviation(deviation)

    def _offer_number(self, sample: Sample) -> list[Sample]:
        assert self._stored is not None
        value, reference = _number(sample), _number(self._stored)
        assert value is not None and reference is not None
        if abs(value - reference) <= self._deviation:
            self._held = sample
            return []
        # PI sends the previous value with an exception, so the move starts where it started.
        out = self.flush()
        self._restart(sample)
        out.append(sample)
        return out


class SwingingDoorFilter(_HoldingFilter):
    """Swinging-door trending (Bristol 1990) with a compression deviation in engineering units.

    The door is the range of slopes from the last stored point that pass within the deviation of
    every point received since; each new point narrows it. When a new point falls outside it, the
    held point (the last one inside) is stored and a new door opens from it.
    """

    def __init__(self, deviation: float, max_interval_s: float = RAW.max_interval_s) -> None:
        super().__init__(max_interval_s)
        self._deviation = _checked_deviation(deviation)
        self._upper_slope = math.inf
        self._lower_slope = -math.inf

    def _offer_number(self, sample: Sample) -> list[Sample]:
        assert self._stored is not None
        value, origin = _number(sample), _number(self._stored)
        assert value is not None and origin is not None
        elapsed = _seconds_between(self._stored, sample)
        upper = (value + self._deviation - origin) / elapsed
        lower = (value - self._deviation - origin) / elapsed
        if self._held is None:
            self._upper_slope, self._lower_slope = upper, lower
            self._held = sample
            return []
        # The point must lie inside the door the earlier points left open: then the line to it
        # passes within the deviation of each of them. Its own band then narrows the door.
        if self._lower_slope <= (value - origin) / elapsed <= self._upper_slope:
            self._upper_slope = min(upper, self._upper_slope)
            self._lower_slope = max(lower, self._lower_slope)
            self._held = sample
            return []
        # The door closed: the line to the held point still fits every point before it.
        out = self.flush()
        out.extend(self._offer_number(sample))
        return out


class _PassThrough:
    """Raw mode: every sample is stored."""

    def offer(self, sample: Sample) -> list[Sample]:
        return [sample]

    def flush(self) -> list[Sample]:
        return []


class TagCompressor:
    """One tag's compression per its settings: exception first, then swinging door (as PI)."""

    def __init__(self, settings: CompressionSettings) -> None:
        if not settings.is_absolute:
            raise CompressionConfigError("resolve percent-of-span deviations before compressing")
        self.settings = settings
        self._stages: tuple[SampleFilter, ...]
        if settings.mode == "raw":
            self._stages = (_PassThrough(),)
        elif settings.mode in _EXCEPTION_ONLY:
            self._stages = (ExceptionFilter(settings.exception_deviation, settings.max_interval_s),)
        else:
            self._stages = (
                ExceptionFilter(settings.exception_deviation, settings.max_interval_s),
                SwingingDoorFilter(settings.compression_deviation, settings.max_interval_s),
            )

    def offer(self, sample: Sample) -> list[Sample]:
        """Take the next sample of the tag; return the samples to store now, oldest first."""
        return self._through(self._stages, [sample])

    def flush(self) -> list[Sample]:
        """Return every held sample, so that nothing is lost on shutdown."""
        out: list[Sample] = []
        for index, stage in enumerate(self._stages):
            # What one stage releases still goes through the stages after it.
            out = self._through(self._stages[index + 1 :], [*out, *stage.flush()])
        return out

    @staticmethod
    def _through(stages: Sequence[SampleFilter], samples: list[Sample]) -> list[Sample]:
        for stage in stages:
            samples = [out for sample in samples for out in stage.offer(sample)]
        return samples


class Compressor:
    """Compression for many tags: one ``TagCompressor`` per tag name.

    Tags without settings are stored raw: compression must never drop what it was not told to.
    """

    def __init__(
        self,
        settings_by_tag: Mapping[str, CompressionSettings],
        default: CompressionSettings = RAW,
    ) -> None:
        unresolved = sorted(name for name, s in settings_by_tag.items() if not s.is_absolute)
        if unresolved or not default.is_absolute:
            raise CompressionConfigError(
                f"percent-of-span deviations not resolved for {unresolved or 'the default'}"
            )
        self._settings = dict(settings_by_tag)
        self._default = default
        self._by_tag: dict[str, TagCompressor] = {}

    @classmethod
    def for_tags(
        cls,
        settings_by_tag: Mapping[str, CompressionSettings],
        tags: Iterable[TagDef],
        default: CompressionSettings = RAW,
    ) -> Compressor:
        """A compressor with percent-of-span deviations resolved against each tag's range."""
        by_name = {tag.name: tag for tag in tags}
        missing = sorted(set(settings_by_tag) - set(by_name))
        if missing:
            raise CompressionConfigError(f"settings for tags not defined: {missing}")
        return cls(
            {name: s.resolved_for(by_name[name]) for name, s in settings_by_tag.items()}, default
        )

    @property
    def stores_everything(self) -> bool:
        """Whether every tag is in raw mode, so that offering samples is a no-op."""
        return self._default.mode == "raw" and all(
            settings.mode == "raw" for settings in self._settings.values()
        )

    def offer_batch(self, samples: Iterable[Sample]) -> list[Sample]:
        """Take samples of any tags (each tag's in time order); return those to store now."""
        out: list[Sample] = []
        compressed = self._settings
        default_is_raw = self._default.mode == "raw"
        for sample in samples:
            if default_is_raw and sample.tag not in compressed:
                out.append(sample)  # raw mode: no per-tag state to keep
                continue
            out.extend(self._compressor(sample.tag).offer(sample))
        return out

    def flush(self) -> list[Sample]:
        """Return every held sample of every tag, so that nothing is lost on shutdown."""
        return [sample for tag in self._by_tag.values() for sample in tag.flush()]

    def _compressor(self, tag: str) -> TagCompressor:
        compressor = self._by_tag.get(tag)
        if compressor is None:
            compressor = TagCompressor(self._settings.get(tag, self._default))
            self._by_tag[tag] = compressor
        return compressor


def reconstruction_errors(raw: Sequence[Sample], stored: Sequence[Sample]) -> list[float]:
    """How far each raw sample of one tag lies from what the stored samples reconstruct.

    A numeric sample between two numeric stored samples is compared with the straight line
    between them; otherwise with the last stored value at or before it (a non-numeric sample: 0
    when equal, ``inf`` when not). A sample before the first stored one has error ``inf``. Both
    sequences must be in strictly increasing ``server_time`` order.
    """
    _require_increasing(raw, "raw")
    _require_increasing(stored, "stored")
    times = [s.server_time for s in stored]
    errors: list[float] = []
    for sample in raw:
        after = bisect.bisect_right(times, sample.server_time)
        if after == 0:
            errors.append(math.inf)
            continue
        before = stored[after - 1]
        value = _number(sample)
        if value is None:
            errors.append(0.0 if _same_value(sample, before) else math.inf)
            continue
        start = _number(before)
        if start is None:
            errors.append(math.inf)
            continue
        if before.server_time == sample.server_time or after == len(stored):
            errors.append(abs(value - start))
            continue
        end_sample = stored[after]
        end = _number(end_sample)
        if end is None:
            errors.append(abs(value - start))
            continue
        fraction = _seconds_between(before, sample) / _seconds_between(before, end_sample)
        errors.append(abs(value - (start + (end - start) * fraction)))
    return errors


def compression_ratio(raw: Sequence[Sample], stored: Sequence[Sample]) -> float:
    """How many raw samples each stored sample stands for (``inf`` when nothing is stored)."""
    return len(raw) / len(stored) if stored else math.inf


def _require_increasing(samples: Sequence[Sample], what: str) -> None:
    for earlier, later in pairwise(samples):
        if later.server_time <= earlier.server_time:
            raise ValueError(f"{what} samples are not in strictly increasing time order")

"""What every driver counts and logs about its device: requests, errors, availability.

One line when the device becomes unreachable, one when it answers again, never one per failed
request: operators read these logs. ``snapshot`` is the driver's ``diagnostics()``.
"""

from __future__ import annotations

import logging

from drivers.base import DriverDiagnostics, DriverError


class DriverHealth:
    """Request and error counts and the availability of one driver's device."""

    def __init__(self, device: str, log: logging.Logger) -> None:
        self._device = device
        self._log = log
        self.requests = 0
        self.errors = 0
        self.last_error = ""
        self.errors_by_kind: dict[str, int] = {}
        self.available: bool | None = None
        """None until the first request; then whether the device answered the last one."""

    def count_request(self) -> None:
        """One more request sent."""
        self.requests += 1

    def count_error(self, kind: str, message: str) -> None:
        """One more error of ``kind`` (a quality sub-status or a driver-specific kind)."""
        self.errors += 1
        self.last_error = message
        self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + 1

    def failed(self, error: DriverError, cause: BaseException | None = None) -> DriverError:
        """Count a communication failure and log it once per outage; return it for raising."""
        self.count_error(error.substatus.value, str(error))
        if self.available is not False:
            detail = f" ({cause})" if cause is not None and str(cause) not in str(error) else ""
            self._log.warning("%s%s", error, detail)
        self.available = False
        return error

    def mark_available(self, where: str, detail: str = "") -> None:
        """The device answered: log the recovery if it was unreachable."""
        if self.available is False:
            self._log.info("%s: communication restored%s", where, detail)
        self.available = True

    def snapshot(self, connected: bool) -> DriverDiagnostics:
        """The counts as the driver's diagnostics."""
        return DriverDiagnostics(
            device=self._device,
            connected=connected,
            requests=self.requests,
            errors=self.errors,
            last_error=self.last_error,
            errors_by_kind=dict(self.errors_by_kind),
        )

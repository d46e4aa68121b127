"""The NATS subject names of one site, and the JetStream stream that keeps them.

``<root>.<site>.samples.<domain>.<device>``  batches of samples from one device (stream)
``<root>.<site>.events.<edge>``              an edge's events for the journal (stream)
``<root>.<site>.diag.<edge>``                an edge's device diagnostics (core NATS: the
                                             latest snapshot matters, not its history)
``<root>.<site>.cmd.<edge>``                 commands to the devices an edge owns (request/reply)

``root`` is ``cc`` in production; tests give each run its own so that runs never meet on a
shared server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(r"[^a-z0-9_-]+")
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
DEFAULT_ROOT = "cc"


def slug(name: str) -> str:
    """One NATS subject token from a free-form name: lower case, dots and spaces to dashes.

    ``"Demo City"`` → ``"demo-city"``; a name with nothing usable raises ValueError.
    """
    token = _TOKEN.sub("-", name.strip().lower()).strip("-")
    if not token:
        raise ValueError(f"{name!r} gives no usable subject token")
    return token


@dataclass(frozen=True, slots=True)
class Subjects:
    """The subjects and stream of one site under one root."""

    site: str
    """The site's slug (see ``slug``)."""
    root: str = DEFAULT_ROOT

    def __post_init__(self) -> None:
        for part in (self.site, self.root):
            if not _NAME.match(part):
                raise ValueError(f"{part!r} is not a subject token (letters, digits, _ and -)")

    @classmethod
    def for_site(cls, site_name: str, root: str = DEFAULT_ROOT) -> Subjects:
        """The subjects of the site called ``site_name``."""
        return cls(slug(site_name), root)

    @property
    def prefix(self) -> str:
        """``<root>.<site>``."""
        return f"{self.root}.{self.site}"

    @property
    def stream(self) -> str:
        """The JetStream stream holding the site's samples and events."""
        return f"{self.root}_{self.site}".upper().replace("-", "_")

    @property
    def stream_subjects(self) -> list[str]:
        """The subjects the stream keeps."""
        return [f"{self.prefix}.samples.>", f"{self.prefix}.events.>"]

    @property
    def all_samples(self) -> str:
        """The wildcard of every device's samples."""
        return f"{self.prefix}.samples.>"

    @property
    def all_events(self) -> str:
        """The wildcard of every edge's events."""
        return f"{self.prefix}.events.>"

    @property
    def all_diagnostics(self) -> str:
        """The wildcard of every edge's diagnostics."""
        return f"{self.prefix}.diag.*"

    def samples(self, device: str) -> str:
        """The subject of one device's samples; its domain is its name's first part."""
        domain = device.split(".", 1)[0]
        return f"{self.prefix}.samples.{slug(domain)}.{slug(device)}"

    def is_samples(self, subject: str) -> bool:
        """Whether ``subject`` carries a device's samples."""
        return subject.startswith(f"{self.prefix}.samples.")

    def diagnostics(self, edge: str) -> str:
        """The subject of one edge's device diagnostics."""
        return f"{self.prefix}.diag.{slug(edge)}"

    def events(self, edge: str) -> str:
        """The subject of one edge's events."""
        return f"{self.prefix}.events.{slug(edge)}"

    def commands(self, edge: str) -> str:
        """The subject an edge answers commands on."""
        return f"{self.prefix}.cmd.{slug(edge)}"

    def consumer(self, purpose: str) -> str:
        """The durable consumer name every center process shares for ``purpose``."""
        return f"center-{self.site}-{slug(purpose)}"

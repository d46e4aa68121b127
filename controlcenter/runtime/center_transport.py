"""The center's side of the transport: a driver per edge-owned device (commands through its
edge) and the ingest that feeds the center's bus from the site's stream (``run --nats``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from controlcenter.bus import SampleBus
from controlcenter.model import ScanDiagnostics
from controlcenter.ports import DeviceHealthView, EventJournal
from controlcenter.site.config import SiteConfig
from controlcenter.transport.ingest import CenterIngest, DurabilityGauge, EdgeDevices
from controlcenter.transport.link import NatsLink, StreamSettings, server_urls
from controlcenter.transport.remote_driver import RemoteDriver
from controlcenter.transport.subjects import DEFAULT_ROOT, Subjects


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """Where on NATS a site lives and how its stream keeps messages."""

    root: str = DEFAULT_ROOT
    """The first subject token (``cc``); tests give each run its own."""
    consumer: str | None = None
    """The center's durable consumer; centers naming the same one share the samples (None:
    the site's shared default)."""
    stream: StreamSettings = field(default_factory=StreamSettings)

    @classmethod
    def for_nats(
        cls,
        nats_url: str | None,
        *,
        root: str = DEFAULT_ROOT,
        consumer: str | None = None,
        replicas: int | None = None,
    ) -> TransportOptions:
        """The options of ``--nats URL``: the stream's replicas as given, else by the URL."""
        chosen = replicas if replicas is not None else default_replicas(nats_url)
        if not 1 <= chosen <= MAX_REPLICAS:
            raise ValueError(f"a stream keeps 1 to {MAX_REPLICAS} replicas, not {chosen}")
        return cls(root=root, consumer=consumer, stream=replace(StreamSettings(), replicas=chosen))


MAX_REPLICAS = 5
"""JetStream's limit on a stream's copies."""
CLUSTER_REPLICAS = 3
"""The copies a stream keeps on a cluster: one node may be lost with nothing lost and
publishing going on (two of three still form a quorum)."""


def default_replicas(nats_url: str | None) -> int:
    """Three copies when the URL names three or more servers (a cluster), else one.

    A single server cannot keep more than one copy; a client given one node of a cluster
    keeps a stream's existing replicas (``ensure_stream`` never lowers them).
    """
    if nats_url is None:
        return 1
    return CLUSTER_REPLICAS if len(server_urls(nats_url)) >= CLUSTER_REPLICAS else 1


class CombinedHealth:
    """The center's own devices' health and the edges' (a ``DeviceHealthView``)."""

    def __init__(self, local: DeviceHealthView, remote: DeviceHealthView) -> None:
        self._local = local
        self._remote = remote

    def diagnostics(self) -> list[ScanDiagnostics]:
        """One entry per device: the center's scans, then what the edges last reported."""
        return [*self._local.diagnostics(), *self._remote.diagnostics()]


class CenterTransport:
    """The center's link to its edges: a driver per edge device and the stream's ingest."""

    def __init__(
        self, site: SiteConfig, nats_url: str, options: TransportOptions | None = None
    ) -> None:
        self.options = options or TransportOptions()
        self.subjects = Subjects.for_site(site.site.name, self.options.root)
        self.link = NatsLink(nats_url, f"center-{self.subjects.site}")
        edge_of = site.edges()
        self.owners = EdgeDevices(
            edge_of=edge_of,
            device_of={tag.name: tag.device for tag in site.tag_defs() if tag.device in edge_of},
        )
        self.ingest: CenterIngest | None = None

    def owns(self, device: str) -> bool:
        """Whether an edge owns ``device`` (the center neither polls nor writes it itself)."""
        return device in self.owners.edge_of

    def driver(self, device: str) -> RemoteDriver:
        """The driver that writes ``device`` through its edge."""
        return RemoteDriver(device, self.owners.edge_of[device], self.link, self.subjects)

    def attach(
        self,
        publish: SampleBus,
        durability: DurabilityGauge,
        journal: EventJournal | None,
    ) -> CenterIngest:
        """The ingest feeding ``publish`` (the center's bus) and acknowledging by ``durability``."""
        self.ingest = CenterIngest(
            self.link,
            self.subjects,
            self.owners,
            publish.publish,
            durability,
            journal=journal,
            consumer=self.options.consumer,
            settings=self.options.stream,
        )
        return self.ingest

    async def run(self) -> None:
        """Consume until cancelled."""
        if self.ingest is None:
            raise RuntimeError("the transport's ingest is not attached")
        await self.ingest.run()

    async def close(self) -> None:
        """Close the link."""
        await self.link.close()

"""Subscriptions: sharding a point set, creating monitored items, routing notifications.

A subscription (Part 4, 5.13) carries monitored items (5.12) whose data changes the server
queues and sends in publish responses, one per publishing interval. Large sets are split into
shards of at most ``max_items_per_subscription`` items, each its own subscription, so that no
single publish response grows too large to encode, send and decode within an interval.

The router is on the hot path: one call per publish response, one sample per notification,
no logging and no awaits per item; the batch goes to the callback in one call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from asyncua import ua
from asyncua.ua.attribute_ids import AttributeIds

from controlcenter.model import DataType, Quality, Sample, Substatus, TagDef
from controlcenter.ports import Clock
from drivers.base import AddressError
from drivers.opcua.config import OpcUaDeviceConfig
from drivers.opcua.session import OpcUaSession
from drivers.opcua.values import quality_of, status_name, to_sample

LIFETIME_S = 60.0
"""How long a server keeps a subscription that hears no publish request (Part 4, 5.13.1.1)."""

_NUMERIC = frozenset({DataType.FLOAT, DataType.INT})


@dataclass(frozen=True, slots=True)
class SubscriptionSettings:
    """How one subscribe call's points are sampled and published."""

    sampling_interval_s: float
    publishing_interval_s: float
    queue_size: int
    deadband: float
    keepalive_s: float


MIN_PUBLISHING_INTERVAL_S = 0.1
"""Shortest default publishing interval: more publish responses cost more than they gain."""


def settings_for(config: OpcUaDeviceConfig, interval_s: float) -> SubscriptionSettings:
    """Settings for points expected about every ``interval_s``."""
    if not interval_s > 0:
        raise ValueError(f"subscription interval must be positive, got {interval_s}")
    # Publishing a quarter interval keeps a change's wait on the server short (the sampling
    # interval says how fresh values must be; the publishing interval how long they queue).
    publishing = config.publishing_interval_s or max(MIN_PUBLISHING_INTERVAL_S, interval_s / 4)
    return SubscriptionSettings(
        sampling_interval_s=interval_s,
        publishing_interval_s=publishing,
        queue_size=config.queue_size,
        deadband=config.deadband,
        keepalive_s=config.keepalive_s,
    )


def shard(points: Sequence[TagDef], max_items: int) -> tuple[tuple[TagDef, ...], ...]:
    """Split points into consecutive shards of at most ``max_items``."""
    if max_items < 1:
        raise ValueError(f"max_items must be at least 1, got {max_items}")
    return tuple(tuple(points[i : i + max_items]) for i in range(0, len(points), max_items))


def subscription_parameters(settings: SubscriptionSettings) -> ua.CreateSubscriptionParameters:
    """CreateSubscription parameters (Part 4, 5.13.2): the lifetime count must be at least
    three keep-alive counts; a keep-alive comes about every ``keepalive_s``."""
    publishing_s = settings.publishing_interval_s
    # At most two publishing intervals between keep-alives: the scan engine calls a pushed
    # point stale after three intervals without news.
    keepalive_count = max(1, min(2, math.ceil(settings.keepalive_s / publishing_s)))
    lifetime_count = max(3 * keepalive_count, math.ceil(LIFETIME_S / publishing_s))
    return ua.CreateSubscriptionParameters(
        RequestedPublishingInterval=publishing_s * 1000.0,
        RequestedLifetimeCount=lifetime_count,
        RequestedMaxKeepAliveCount=keepalive_count,
        MaxNotificationsPerPublish=0,
        PublishingEnabled=True,
        Priority=0,
    )


def monitored_item(
    node_id: ua.NodeId, handle: int, tag: TagDef, settings: SubscriptionSettings
) -> ua.MonitoredItemCreateRequest:
    """One monitored item on the Value attribute (Part 4, 5.12.2), with an absolute deadband
    on numeric tags when configured (DataChangeFilter, Part 4, 7.22.2)."""
    deadband = settings.deadband if tag.data_type in _NUMERIC else 0.0
    data_filter = ua.DataChangeFilter(
        Trigger=ua.DataChangeTrigger.StatusValue,
        DeadbandType=ua.DeadbandType.Absolute if deadband > 0 else ua.DeadbandType.None_,
        DeadbandValue=deadband,
    )
    return ua.MonitoredItemCreateRequest(
        ItemToMonitor=ua.ReadValueId(NodeId=node_id, AttributeId=AttributeIds.Value),
        MonitoringMode=ua.MonitoringMode.Reporting,
        RequestedParameters=ua.MonitoringParameters(
            ClientHandle=handle,
            SamplingInterval=settings.sampling_interval_s * 1000.0,
            Filter=data_filter,
            QueueSize=settings.queue_size,
            DiscardOldest=True,
        ),
    )


Deliver = Callable[[list[Sample]], None]
StatusListener = Callable[[int], None]


class ShardRouter:
    """Turns one subscription's publish responses into batches of samples."""

    __slots__ = ("_clock", "_deliver", "_first_handle", "_on_status", "_tags", "notifications")

    def __init__(
        self,
        tags: Sequence[TagDef],
        first_handle: int,
        deliver: Deliver,
        on_status: StatusListener,
        clock: Clock,
    ) -> None:
        self._tags = tuple(tags)
        self._first_handle = first_handle
        self._deliver = deliver
        self._on_status = on_status
        self._clock = clock
        self.notifications = 0

    def __call__(self, result: ua.PublishResult) -> None:
        """Handle one publish response (called by the session's publish loop)."""
        for data in result.NotificationMessage.NotificationData:
            if isinstance(data, ua.DataChangeNotification):
                self._data_change(data.MonitoredItems)
            elif isinstance(data, ua.StatusChangeNotification):
                self._on_status(int(data.Status.value))
        # Every publish response, a keep-alive included (Part 4, 5.13.1.1), proves the
        # subscription alive: unchanged values are still current. An empty batch says so.
        self._deliver([])

    def _data_change(self, items: Sequence[ua.MonitoredItemNotification]) -> None:
        tags, first, count = self._tags, self._first_handle, len(self._tags)
        now = self._clock.now()
        samples: list[Sample] = []
        for item in items:
            slot = item.ClientHandle - first
            if 0 <= slot < count:
                samples.append(to_sample(tags[slot], item.Value, now))
        if samples:
            self.notifications += len(samples)
            self._deliver(samples)


@dataclass(frozen=True, slots=True)
class CreatedShard:
    """A shard's subscription on the server and the points it could not monitor."""

    subscription_id: int
    router: ShardRouter
    monitored: int
    refused: tuple[Sample, ...]


async def create_shard(
    session: OpcUaSession,
    points: Sequence[TagDef],
    settings: SubscriptionSettings,
    deliver: Deliver,
    on_status: StatusListener,
    clock: Clock,
) -> CreatedShard:
    """Resolve the points, create their subscription and monitored items.

    Points whose address does not resolve, or whose item the server refuses, come back as Bad
    samples in ``refused``; the rest are monitored and deliver their current value first.
    """
    await session.resolve(point.address for point in points)
    now = clock.now()
    refused: list[Sample] = []
    tags: list[TagDef] = []
    node_ids: list[ua.NodeId] = []
    for point in points:
        try:
            node_ids.append(session.node_id(point.address))
        except AddressError as err:
            refused.append(_bad(point, Quality.bad(Substatus.CONFIG_ERROR, str(err)), now))
            continue
        tags.append(point)
    first = session.allocate_handles(len(tags))
    router = ShardRouter(tags, first, deliver, on_status, clock)
    created = await session.create_subscription(subscription_parameters(settings), router)
    requests = [
        monitored_item(node_id, first + slot, tag, settings)
        for slot, (node_id, tag) in enumerate(zip(node_ids, tags, strict=True))
    ]
    try:
        results = await session.create_monitored_items(created.SubscriptionId, requests)
    except Exception:
        # Half-created: drop the subscription so a retry does not duplicate its items.
        await session.delete_subscription(int(created.SubscriptionId))
        raise
    monitored = 0
    for tag, result in zip(tags, results, strict=True):
        code = int(result.StatusCode.value)
        if code & 0x80000000:
            quality = quality_of(code)
            reason = f"monitored item refused ({status_name(code)})"
            refused.append(_bad(tag, Quality.bad(quality.substatus, reason), now))
        else:
            monitored += 1
    return CreatedShard(int(created.SubscriptionId), router, monitored, tuple(refused))


def _bad(tag: TagDef, quality: Quality, now: datetime) -> Sample:
    return Sample(tag.name, None, quality, now, now)

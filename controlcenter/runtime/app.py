"""The composition root: builds the center from a site file and runs it until told to stop."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from alarms.cap import (
    AlertDesk,
    Audience,
    Category,
    Certainty,
    PublicAlertRule,
    ResponseType,
    Severity,
    Urgency,
)
from alarms.collection import CollectionPlanner
from alarms.conditions import AlarmDefinitionError
from alarms.engine import AlarmEngine
from alarms.leaks import NightFlowDetector, NightFlowMemory
from alarms.monitor import AlarmMonitor
from alarms.notify import Notifier
from alarms.requests import AlarmRequestProcessor
from alarms.service import AlarmService
from controlcenter.acquisition.scan import DeviceScan, ScanEngine
from controlcenter.api.app import create_api
from controlcenter.api.open_data import OpenDataService, create_open_data
from controlcenter.api.operations import (
    OPERATIONS_PATHS,
    CenterSources,
    MetricsAccess,
    Readiness,
    ReadinessPolicy,
    StoreWriteProbe,
    create_operations,
    metrics_registry,
)
from controlcenter.api.routes.reports import ReportDesk
from controlcenter.api.services import API_TOKENS_FILE, ApiServices
from controlcenter.api.stream import STREAM_PATH as API_STREAM_PATH
from controlcenter.api.stream import stream_endpoint as api_stream_endpoint
from controlcenter.automation import AlarmDef, AlarmKind, GeoPoint
from controlcenter.bus import SampleBus
from controlcenter.commands.pipeline import CommandPipeline
from controlcenter.live import LiveHub, LiveSnapshot
from controlcenter.model import Event, EventKind, Quality, Sample, TagDef, User
from controlcenter.ports import Clock, DeviceHealthView
from controlcenter.runtime.center_transport import (
    CenterTransport,
    CombinedHealth,
    TransportOptions,
)
from controlcenter.runtime.command_gateway import LoopCommandGateway
from controlcenter.runtime.rule_deployment import (
    RuleDeployment,
    RuleSetRefusedError,
    SiteRules,
    read_rule_sources,
    site_validator,
    validate_rule_set,
)
from controlcenter.runtime.rule_operations import RuleOperationsService
from controlcenter.runtime.runner import ServiceFailedError, freeze_startup_objects
from controlcenter.security.administration import UserAdministrationService
from controlcenter.security.files import ensure_private_file, load_or_create_secret_key
from controlcenter.security.login import LoginService
from controlcenter.security.sessions import SessionPolicy, SessionStore
from controlcenter.security.throttle import LoginThrottle, ThrottlePolicy
from controlcenter.security.tokens import TokenStore
from controlcenter.security.users import UserStore
from controlcenter.site.config import (
    BacnetDeviceConfig,
    DeviceConfig,
    GbfsDeviceConfig,
    GtfsRealtimeDeviceConfig,
    ModbusDeviceConfig,
    MqttDeviceConfig,
    OcppDeviceConfig,
    OpcUaDeviceConfig,
    SiteConfig,
)
from drivers.bacnet.config import BacnetDeviceConfig as BacnetDriverConfig
from drivers.bacnet.driver import BacnetDriver
from drivers.base import Driver
from drivers.feeds import (
    Freshness,
    GbfsConfig,
    GbfsDriver,
    GtfsRealtimeConfig,
    GtfsRealtimeDriver,
    HttpSettings,
)
from drivers.modbus.config import ModbusDeviceConfig as ModbusDriverConfig
from drivers.modbus.connection import ModbusGateways
from drivers.modbus.driver import ModbusDriver
from drivers.mqtt.config import MqttDeviceConfig as MqttDriverConfig
from drivers.mqtt.driver import MqttDriver
from drivers.ocpp.config import ChargePointConfig as OcppChargePointDriverConfig
from drivers.ocpp.config import OcppCentralSystemConfig
from drivers.ocpp.driver import OcppDriver
from drivers.opcua.config import OpcUaDeviceConfig as OpcUaDriverConfig
from drivers.opcua.config import SecurityMode, SecurityPolicy
from drivers.opcua.driver import OpcUaDriver
from historian.compression import CompressionSettings, Compressor
from historian.errors import StorageError
from historian.leak_baselines import LeakBaselineStore
from historian.queries import HistoryQueries
from historian.retention import RetentionPolicy, apply_retention
from historian.rollups import RollupMaintainer
from historian.spool import DiskSpool
from historian.store import SqlHistorian
from historian.writer import HistorianWriter
from hmi.app import LOCAL_HOST_NAMES, HmiSecurity, create_hmi
from hmi.context import HmiContext
from hmi.server import HmiServer, ServerLimits, TlsFiles
from rules.engine import RulesEngine
from rules.expressions import (
    EvaluationContext,
    ExpressionCompiler,
    ExpressionError,
    TagSignature,
)
from rules.interlocks import InterlockSet
from rules.ruleset import CompiledRuleSet

log = logging.getLogger(__name__)


class CenterFailedError(ServiceFailedError):
    """A part of the center stopped unexpectedly; the center shut down."""


HMI_SECRET_KEY_FILE = "hmi-secret.key"
"""Beside the users file: the key that signs the HMI's session cookies, kept across restarts."""
HMI_SESSIONS_FILE = "hmi-sessions.sqlite"
"""Beside the users file: the HMI's server-side sessions."""

_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})


@dataclass(frozen=True, slots=True)
class HmiOptions:
    """Where the HMI listens, how it is secured and whose logins it accepts."""

    users_path: Path
    host: str = "127.0.0.1"
    port: int = 8050
    tls: TlsFiles | None = None
    """Certificate and key: serve HTTPS only."""
    host_names: tuple[str, ...] = ()
    """Host names browsers use to reach the HMI, besides localhost, 127.0.0.1 and the
    listening address (or this machine's names when listening on every address)."""
    sessions: SessionPolicy = field(default_factory=SessionPolicy)
    throttle: ThrottlePolicy = field(default_factory=ThrottlePolicy)
    limits: ServerLimits = field(default_factory=ServerLimits)

    @property
    def state_dir(self) -> Path:
        """Where the HMI keeps its secret key and sessions: beside the users file."""
        return self.users_path.parent


def hmi_host_names(options: HmiOptions) -> tuple[str, ...]:
    """Every Host header value the HMI accepts for these options."""
    # The listening address too: the URL the center prints names it.
    names = [*LOCAL_HOST_NAMES, *options.host_names, options.host]
    if options.host in _WILDCARD_HOSTS:
        names += [socket.gethostname(), socket.getfqdn()]
    return tuple(dict.fromkeys(name.lower() for name in names if name))


def prepare_private_database(db_url: str) -> None:
    """Create a SQLite historian's file with mode 0600 (its new directory 0700) before the
    historian opens it, so that its data and audit journal are the owner's alone; SQLite
    gives the -wal and -shm files the database file's mode. Other databases are left alone."""
    try:
        url = make_url(db_url)
    except ArgumentError:
        return  # the historian reports a malformed URL itself
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return
    if database.startswith("file:"):
        return  # a SQLite URI names its own options; nothing to prepare
    path = Path(database)
    ensure_private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            ensure_private_file(companion)


class StoreJournal:
    """Records events in the historian's event journal (a ``ports.EventJournal``)."""

    def __init__(self, store: SqlHistorian) -> None:
        self._store = store

    def record(self, event: Event) -> None:
        """Record an event in the journal."""
        self._store.journal_event(event)


def build_driver(
    device: DeviceConfig, clock: Clock, gateways: ModbusGateways | None = None
) -> Driver:
    """The driver for one configured device; Modbus devices of one endpoint share
    ``gateways``' connection to it (one connection per Modbus TCP gateway)."""
    if isinstance(device, OpcUaDeviceConfig):
        return build_opcua_driver(device, clock)
    if isinstance(device, BacnetDeviceConfig):
        return build_bacnet_driver(device, clock)
    if isinstance(device, OcppDeviceConfig):
        return build_ocpp_driver(device, clock)
    if isinstance(device, GtfsRealtimeDeviceConfig | GbfsDeviceConfig):
        return build_feed_driver(device, clock)
    if isinstance(device, MqttDeviceConfig):
        return build_mqtt_driver(device, clock)
    return build_modbus_driver(device, clock, gateways)


def build_mqtt_driver(device: MqttDeviceConfig, clock: Clock) -> MqttDriver:
    """The MQTT driver of one configured broker connection."""
    config = MqttDriverConfig(
        host=device.host,
        port=device.port,
        client_id=device.client_id or "",
        topic_prefix=device.topic_prefix,
        username=device.username,
        password_env=device.password_env,
        tls=device.tls,
        ca_file=device.ca_file,
        report_interval_s=device.report_interval,
        timestamp_pointer=device.timestamp_pointer,
        timeout_s=device.timeout,
        write_timeout_s=device.write_timeout,
        max_payload_bytes=device.max_payload_bytes,
    )
    return MqttDriver(device.name, config, clock)


def build_feed_driver(
    device: GtfsRealtimeDeviceConfig | GbfsDeviceConfig, clock: Clock
) -> GtfsRealtimeDriver | GbfsDriver:
    """The GTFS-Realtime or GBFS driver of one configured publisher."""
    http = HttpSettings(timeout_s=device.timeout, max_bytes=device.max_bytes)
    freshness = Freshness(uncertain_after_s=device.uncertain_after, bad_after_s=device.bad_after)
    if isinstance(device, GbfsDeviceConfig):
        config = GbfsConfig(device.url(device.discovery), http=http, freshness=freshness)
        return GbfsDriver(device.name, config, clock)
    positions, trips = device.vehicle_positions, device.trip_updates
    gtfs = GtfsRealtimeConfig(
        None if positions is None else device.url(positions),
        None if trips is None else device.url(trips),
        http=http,
        freshness=freshness,
    )
    return GtfsRealtimeDriver(device.name, gtfs, clock)


def build_ocpp_driver(device: OcppDeviceConfig, clock: Clock) -> OcppDriver:
    """The OCPP central system of one configured endpoint and its charge points."""
    host, _, port = device.listen.rpartition(":")
    config = OcppCentralSystemConfig(
        host=host,
        port=int(port),
        charge_points=tuple(
            OcppChargePointDriverConfig(point.id, point.password_env, point.max_power_w)
            for point in device.charge_points
        ),
        heartbeat_interval_s=device.heartbeat_interval,
        silence_factor=device.silence_factor,
        timeout_s=device.timeout,
        id_tag=device.id_tag,
    )
    return OcppDriver(device.name, config, clock)


def build_opcua_driver(device: OpcUaDeviceConfig, clock: Clock) -> OpcUaDriver:
    """The OPC UA driver of one configured server."""
    config = OpcUaDriverConfig(
        endpoint=device.endpoint,
        security_policy=SecurityPolicy(device.security_policy),
        security_mode=SecurityMode(device.security_mode),
        certificate_file=device.certificate,
        private_key_file=device.private_key,
        certificate_dir=device.certificate_dir,
        trusted_server_certificates=tuple(device.trusted_server_certificates),
        username=device.username,
        password_env=device.password_env,
        timeout_s=device.timeout,
        deadband=device.deadband,
        max_items_per_subscription=device.max_items_per_subscription,
    )
    return OpcUaDriver(device.name, config, clock)


def build_bacnet_driver(device: BacnetDeviceConfig, clock: Clock) -> BacnetDriver:
    """The BACnet/IP driver of one configured device."""
    local_host, _, local_port = device.local_endpoint.rpartition(":")
    config = BacnetDriverConfig(
        host=device.host,
        port=device.port,
        device_instance=device.device_instance,
        local_host=local_host,
        local_port=int(local_port),
        apdu_timeout_s=device.timeout,
        retries=device.retries,
        cov=device.cov,
        cov_lifetime_s=device.cov_lifetime,
    )
    return BacnetDriver(device.name, config, clock)


def build_modbus_driver(
    device: ModbusDeviceConfig, clock: Clock, gateways: ModbusGateways | None = None
) -> ModbusDriver:
    """The Modbus TCP driver of one configured device."""
    config = ModbusDriverConfig(
        host=device.host,
        port=device.port,
        unit_id=device.unit_id,
        timeout_s=device.timeout,
        retries=device.retries,
        word_order=device.word_order,
        byte_order=device.byte_order,
        max_gap=device.max_gap,
        max_registers=device.max_registers_per_read,
        max_bits=device.max_bits_per_read,
        min_request_gap_s=device.min_request_gap,
        reconnect_delay_max_s=device.reconnect_delay_max,
        multiple_writes_only=device.multiple_writes_only,
    )
    connection = gateways.connection(config) if gateways is not None else None
    return ModbusDriver(device.name, config, clock, connection=connection)


def pushes_changes(device: DeviceConfig) -> bool:
    """Whether the site wants the device's changes pushed (OPC UA subscriptions, BACnet COV)."""
    if isinstance(device, OpcUaDeviceConfig):
        return device.subscribe
    if isinstance(device, BacnetDeviceConfig):
        return device.cov
    # Charge points and MQTT sensors report on their own: the driver pushes what they say.
    return isinstance(device, OcppDeviceConfig | MqttDeviceConfig)


def scan_timeout(device: DeviceConfig) -> float:
    """How long one scan's read may go unanswered before the scan engine abandons it (wall
    seconds).

    Longer than one request's own timeout (all retries), so that a silent device fails with
    the driver's precise reason; a read of many requests that keep being answered goes on
    (up to ``MAX_READ_TIMEOUTS`` of these bounds)."""
    if isinstance(device, OcppDeviceConfig):
        return device.timeout + 0.5  # answered from what the charge points reported
    if isinstance(device, MqttDeviceConfig):
        return device.timeout + 1.0  # a read may wait half a second for retained values
    if isinstance(device, GtfsRealtimeDeviceConfig | GbfsDeviceConfig):
        # GBFS may read gbfs.json before its files: two requests one after the other.
        return 2 * device.timeout + 0.5
    retries = 0 if isinstance(device, OpcUaDeviceConfig) else device.retries
    return device.timeout * (retries + 1) + 0.5


def build_writer(
    site: SiteConfig,
    store: SqlHistorian,
    tags: Sequence[TagDef],
    compression: Mapping[str, CompressionSettings],
    on_written: Callable[[Sequence[Sample]], None] | None = None,
) -> HistorianWriter:
    """The historian writer of a site: its tags' compression, and its spool when configured."""
    config = site.historian
    spool = None
    if config.spool_path is not None:
        # The spool holds field data until the database takes it: private like the database.
        ensure_private_file(config.spool_path.resolve())
        spool = DiskSpool(
            config.spool_path.resolve(),
            max_bytes=int(config.spool_max_mb * 1024 * 1024),
            warn_fraction=config.spool_warn_percent / 100.0,
        )
    return HistorianWriter(
        store,
        spool=spool,
        memory_limit=config.memory_limit,
        compressor=Compressor.for_tags(compression, tags),
        on_written=on_written,
    )


ROLLUP_REFRESH_S = 10.0
"""Wall seconds between rollup refreshes: a trend's newest minutes come from raw data anyway."""
RETENTION_EVERY_S = 3600.0
"""Wall seconds between retention runs."""
FOREVER = timedelta(days=36_525)
"""What "kept for ever" means to retention: a century."""


def retention_policy(site: SiteConfig) -> RetentionPolicy | None:
    """The site's retention, or None when it keeps everything for ever."""
    config = site.historian.retention
    days = (config.raw_days, config.minute_rollup_days, config.hour_rollup_days)
    if all(value is None for value in days):
        return None
    raw, minute, hour = (FOREVER if value is None else timedelta(days=value) for value in days)
    return RetentionPolicy(raw=raw, rollup_1m=minute, rollup_1h=hour)


COMMAND_UPKEEP_S = 1.0
"""Clock seconds between sweeps for lapsed overrides and selections."""


def tag_signatures(tags: Sequence[TagDef]) -> dict[str, TagSignature]:
    """What the expression compiler knows of each tag."""
    return {tag.name: TagSignature(tag.name, tag.data_type, tag.writable) for tag in tags}


def _rules_directory(site: SiteConfig) -> Path:
    paths = site.rule_file_paths()
    return paths[0].parent if paths else Path.cwd()


class DeferredContext:
    """An expression ``EvaluationContext`` whose target is set once it exists (the rules
    engine's, built after the command pipeline that the interlocks guard)."""

    def __init__(self) -> None:
        self.target: EvaluationContext | None = None

    def _context(self) -> EvaluationContext:
        if self.target is None:
            raise RuntimeError("the interlocks' evaluation context is not set")
        return self.target

    def now(self) -> datetime:
        """The center's time."""
        return self._context().now()

    def quality(self, tag: str) -> Quality:
        """The latest quality of ``tag``."""
        return self._context().quality(tag)

    def since_change(self, tag: str) -> float:
        """Seconds since ``tag`` last changed value."""
        return self._context().since_change(tag)

    def window(self, tag: str, seconds: float, statistic: str) -> float:
        """A statistic of ``tag`` over the last ``seconds``."""
        return self._context().window(tag, seconds, statistic)


def condition_sources(
    definitions: Sequence[AlarmDef], tags: Sequence[TagDef], site: SiteConfig
) -> list[AlarmEngine | NightFlowDetector]:
    """The alarm engine for the site's alarms, and the leak detector for its night-flow ones;
    raises AlarmDefinitionError listing every alarm that cannot be evaluated."""
    night_flow = [d for d in definitions if d.kind is AlarmKind.NIGHT_FLOW]
    others = [d for d in definitions if d.kind is not AlarmKind.NIGHT_FLOW]
    sources: list[AlarmEngine | NightFlowDetector] = [AlarmEngine(others, tags, site.location())]
    if night_flow:
        sources.append(NightFlowDetector(night_flow, site.location()))
    return sources


def build_notifier(site: SiteConfig, journal: StoreJournal, clock: Clock) -> Notifier | None:
    """The site's alarm notifier, or None when it routes no alarm anywhere."""
    routes = site.notification_routes()
    if not routes:
        return None
    flood_threshold, flood_window_s = site.notification_flood()
    return Notifier(
        site.oncall_groups(),
        routes,
        site.email_settings(),
        site.webhook_settings(),
        journal,
        clock,
        site.location().timezone,
        flood_threshold=flood_threshold,
        flood_window_s=flood_window_s,
    )


REPORT_PHOTOS_DIR = "report-photos"
"""Citizens' photos, in the center's state directory."""


def build_alert_desk(site: SiteConfig, journal: StoreJournal, clock: Clock) -> AlertDesk | None:
    """The site's CAP 1.2 public alerts, or None when no rule raises any."""
    config = site.public_alerts
    if not config.rules:
        return None
    slug = "".join(c if c.isalnum() else "-" for c in site.site.name.lower()).strip("-")
    rules = [
        PublicAlertRule(
            name=rule.name,
            alarms=tuple(rule.alarms),
            audience=Audience(rule.audience),
            category=Category(rule.category),
            event=rule.event,
            urgency=Urgency(rule.urgency),
            severity=Severity(rule.severity),
            certainty=Certainty(rule.certainty),
            response=ResponseType(rule.response),
            headline=rule.headline,
            instruction=rule.instruction,
            radius_km=rule.radius_km,
            expires_after_s=rule.expires_after_h * 3600.0,
        )
        for rule in config.rules
    ]
    return AlertDesk(
        rules,
        sender=config.sender or f"{slug or 'site'}.controlcenter",
        sender_name=site.site.name,
        assets=site.asset_defs(),
        districts=site.district_defs(),
        journal=journal,
        clock=clock,
        webhooks=tuple(str(url) for url in config.webhooks),
        webhook=site.webhook_settings(),
    )


class AutomationRefusedError(Exception):
    """A site's rules or interlocks cannot run; ``problems`` lists each with its spot."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


def check_automation(site: SiteConfig, site_directory: Path) -> CompiledRuleSet:
    """Check and compile a site's rule files and interlocks as the center would run them;
    raise AutomationRefusedError listing every problem as ``file:line:column: reason``."""
    site_tags = tuple(site.tag_defs())
    identity = site.automation_identity().name
    try:
        sources = read_rule_sources(site.rule_file_paths(), site_directory)
        rule_set = validate_rule_set(sources, SiteRules(site_tags, site.location(), identity))
    except RuleSetRefusedError as err:
        raise AutomationRefusedError(err.problems) from err
    tags = [*site_tags, *rule_set.calculated_tag_defs()]
    try:
        InterlockSet(
            site.interlock_defs(),
            ExpressionCompiler(tag_signatures(tags), site.location()),
            LiveSnapshot(tags, site_clock_origin()),
            DeferredContext(),
        )
    except ExpressionError as err:
        raise AutomationRefusedError([str(err)]) from err
    try:
        condition_sources(site.alarm_defs(), tags, site)
    except AlarmDefinitionError as err:
        raise AutomationRefusedError([str(problem) for problem in err.problems]) from err
    return rule_set


def site_clock_origin() -> datetime:
    """A placeholder time for views built only to be checked."""
    return datetime(2000, 1, 1, tzinfo=UTC)


class ControlCenter:
    """One running center: scan engine, bus, historian writer, rules, command pipeline and HMI."""

    def __init__(
        self,
        site: SiteConfig,
        store: SqlHistorian,
        clock: Clock,
        *,
        hmi: HmiOptions | None = None,
        site_directory: Path | None = None,
        users: UserStore | None = None,
        nats_url: str | None = None,
        transport: TransportOptions | None = None,
    ) -> None:
        """``site_directory``: the folder of the site file, against which rule files are named
        in the stored rule-set versions (default: the folder of the first rule file);
        ``users``: who may command (default: the HMI's users file, if the HMI runs);
        ``nats_url``: take the samples of edge-owned devices from the site's NATS stream and
        command them through their edges (None: poll every device, as without edges)."""
        self.site = site
        self.store = store
        self.clock = clock
        self.site_tags: Sequence[TagDef] = site.tag_defs()
        self.journal = StoreJournal(store)
        if users is None and hmi is not None:
            users = UserStore(hmi.users_path)
        self.users = users
        self.identity = site.automation_identity()
        self.deployment = RuleDeployment(
            store,
            self.journal,
            site_validator(SiteRules(tuple(self.site_tags), site.location(), self.identity.name)),
            self._activate_rule_set,
            site_sources=read_rule_sources(
                site.rule_file_paths(), site_directory or _rules_directory(site)
            ),
            now=clock.now,
        )
        # The stored rule set decides what runs (blocking, once, before anything starts).
        rule_set = self.deployment.start()
        self.tags: Sequence[TagDef] = [*self.site_tags, *rule_set.calculated_tag_defs()]
        gateways = ModbusGateways()
        # --- edges on NATS (``nats_url``): their devices are written through the edge and
        # never polled here; their samples come from the stream (``self.transport``).
        self.transport = None if nats_url is None else CenterTransport(site, nats_url, transport)
        local_devices = [
            device
            for device in site.devices
            if self.transport is None or not self.transport.owns(device.name)
        ]
        self.drivers: dict[str, Driver] = {
            device.name: build_driver(device, clock, gateways) for device in local_devices
        }
        if self.transport is not None:
            self.drivers.update(
                {name: self.transport.driver(name) for name in self.transport.owners.edge_of}
            )
        # --- end of edges
        self.bus = SampleBus()
        self.live = LiveSnapshot(self.tags, clock.now())
        self.compression = site.compression_settings()
        self.rollups = RollupMaintainer(store)
        self.retention = retention_policy(site)
        self.writer = build_writer(
            site, store, self.tags, self.compression, on_written=self.rollups.note_written
        )
        self.interlock_context = DeferredContext()
        self.interlocks = InterlockSet(
            site.interlock_defs(),
            ExpressionCompiler(tag_signatures(self.tags), site.location()),
            self.live,
            self.interlock_context,
        )
        self.commands = CommandPipeline(
            self.tags,
            self.drivers,
            store,
            clock,
            users=self.user,
            areas=site.area_defs(),
            latest=self._latest,
            interlocks=self.interlocks,
            overrides=store,
            events=self.journal,
        )
        self.rules = RulesEngine(rule_set, self.commands, clock, self.journal, self.bus.publish)
        # Interlocks read time, change times and windows as the rules do.
        self.interlock_context.target = self.rules.context
        self.scan_engine = ScanEngine(
            [
                DeviceScan(
                    driver=self.drivers[device.name],
                    points=tuple(tag for tag in self.site_tags if tag.device == device.name),
                    interval_s=device.scan_interval,
                    timeout_s=scan_timeout(device),
                    poll=not pushes_changes(device),
                )
                for device in local_devices
            ],
            self.bus,
            clock,
        )
        self.devices: DeviceHealthView = self.scan_engine
        if self.transport is not None:
            ingest = self.transport.attach(self.bus, self.writer, self.journal)
            self.devices = CombinedHealth(self.scan_engine, ingest)
        self.bus.subscribe("live", self.live.update)
        self.bus.subscribe("historian", self.writer.enqueue)
        self.bus.subscribe("rules", self.rules.on_samples)
        self.alarm_defs = site.alarm_defs()
        self.notifier = build_notifier(site, self.journal, clock)
        self.alert_desk = build_alert_desk(site, self.journal, clock)
        # The next waste collection round, from the containers' live fill levels.
        self.collection = CollectionPlanner(
            site.asset_defs(), self.live, GeoPoint(site.site.latitude, site.site.longitude)
        )
        # The HMI's displays are fed by the bus and told of alarm changes as they happen.
        self.live_hub = LiveHub()
        self.bus.subscribe("hmi", self.live_hub.on_samples)
        self.alarms = AlarmService(
            self.alarm_defs,
            store,
            self.journal,
            clock,
            listeners=tuple(
                listener
                for listener in (self.notifier, self.alert_desk, self.live_hub)
                if listener is not None
            ),
        )
        sources = condition_sources(self.alarm_defs, self.tags, site)
        # The leak detector's learnt nights are kept beside the alarm states (schema 6).
        memories = [
            NightFlowMemory(source, LeakBaselineStore(store))
            for source in sources
            if isinstance(source, NightFlowDetector)
        ]
        self.alarm_monitor = AlarmMonitor(sources, self.alarms, clock, memories)
        self.alarm_requests = AlarmRequestProcessor(self.alarms, store, self.user, clock)
        self.bus.subscribe("alarms", self.alarm_monitor.on_samples)
        self._hmi_options = hmi
        self.hmi_server: HmiServer | None = None
        self._hmi_sessions: SessionStore | None = None
        self._readiness: Readiness | None = None
        self._api_tokens: TokenStore | None = None
        self.ready = asyncio.Event()

    def user(self, name: str) -> User:
        """The requester of a command: the rules' identity, or a user of the HMI's store."""
        if name == self.identity.name:
            return self.identity
        if self.users is None:
            raise KeyError(name)
        return self.users.get_user(name)

    def _latest(self, tag: str) -> Sample | None:
        try:
            return self.live.latest(tag)
        except KeyError:
            return None

    def _activate_rule_set(self, rule_set: CompiledRuleSet) -> None:
        """Swap a newly deployed rule set into the running engine; its new calculated tags
        are registered with the live view and the historian first."""
        known = {tag.name for tag in self.tags}
        added = [tag for tag in rule_set.calculated_tag_defs() if tag.name not in known]
        if added:
            self.store.ensure_tags(added, self.compression)
            self.live.add_tags(added, self.clock.now())
            self.tags = [*self.tags, *added]
        self.rules.replace(rule_set)

    @property
    def hmi_url(self) -> str:
        """Where the HMI answers; raises RuntimeError when it is not running."""
        if self.hmi_server is None:
            raise RuntimeError("the HMI is not running")
        return self.hmi_server.url

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then shut down cleanly, flushing the historian."""
        await asyncio.to_thread(self.store.ensure_tags, self.tags, self.compression)
        await self.commands.restore_overrides()
        self._record(EventKind.SYSTEM, f"center started for site {self.site.site.name}")
        tasks = [
            asyncio.create_task(self.writer.run(), name="historian writer"),
            asyncio.create_task(self.rules.run(), name="rules engine"),
            asyncio.create_task(self.scan_engine.run(), name="scan engine"),
            asyncio.create_task(self._historian_upkeep(), name="historian upkeep"),
            asyncio.create_task(self.deployment.watch(), name="rule deployment"),
            asyncio.create_task(self._command_upkeep(), name="command upkeep"),
            asyncio.create_task(self.alarm_monitor.run(), name="alarm monitor"),
            asyncio.create_task(self.alarm_requests.run(), name="alarm requests"),
        ]
        if self.notifier is not None:
            tasks.append(asyncio.create_task(self.notifier.run(), name="alarm notifications"))
        if self.alert_desk is not None:
            tasks.append(asyncio.create_task(self.alert_desk.run(), name="public alerts"))
        if self.transport is not None:
            tasks.append(asyncio.create_task(self.transport.run(), name="NATS ingest"))
        failure: BaseException | None = None
        try:
            if self._hmi_options is not None:
                self.hmi_server = self._start_hmi(self._hmi_options)
            freeze_startup_objects()
            self.ready.set()
            stopper = asyncio.create_task(stop.wait(), name="stop signal")
            done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            for task in done:
                if task is not stopper and not task.cancelled() and task.exception() is not None:
                    failure = task.exception()
                    log.error("%s stopped unexpectedly: %r", task.get_name(), failure)
        finally:
            await self._shutdown(tasks)
        if failure is not None:
            raise CenterFailedError(str(failure)) from failure

    async def _shutdown(self, tasks: list[asyncio.Task[None]]) -> None:
        writer_task, *others = tasks
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        # Acquisition ends before the historian does: a closed driver pushes no more samples
        # (subscriptions, COV), so nothing reaches a writer that is already stopping.
        for driver in self.drivers.values():
            await driver.close()
        if self.transport is not None:
            await self.transport.close()
        if self.hmi_server is not None:
            await asyncio.to_thread(self.hmi_server.stop)
        if self._hmi_sessions is not None:
            self._hmi_sessions.close()
        if self._api_tokens is not None:
            self._api_tokens.close()
        if self._readiness is not None:
            self._readiness.close()
        await self.writer.stop()
        await asyncio.gather(writer_task, return_exceptions=True)
        self._record(EventKind.SYSTEM, "center stopped")

    async def _command_upkeep(self) -> None:
        """Let lapsed operator overrides and point selections go, once a second of clock time."""
        while True:
            await self.clock.sleep(COMMAND_UPKEEP_S)
            await self.commands.expire_overrides()

    async def _historian_upkeep(self) -> None:
        """Keep the rollups current and apply retention, off the event loop."""
        failing = False
        last_retention = -RETENTION_EVERY_S
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(ROLLUP_REFRESH_S)
            try:
                await asyncio.to_thread(self.rollups.refresh)
                if self.retention is not None and loop.time() - last_retention >= RETENTION_EVERY_S:
                    last_retention = loop.time()
                    await asyncio.to_thread(
                        apply_retention, self.store, self.retention, self.clock.now()
                    )
            except StorageError as err:
                if not failing:
                    log.warning("historian upkeep failed (rollups, retention): %s", err)
                failing = True
            else:
                if failing:
                    log.info("historian upkeep recovered")
                failing = False

    def _start_hmi(self, options: HmiOptions) -> HmiServer:
        users = self.users if self.users is not None else UserStore(options.users_path)
        # The key and the sessions persist, so that a restart of the center keeps operators
        # logged in (unless their sessions were revoked or expired meanwhile).
        secret_key = load_or_create_secret_key(options.state_dir / HMI_SECRET_KEY_FILE)
        sessions = SessionStore(options.state_dir / HMI_SESSIONS_FILE, users, options.sessions)
        self._hmi_sessions = sessions
        login = LoginService(users, sessions, LoginThrottle(options.throttle))
        history = HistoryQueries(self.store)
        commands = LoopCommandGateway(self.commands, asyncio.get_running_loop())
        administration = UserAdministrationService(users, self.journal, now=self.clock.now)
        rule_operations = RuleOperationsService(
            self.store,
            self.journal,
            SiteRules(tuple(self.site_tags), self.site.location(), self.identity.name),
            self.store,
            running=lambda: self.deployment.running_version,
            statuses=self.rules.rule_statuses,
            last_actions=self.rules.last_actions,
            audit=self.store.journal_audit,
            now=self.clock.now,
        )
        context = HmiContext(
            live=self.live,
            history=history,
            journal=self.journal,
            site_name=self.site.site.name,
            timezone=ZoneInfo(self.site.site.timezone),
            location=GeoPoint(self.site.site.latitude, self.site.site.longitude),
            assets=self.site.asset_defs(),
            districts=self.site.district_defs(),
            areas=self.site.area_defs(),
            alarms=self.alarms,
            alarm_journal=self.store,
            commands=commands,
            devices=self.devices,
            featured=tuple(self.site.hmi.featured),
            now=self.clock.now,
            clock_speed=self.clock.speed,
            users=administration,
            rules=rule_operations,
            collection=self.collection,
        )
        app = create_hmi(
            context,
            login,
            secret_key=secret_key,
            security=HmiSecurity(tls=options.tls is not None, host_names=hmi_host_names(options)),
            hub=self.live_hub,
        )
        # The REST API and its stream share the web server, the services and the change hub.
        tokens = TokenStore(options.state_dir / API_TOKENS_FILE, users)
        self._api_tokens = tokens
        api_services = ApiServices(
            live=self.live,
            history=history,
            journal=self.journal,
            tokens=tokens,
            site_name=self.site.site.name,
            timezone=ZoneInfo(self.site.site.timezone),
            areas=self.site.area_defs(),
            assets=self.site.asset_defs(),
            alarms=self.alarms,
            alarm_journal=self.store,
            commands=commands,
            devices=self.devices,
            rules=rule_operations,
            users=administration,
            now=self.clock.now,
        )
        # Operations (metrics, health) and the city's open data, on the same server.
        sources = CenterSources(
            devices=self.devices,
            writer=self.writer,
            alarms=self.alarms,
            alarm_journal=self.store,
            commands=self.commands,
            rules=self.rules,
            streams=self.live_hub,
            now=self.clock.now,
        )
        self._readiness = Readiness(
            self.scan_engine,
            StoreWriteProbe(self.store),
            self.writer,
            ReadinessPolicy(spool_warn_fraction=self.site.historian.spool_warn_percent / 100),
        )
        operations = create_operations(
            metrics_registry(sources), self._readiness, MetricsAccess(tokens, self.journal)
        )
        open_data = create_open_data(
            OpenDataService(
                self.site.open_datasets(),
                history,
                k=self.site.open_data.k,
                timezone=ZoneInfo(self.site.site.timezone),
                site_name=self.site.site.name,
                now=self.clock.now,
            ),
            alerts=self.alert_desk,
            reports=ReportDesk(
                self.site.asset_defs(),
                self.journal,
                self.clock.now,
                photo_dir=options.state_dir / REPORT_PHOTOS_DIR,
            ),
        )
        server = HmiServer(
            app,
            host=options.host,
            port=options.port,
            tls=options.tls,
            limits=options.limits,
            mounts={
                "/api/": create_api(api_services),
                "/open/": open_data,
                **{path: operations for path in OPERATIONS_PATHS},
            },
            asgi_routes={
                API_STREAM_PATH: api_stream_endpoint(self.live_hub, self.live, tokens, self.journal)
            },
        )
        server.start()
        log.info("HMI at %s", server.url)
        return server

    def _record(self, kind: EventKind, message: str) -> None:
        self.journal.record(Event(self.clock.now(), kind, "controlcenter", message))

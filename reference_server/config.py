# The server's configuration (contract api.md §1): one frozen Config, built from
# four layers, each overriding the one before it key by key:
#
#     defaults  <  TOML file  <  IOT_* environment variables  <  command-line flags
#
# The TOML file is named by --config FILE or, failing that, IOT_CONFIG. Every key has
# one name per layer, listed in _KEYS (TOML key, environment variable, flag); the
# names of the contract's table are kept exactly, and the settings the contract only
# calls "default …, configurable" (rate limits, webhook retry window, nonce window,
# …) follow the same pattern. Loading is a pure function of argv and the environment
# (both passed in, nothing read from os.environ or sys.argv), plus the one file they
# name, so tests need no monkeypatching.
#
# Every value is validated here, once, and a bad one raises ConfigError naming the
# key and where the value came from ("tcp_port: expected an integer from 0 to 65535,
# got 'abc' (from IOT_TCP_PORT)"). An unknown TOML key is an error (a typo must not
# silently fall back to a default); unknown IOT_* variables are ignored, because the
# prefix is generic and the environment is shared with other programs.
#
# API keys are a list, so a layer that sets them replaces the whole list of the layer
# below (they are not merged). Secrets (API keys, their signing secrets, the webhook
# secret) are kept out of repr() and out of Config.redacted(), the form to log. With
# no API key anywhere, the server generates one at first start, stores its SHA-256 in
# the database's settings table and prints the key once; the pure pieces for that are
# here (generate_api_key, hash_api_key, with_generated_api_key,
# GENERATED_API_KEY_SETTING), the storing and printing are the caller's.
from __future__ import annotations

import argparse
import hashlib
import secrets
import tomllib
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Literal, NoReturn, TypeVar

from bkvcodec import __version__ as bkvcodec_version

from ._version import __version__ as server_version
from .logs import LogFormat

__all__ = [
    "GENERATED_API_KEY_NAME",
    "GENERATED_API_KEY_SETTING",
    "LEGACY_GENERATED_API_KEY_SETTING",
    "PROTOCOL_OFFLINE_AFTER",
    "ROLES",
    "ApiKey",
    "BusyPortPolicy",
    "Config",
    "ConfigError",
    "DevicePolicy",
    "IccidBinding",
    "LogLevel",
    "Role",
    "SqliteSynchronous",
    "TakeoverPolicy",
    "argument_parser",
    "describe_settings",
    "generate_api_key",
    "hash_api_key",
    "load_config",
    "with_generated_api_key",
]

#: What to do with a charge request for a port that is already busy.
BusyPortPolicy = Literal["reject", "replace"]
#: Log levels, as written in the configuration.
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
#: What an API key may do; every route needs one of them.
Role = Literal["read", "operate", "cards", "firmware", "admin"]
#: Every role, in the contract's order. A key configured without ``roles`` has all.
ROLES: tuple[Role, ...] = ("read", "operate", "cards", "firmware", "admin")
_ROLE_NAMES: dict[str, Role] = {role: role for role in ROLES}
#: SQLite ``PRAGMA synchronous`` of every connection.
SqliteSynchronous = Literal["full", "normal"]

_POLICIES: dict[str, BusyPortPolicy] = {"reject": "reject", "replace": "replace"}
_SYNCHRONOUS: dict[str, SqliteSynchronous] = {"full": "full", "normal": "normal"}
#: Which device ids are served: any (``open``) or provisioned ones only.
DevicePolicy = Literal["open", "known"]
#: Whether the first ICCID a device presents is bound to it.
IccidBinding = Literal["pin", "off"]
#: Which connection stays when a live device is named from another address.
TakeoverPolicy = Literal["replace", "keep"]

_DEVICE_POLICIES: dict[str, DevicePolicy] = {"open": "open", "known": "known"}
_ICCID_BINDINGS: dict[str, IccidBinding] = {"pin": "pin", "off": "off"}
_TAKEOVER_POLICIES: dict[str, TakeoverPolicy] = {"replace": "replace", "keep": "keep"}
_LOG_LEVELS: dict[str, LogLevel] = {
    "debug": "debug", "info": "info", "warning": "warning", "error": "error",
    "critical": "critical",
}
_LOG_FORMATS: dict[str, LogFormat] = {"json": "json", "text": "text"}
#: The levels the per-frame log lines may be written at.
FrameLogLevel = Literal["debug", "info"]
_FRAME_LOG_LEVELS: dict[str, FrameLogLevel] = {"debug": "debug", "info": "info"}

#: Default ``offline_after`` per protocol: 3 × the heartbeat period.
PROTOCOL_OFFLINE_AFTER: Mapping[str, int] = {"bkv": 180, "ap3000": 90}

#: The ``settings`` row that holds the SHA-256 (hex) of the API key generated at first
#: start; the key itself is printed once and stored nowhere.
GENERATED_API_KEY_SETTING = "generated_api_key_sha256"
#: Where servers before this one kept the generated key in plain text; at start the
#: row is replaced by its hash (see ``server.py``).
LEGACY_GENERATED_API_KEY_SETTING = "generated_api_key"
#: The name given to the generated API key (``api_nonces.key_name`` etc.).
GENERATED_API_KEY_NAME = "generated"

_C = TypeVar("_C", bound=str)

_REDACTED = "<redacted>"
_MAX_PORT = 65535
_DAY = 24 * 3600


class ConfigError(Exception):
    """A configuration value is missing, malformed or out of range.

    Attributes:
        key: The configuration key at fault (its TOML name), or ``"config"`` for
            the file itself and ``"argv"`` for the command line as a whole.
        problem: What is wrong, without the key.
    """

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One API key of the third-party API.

    Attributes:
        name: Identifies the key in logs and in per-key tables (nonces,
            idempotency records); never secret.
        key: The value clients send in ``X-Api-Key``. Not shown by ``repr()``.
        secret: The HMAC signing secret; when set, requests must be signed.
            Not shown by ``repr()``.
        roles: What the key may do; all of :data:`ROLES` unless
            the ``[[api_keys]]`` table lists fewer.
        key_sha256: For a key known only by its hash (the generated key after
            first start): the SHA-256 of the key, hex; ``key`` is then empty.
    """

    name: str
    key: str = field(repr=False)
    secret: str | None = field(default=None, repr=False)
    roles: frozenset[Role] = frozenset(ROLES)
    key_sha256: str | None = field(default=None, repr=False)

    @property
    def signed(self) -> bool:
        """True when requests made with this key must carry a signature."""
        return self.secret is not None

    def digest(self) -> bytes:
        """The SHA-256 of the key (what requests are compared against)."""
        if self.key_sha256 is not None:
            return bytes.fromhex(self.key_sha256)
        return hashlib.sha256(self.key.encode()).digest()


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The whole server configuration; every field has a default.

    Times are whole seconds. The attributes from ``tcp_host`` to ``log_level``
    are the contract's table (with per-protocol ``offline_after`` values); the rest are
    settings the contract gives a default for without naming a
    key.

    Attributes:
        tcp_host: Device listener address.
        tcp_port: Device listener port (0 = any free port, for tests).
        http_host: HTTP API address.
        http_port: HTTP API port (0 = any free port).
        db_path: The SQLite file (``--db``).
        database_url: A PostgreSQL database (``postgresql://user:password@host:port/
            name``) to use instead of the SQLite file; None = SQLite at ``db_path``.
            Several servers may share one. Its password never appears in
            :meth:`redacted`.
        api_keys: The API keys; empty means "generate one at first start".
        webhook_url: Where events are pushed; None records them only.
        webhook_secret: HMAC secret for webhook signatures; None sends unsigned.
        offline_after: When set, overrides both per-protocol values below.
        offline_after_bkv: Silence after which a BKV device is offline.
        offline_after_ap3000: Silence after which an AP3000 device is offline.
        start_timeout: Wait for the device's start confirmation.
        command_ttl: How long a queued command may wait for an offline device.
        busy_port_policy: ``reject`` (409) or ``replace`` the running order.
        log_level: Minimum level of the log lines.
        log_format: ``json`` (one JSON object per line, the default) or ``text``
            (``<UTC time> <LEVEL> <msg> key=value …``, for people).
        log_frame_level: The level of the per-frame lines (``BKV frame received``,
            ``BKV frame sent`` and their AP3000 twins): ``info`` (the test plan's) or
            ``debug``, which keeps them out of an ``info`` log of a large fleet.
        cmd_log_retention: Age after which ``cmd_logs`` rows are pruned.
        cmd_log_max_rows: The most ``cmd_logs`` rows kept, newest first.
        rate_limit_rps: Per-API-key token rate, requests per second.
        rate_limit_burst: Per-API-key bucket size.
        rate_limit_auth_failures: Failed authentications allowed per remote
            address per minute before it gets 429.
        device_command_rate: Command requests per device per second.
        webhook_timeout: A delivery must get its 2xx within this.
        webhook_max_backoff: Cap of the exponential retry delay.
        webhook_retry_window: How long a delivery is retried before it is dead.
        max_body_bytes: Largest accepted request body.
        signature_max_skew: Allowed ``X-Timestamp`` distance from now.
        nonce_ttl: How long a request nonce is remembered.
        idempotency_ttl: How long an ``Idempotency-Key`` answer is replayed.
        default_price_per_kwh: Tariff when a request has none, cents/kWh.
        default_service_fee: Service fee when a request has none, per mille.
        retention_days: Age in days after which events (delivered or dead),
            webhook deliveries, order progress and the frame log are pruned.
        sqlite_synchronous: ``full`` (a commit is on disk before anything it
            stores is acknowledged, also across a power loss) or ``normal`` (WAL
            checkpoints only; a power loss may undo the last commits). Under
            ``full``, routine writes (frame log, liveness, heartbeat samples,
            delivery bookkeeping) are synced by the next state change's commit.
            SQLite only: with ``database_url``, routine commits use PostgreSQL's
            ``synchronous_commit = off`` and the others are synchronous.
        rated_power_w: A port's rated power; device reports of more energy than
            this × the reported time × 1.2, or of more power than this × 1.2, are
            capped and raise ``order.anomaly``.
        device_policy: ``open`` serves any device id, ``known`` only provisioned
            ones.
        known_devices: Device ids provisioned at start (besides ``POST /devices``).
        iccid_binding: ``pin`` binds a device to the first ICCID it presents and
            quarantines a connection presenting another; ``off`` does not.
        takeover_policy: When a live device is named by a new connection from
            another address: ``replace`` the old connection or ``keep`` it.
        max_connections: Most device connections at once; None = the descriptor
            limit minus 256 kept for HTTP, SQLite and webhooks.
        max_connections_per_ip: Most device connections from one address; 0 = no
            limit.
        unidentified_timeout: Close a connection without a valid frame after this
            long.
        unidentified_max_bytes: Close a connection without a valid frame after this
            many bytes; also the most garbage a connection gets logged.
        frame_log_max_bytes: Bytes of one connection stored in ``cmd_logs`` per hour;
            beyond, frames are counted, not stored.
        redis_url: The Redis server of a cluster (``redis://host:6379/0``); None
            runs the server alone.
        node_id: This process's name in its cluster; None = ``hostname-pid``.
        cluster_name: The cluster's name: the prefix of its keys in Redis (several
            clusters may share one Redis).
        reuse_port: Listen with ``SO_REUSEPORT``, so several processes of one
            machine share the device and HTTP ports.
        workers: Server processes to start on this machine (``--workers``; more
            than one needs ``redis_url`` and a shared database).
        config_file: The TOML file that was read, if any (informational).
    """

    tcp_host: str = "0.0.0.0"
    tcp_port: int = 7065
    http_host: str = "0.0.0.0"
    http_port: int = 7055
    db_path: Path = Path("./data/iot.db")
    database_url: str | None = None
    api_keys: tuple[ApiKey, ...] = ()
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    offline_after: int | None = None
    offline_after_bkv: int = PROTOCOL_OFFLINE_AFTER["bkv"]
    offline_after_ap3000: int = PROTOCOL_OFFLINE_AFTER["ap3000"]
    start_timeout: int = 120
    command_ttl: int = 300
    busy_port_policy: BusyPortPolicy = "reject"
    log_level: LogLevel = "info"
    log_format: LogFormat = "json"
    log_frame_level: FrameLogLevel = "info"
    cmd_log_retention: int = 7 * _DAY
    cmd_log_max_rows: int = 1_000_000
    rate_limit_rps: int = 200
    rate_limit_burst: int = 400
    rate_limit_auth_failures: int = 20
    device_command_rate: int = 5
    webhook_timeout: int = 5
    webhook_max_backoff: int = 300
    webhook_retry_window: int = _DAY
    max_body_bytes: int = 64 * 1024
    signature_max_skew: int = 300
    nonce_ttl: int = 600
    idempotency_ttl: int = _DAY
    default_price_per_kwh: int = 0
    default_service_fee: int = 0
    retention_days: int = 30
    sqlite_synchronous: SqliteSynchronous = "full"
    rated_power_w: int = 3500
    device_policy: DevicePolicy = "open"
    known_devices: tuple[str, ...] = ()
    iccid_binding: IccidBinding = "pin"
    takeover_policy: TakeoverPolicy = "replace"
    max_connections: int | None = None
    max_connections_per_ip: int = 0
    unidentified_timeout: int = 30
    unidentified_max_bytes: int = 4096
    frame_log_max_bytes: int = 1024 * 1024
    redis_url: str | None = None
    node_id: str | None = None
    cluster_name: str = "bkv"
    reuse_port: bool = False
    workers: int = 1
    config_file: Path | None = None

    def offline_after_for(self, protocol: str) -> int:
        """Seconds of silence after which a device of *protocol* is offline.

        The global ``offline_after``, when set, wins over the per-protocol values.

        Raises:
            ValueError: *protocol* is neither ``"bkv"`` nor ``"ap3000"``.
        """
        if self.offline_after is not None:
            return self.offline_after
        if protocol == "bkv":
            return self.offline_after_bkv
        if protocol == "ap3000":
            return self.offline_after_ap3000
        raise ValueError(f"unknown protocol {protocol!r}")

    def __repr__(self) -> str:
        """The :meth:`redacted` settings: a Config can be logged or printed safely."""
        items = ", ".join(f"{name}={value!r}" for name, value in self.redacted().items())
        return f"Config({items})"

    @property
    def needs_generated_api_key(self) -> bool:
        """True when no API key is configured, so one must be generated or loaded."""
        return not self.api_keys

    def redacted(self) -> dict[str, object]:
        """Every setting as a JSON-ready dict that is safe to log.

        API keys appear by name only (with whether they sign), the webhook secret
        as ``"<redacted>"``, and the webhook and database URLs without password or
        query string.
        """
        out: dict[str, object] = {}
        for f in fields(self):
            value: object = getattr(self, f.name)
            if f.name == "api_keys":
                value = [{"name": k.name, "signed": k.signed,
                          "roles": [r for r in ROLES if r in k.roles]}
                         for k in self.api_keys]
            elif f.name == "webhook_secret":
                value = None if self.webhook_secret is None else _REDACTED
            elif f.name in _URL_KEYS and isinstance(value, str):
                value = _redact_url(value)
            elif isinstance(value, Path):
                value = str(value)
            out[f.name] = value
        return out


# --- key names per layer -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Key:
    env: str
    flag: str
    help: str
    metavar: str = "N"


def _key(name: str, help_text: str, *, env: str | None = None, flag: str | None = None,
         metavar: str = "N") -> tuple[str, _Key]:
    return name, _Key(env if env is not None else "IOT_" + name.upper(),
                      flag if flag is not None else "--" + name.replace("_", "-"),
                      help_text, metavar)


#: TOML key → its environment variable and flag. The first block is the contract's
#: table of settings.
_KEYS: dict[str, _Key] = dict([
    _key("tcp_host", "device listener address (0.0.0.0)", metavar="HOST"),
    _key("tcp_port", "device listener port (7065)"),
    _key("http_host", "HTTP API address (0.0.0.0)", metavar="HOST"),
    _key("http_port", "HTTP API port (7055)"),
    _key("db_path", "SQLite database file (./data/iot.db)", flag="--db", metavar="FILE"),
    _key("database_url", "PostgreSQL URL, instead of the SQLite file (none: SQLite)",
         metavar="URL"),
    _key("api_keys", "API key, optionally with its signing secret (repeatable)",
         flag="--api-key", metavar="KEY[:SECRET]"),
    _key("webhook_url", "webhook target URL (none: events are recorded only)", metavar="URL"),
    _key("webhook_secret", "webhook HMAC secret", metavar="SECRET"),
    _key("offline_after", "seconds of silence before a device is offline (all protocols)"),
    _key("start_timeout", "seconds to wait for a start confirmation (120)"),
    _key("command_ttl", "seconds a queued command waits for an offline device (300)"),
    _key("busy_port_policy", "charge request on a busy port: reject or replace",
         metavar="POLICY"),
    _key("log_level", "debug, info, warning, error or critical", metavar="LEVEL"),
    _key("log_format", "log lines as json (one object per line) or text (for people)",
         metavar="FORMAT"),
    _key("log_frame_level", "level of the per-frame log lines: info or debug",
         metavar="LEVEL"),
    # Settings the contract gives defaults for.
    _key("offline_after_bkv", "offline_after for BKV devices (180)"),
    _key("offline_after_ap3000", "offline_after for AP3000 devices (90)"),
    _key("cmd_log_retention", "seconds cmd_logs rows are kept (604800)"),
    _key("cmd_log_max_rows", "most cmd_logs rows kept (1000000)"),
    _key("rate_limit_rps", "API requests per second per key (200)"),
    _key("rate_limit_burst", "API burst per key (400)"),
    _key("rate_limit_auth_failures",
         "failed authentications per minute per remote address before 429 (20)"),
    _key("device_command_rate", "command requests per second per device (5)"),
    _key("webhook_timeout", "seconds a webhook delivery may take (5)"),
    _key("webhook_max_backoff", "cap of the webhook retry delay, seconds (300)"),
    _key("webhook_retry_window", "seconds a webhook is retried before it is dead (86400)"),
    _key("max_body_bytes", "largest request body (65536)"),
    _key("signature_max_skew", "allowed X-Timestamp skew, seconds (300)"),
    _key("nonce_ttl", "seconds a request nonce is remembered (600)"),
    _key("idempotency_ttl", "seconds an Idempotency-Key answer is replayed (86400)"),
    _key("default_price_per_kwh", "price when a request has none, cents/kWh (0)"),
    _key("default_service_fee", "service fee when a request has none, per mille (0)"),
    _key("retention_days",
         "days events, deliveries, order progress and the frame log are kept (30)"),
    # Money (api.md §11.1).
    _key("sqlite_synchronous", "SQLite synchronous mode of money commits: full or normal",
         metavar="MODE"),
    _key("rated_power_w", "rated power of a port in W, the plausibility cap (3500)"),
    # Identity and resources (api.md §11.2, §11.3).
    _key("device_policy", "devices served: open (any id) or known (provisioned ids)",
         metavar="POLICY"),
    _key("known_devices", "device ids provisioned at start, comma-separated",
         metavar="ID,ID"),
    _key("iccid_binding", "pin a device to its first ICCID, or off", metavar="MODE"),
    _key("takeover_policy", "a live device named from another address: replace or keep",
         metavar="POLICY"),
    _key("max_connections", "most device connections (descriptor limit - 256)"),
    _key("max_connections_per_ip", "most device connections per address (0: no limit)"),
    _key("unidentified_timeout", "seconds a connection may go without a valid frame (30)"),
    _key("unidentified_max_bytes", "bytes a connection may send without a valid frame (4096)"),
    _key("frame_log_max_bytes", "frame-log bytes stored per connection per hour (1048576)"),
    # Running as several processes or machines.
    _key("redis_url", "Redis of a cluster of servers (none: this server runs alone)",
         metavar="URL"),
    _key("node_id", "this server's name in its cluster (hostname-pid)", metavar="NAME"),
    _key("cluster_name", "the cluster's key prefix in Redis (bkv)", metavar="NAME"),
    _key("reuse_port", "share the listening ports with other processes: true or false",
         metavar="BOOL"),
    _key("workers", "server processes on this machine, sharing its ports (1)"),
])



def describe_settings() -> list[tuple[str, str, str, str]]:
    """Every setting as (TOML key, environment variable, flag, help), in table order.

    For documentation: the docs' configuration table is generated from this.
    """
    return [(name, key.env, key.flag, key.help) for name, key in _KEYS.items()]


_CONFIG_ENV = "IOT_CONFIG"
#: Keys whose values never appear in messages.
_SECRET_KEYS = frozenset({"webhook_secret"})
#: Keys whose values are URLs that may hold a password: shown by _redact_url.
_URL_KEYS = frozenset({"webhook_url", "database_url", "redis_url"})


@dataclass(frozen=True, slots=True)
class _Value:
    """A raw value from one layer and where it came from (for error messages)."""

    value: object
    source: str


# --- command line --------------------------------------------------------------------------

class _ArgumentParser(argparse.ArgumentParser):
    """argparse that raises ConfigError instead of exiting on a bad command line."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError("argv", message)


def _version_text() -> str:
    """``bkvcodec-server 0.1.0 (bkvcodec 0.1.0)``: the server's and the library's versions."""
    return f"bkvcodec-server {server_version} (bkvcodec {bkvcodec_version})"


def argument_parser() -> argparse.ArgumentParser:
    """The command-line parser (every setting as a flag, plus ``--config``).

    Every option defaults to None, meaning "not given", so the lower layers show
    through. ``--help`` prints the flags and ``--version`` the versions, and both
    exit, as argparse does.
    """
    parser = _ArgumentParser(
        prog="python -m reference_server",
        description="bkvcodec reference server: device TCP gateway, HTTP API, SQLite, webhooks.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=_version_text())
    parser.add_argument("--config", metavar="FILE", default=None,
                        help=f"TOML configuration file (or {_CONFIG_ENV})")
    for name, key in _KEYS.items():
        action = "append" if name == "api_keys" else "store"
        parser.add_argument(key.flag, dest=name, metavar=key.metavar, default=None,
                            action=action, help=f"{key.help} [{key.env}]")
    return parser


# --- the layers ----------------------------------------------------------------------------

def _toml_layer(path: Path) -> dict[str, _Value]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as err:
        raise ConfigError("config", f"cannot read {str(path)!r}: {err.strerror}") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError("config", f"{str(path)!r} is not valid TOML: {err}") from err
    source = str(path)
    layer: dict[str, _Value] = {}
    for name, value in data.items():
        if name not in _KEYS:
            raise ConfigError(name, f"unknown key in {source!r}")
        if name == "api_keys":
            layer[name] = _Value(_toml_api_keys(value, source), source)
        else:
            layer[name] = _Value(value, source)
    return layer


def _toml_api_keys(value: object, source: str) -> tuple[ApiKey, ...]:
    if not isinstance(value, list):
        raise ConfigError("api_keys", f"expected [[api_keys]] tables (from {source})")
    keys: list[ApiKey] = []
    for index, table in enumerate(value):
        where = f"api_keys[{index}]"
        if not isinstance(table, dict):
            raise ConfigError(where, f"expected a table with name, key, secret, roles "
                                     f"(from {source})")
        for item in table:
            if item not in ("name", "key", "secret", "roles"):
                raise ConfigError(where, f"unknown key {item!r} (from {source})")
        name = _toml_text(table.get("name"), f"{where}.name", source)
        key = _toml_text(table.get("key"), f"{where}.key", source, secret=True)
        secret_value = table.get("secret")
        secret = (None if secret_value is None
                  else _toml_text(secret_value, f"{where}.secret", source, secret=True))
        roles = _toml_roles(table.get("roles"), f"{where}.roles", source)
        keys.append(ApiKey(name, key, secret, roles))
    return _check_api_keys(keys, source)


def _toml_roles(value: object, where: str, source: str) -> frozenset[Role]:
    if value is None:
        return frozenset(ROLES)
    expected = "a list of " + ", ".join(ROLES)
    if not isinstance(value, list) or not value:
        raise ConfigError(where, f"expected {expected}, got {value!r} (from {source})")
    roles: set[Role] = set()
    for item in value:
        role = _ROLE_NAMES.get(item) if isinstance(item, str) else None
        if role is None:
            raise ConfigError(where, f"unknown role {item!r}: expected {expected} "
                                     f"(from {source})")
        roles.add(role)
    return frozenset(roles)


def _toml_text(value: object, where: str, source: str, *, secret: bool = False) -> str:
    if not isinstance(value, str) or not value or value != value.strip():
        shown = _REDACTED if secret and value is not None else repr(value)
        raise ConfigError(where, f"expected a non-empty string without surrounding spaces, "
                                 f"got {shown} (from {source})")
    return value


def _key_name(key: str) -> str:
    """A stable, non-secret name for a key given without one (environment, flags)."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


def _parse_key_spec(spec: str, source: str) -> ApiKey:
    key, sep, secret = spec.strip().partition(":")
    if not key or key != key.strip() or any(c.isspace() for c in key):
        raise ConfigError("api_keys", f"expected KEY or KEY:SECRET, got an empty or "
                                      f"blank key (from {source})")
    if sep and not secret:
        raise ConfigError("api_keys", f"the secret after ':' must not be empty (from {source})")
    return ApiKey(_key_name(key), key, secret if sep else None)


def _check_api_keys(keys: Sequence[ApiKey], source: str) -> tuple[ApiKey, ...]:
    seen_names: set[str] = set()
    seen_keys: set[str] = set()
    for k in keys:
        if k.name in seen_names:
            raise ConfigError("api_keys", f"duplicate name {k.name!r} (from {source})")
        if k.key in seen_keys:
            raise ConfigError("api_keys", f"key {k.name!r} is given twice (from {source})")
        seen_names.add(k.name)
        seen_keys.add(k.key)
    return tuple(keys)


def _env_layer(environ: Mapping[str, str]) -> dict[str, _Value]:
    layer: dict[str, _Value] = {}
    for name, key in _KEYS.items():
        raw = environ.get(key.env, "")
        if raw == "":      # unset and empty are the same: "not configured here"
            continue
        if name == "api_keys":
            specs = [s for s in raw.split(",") if s.strip()]
            layer[name] = _Value(
                _check_api_keys([_parse_key_spec(s, key.env) for s in specs], key.env), key.env)
        else:
            layer[name] = _Value(raw, key.env)
    return layer


def _flag_layer(args: argparse.Namespace) -> dict[str, _Value]:
    layer: dict[str, _Value] = {}
    for name, key in _KEYS.items():
        value: object = getattr(args, name)
        if value is None:
            continue
        if name == "api_keys":
            assert isinstance(value, list)
            specs = [str(s) for s in value]
            layer[name] = _Value(
                _check_api_keys([_parse_key_spec(s, key.flag) for s in specs], key.flag),
                key.flag)
        else:
            layer[name] = _Value(value, key.flag)
    return layer


# --- typed values --------------------------------------------------------------------------

def _bad(name: str, expected: str, raw: _Value) -> NoReturn:
    shown = repr(raw.value)
    if name in _URL_KEYS and isinstance(raw.value, str):
        shown = repr(_redact_url(raw.value))
    elif name in _SECRET_KEYS:
        shown = _REDACTED
    raise ConfigError(name, f"expected {expected}, got {shown} (from {raw.source})")


def _get_str(raw: Mapping[str, _Value], name: str, default: str) -> str:
    value = _get_opt_str(raw, name)
    return default if value is None else value


_BOOLEANS = {"true": True, "false": False, "yes": True, "no": False, "on": True,
             "off": False, "1": True, "0": False}


def _get_bool(raw: Mapping[str, _Value], name: str, default: bool) -> bool:
    item = raw.get(name)
    if item is None:
        return default
    if isinstance(item.value, bool):
        return item.value
    if isinstance(item.value, str) and item.value.strip().lower() in _BOOLEANS:
        return _BOOLEANS[item.value.strip().lower()]
    _bad(name, "true or false", item)


def _get_opt_str(raw: Mapping[str, _Value], name: str) -> str | None:
    item = raw.get(name)
    if item is None:
        return None
    if not isinstance(item.value, str) or not item.value.strip():
        _bad(name, "a non-empty string", item)
    return item.value.strip()


def _get_opt_int(raw: Mapping[str, _Value], name: str, *, low: int,
                 high: int | None = None) -> int | None:
    item = raw.get(name)
    if item is None:
        return None
    expected = (f"an integer from {low} to {high}" if high is not None
                else f"an integer ≥ {low}")
    value = item.value
    number: int
    if isinstance(value, bool):
        _bad(name, expected, item)
    elif isinstance(value, int):
        number = value
    elif isinstance(value, str):
        try:
            number = int(value.strip(), 10)
        except ValueError:
            _bad(name, expected, item)
    else:
        _bad(name, expected, item)
    if number < low or (high is not None and number > high):
        _bad(name, expected, item)
    return number


def _get_int(raw: Mapping[str, _Value], name: str, default: int, *, low: int = 1,
             high: int | None = None) -> int:
    value = _get_opt_int(raw, name, low=low, high=high)
    return default if value is None else value


def _get_port(raw: Mapping[str, _Value], name: str, default: int) -> int:
    return _get_int(raw, name, default, low=0, high=_MAX_PORT)


def _get_policy(raw: Mapping[str, _Value], default: BusyPortPolicy) -> BusyPortPolicy:
    value = _get_opt_str(raw, "busy_port_policy")
    if value is None:
        return default
    policy = _POLICIES.get(value.lower())
    if policy is None:
        _bad("busy_port_policy", "'reject' or 'replace'", raw["busy_port_policy"])
    return policy


def _get_choice(raw: Mapping[str, _Value], name: str, choices: Mapping[str, _C],
                default: _C) -> _C:
    value = _get_opt_str(raw, name)
    if value is None:
        return default
    choice = choices.get(value.lower())
    if choice is None:
        _bad(name, " or ".join(repr(c) for c in choices), raw[name])
    return choice


def _get_id_list(raw: Mapping[str, _Value], name: str) -> tuple[str, ...]:
    item = raw.get(name)
    if item is None:
        return ()
    value = item.value
    items: list[object]
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, list):
        items = list(value)
    else:
        _bad(name, "a list of device ids", item)
    ids: list[str] = []
    for entry in items:
        if (not isinstance(entry, str) or not entry or len(entry) > 64
                or not entry.isalnum() or not entry.isascii()):
            _bad(name, "device ids of letters and digits", item)
        ids.append(entry)
    return tuple(dict.fromkeys(ids))


def _get_log_level(raw: Mapping[str, _Value], default: LogLevel) -> LogLevel:
    value = _get_opt_str(raw, "log_level")
    if value is None:
        return default
    level = _LOG_LEVELS.get(value.lower())
    if level is None:
        _bad("log_level", "one of " + ", ".join(_LOG_LEVELS), raw["log_level"])
    return level


def _get_synchronous(raw: Mapping[str, _Value],
                     default: SqliteSynchronous) -> SqliteSynchronous:
    value = _get_opt_str(raw, "sqlite_synchronous")
    if value is None:
        return default
    mode = _SYNCHRONOUS.get(value.lower())
    if mode is None:
        _bad("sqlite_synchronous", "'full' or 'normal'", raw["sqlite_synchronous"])
    return mode


def _get_webhook_url(raw: Mapping[str, _Value]) -> str | None:
    value = _get_opt_str(raw, "webhook_url")
    if value is None:
        return None
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        _bad("webhook_url", "an http:// or https:// URL with a host", raw["webhook_url"])
    try:
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        _bad("webhook_url", "a URL with a valid port", raw["webhook_url"])
    return value


def _get_database_url(raw: Mapping[str, _Value]) -> str | None:
    value = _get_opt_str(raw, "database_url")
    if value is None:
        return None
    if urllib.parse.urlsplit(value).scheme not in ("postgresql", "postgres"):
        _bad("database_url", "a postgresql:// URL", raw["database_url"])
    return value


def _get_api_keys(raw: Mapping[str, _Value]) -> tuple[ApiKey, ...]:
    item = raw.get("api_keys")
    if item is None:
        return ()
    assert isinstance(item.value, tuple)
    return tuple(k for k in item.value if isinstance(k, ApiKey))


def _build(raw: Mapping[str, _Value], config_file: Path | None) -> Config:
    d = Config()
    return Config(
        tcp_host=_get_str(raw, "tcp_host", d.tcp_host),
        tcp_port=_get_port(raw, "tcp_port", d.tcp_port),
        http_host=_get_str(raw, "http_host", d.http_host),
        http_port=_get_port(raw, "http_port", d.http_port),
        db_path=Path(_get_str(raw, "db_path", str(d.db_path))),
        database_url=_get_database_url(raw),
        api_keys=_get_api_keys(raw),
        webhook_url=_get_webhook_url(raw),
        webhook_secret=_get_opt_str(raw, "webhook_secret"),
        offline_after=_get_opt_int(raw, "offline_after", low=1),
        offline_after_bkv=_get_int(raw, "offline_after_bkv", d.offline_after_bkv),
        offline_after_ap3000=_get_int(raw, "offline_after_ap3000", d.offline_after_ap3000),
        start_timeout=_get_int(raw, "start_timeout", d.start_timeout),
        command_ttl=_get_int(raw, "command_ttl", d.command_ttl),
        busy_port_policy=_get_policy(raw, d.busy_port_policy),
        log_level=_get_log_level(raw, d.log_level),
        log_format=_get_choice(raw, "log_format", _LOG_FORMATS, d.log_format),
        log_frame_level=_get_choice(raw, "log_frame_level", _FRAME_LOG_LEVELS,
                                    d.log_frame_level),
        cmd_log_retention=_get_int(raw, "cmd_log_retention", d.cmd_log_retention),
        cmd_log_max_rows=_get_int(raw, "cmd_log_max_rows", d.cmd_log_max_rows),
        rate_limit_rps=_get_int(raw, "rate_limit_rps", d.rate_limit_rps),
        rate_limit_burst=_get_int(raw, "rate_limit_burst", d.rate_limit_burst),
        rate_limit_auth_failures=_get_int(raw, "rate_limit_auth_failures",
                                          d.rate_limit_auth_failures),
        device_command_rate=_get_int(raw, "device_command_rate", d.device_command_rate),
        webhook_timeout=_get_int(raw, "webhook_timeout", d.webhook_timeout),
        webhook_max_backoff=_get_int(raw, "webhook_max_backoff", d.webhook_max_backoff),
        webhook_retry_window=_get_int(raw, "webhook_retry_window", d.webhook_retry_window),
        max_body_bytes=_get_int(raw, "max_body_bytes", d.max_body_bytes),
        signature_max_skew=_get_int(raw, "signature_max_skew", d.signature_max_skew),
        nonce_ttl=_get_int(raw, "nonce_ttl", d.nonce_ttl),
        idempotency_ttl=_get_int(raw, "idempotency_ttl", d.idempotency_ttl),
        default_price_per_kwh=_get_int(raw, "default_price_per_kwh", d.default_price_per_kwh,
                                       low=0),
        default_service_fee=_get_int(raw, "default_service_fee", d.default_service_fee, low=0),
        retention_days=_get_int(raw, "retention_days", d.retention_days),
        sqlite_synchronous=_get_synchronous(raw, d.sqlite_synchronous),
        rated_power_w=_get_int(raw, "rated_power_w", d.rated_power_w),
        device_policy=_get_choice(raw, "device_policy", _DEVICE_POLICIES, d.device_policy),
        known_devices=_get_id_list(raw, "known_devices"),
        iccid_binding=_get_choice(raw, "iccid_binding", _ICCID_BINDINGS, d.iccid_binding),
        takeover_policy=_get_choice(raw, "takeover_policy", _TAKEOVER_POLICIES,
                                    d.takeover_policy),
        max_connections=_get_opt_int(raw, "max_connections", low=1),
        max_connections_per_ip=_get_int(raw, "max_connections_per_ip",
                                        d.max_connections_per_ip, low=0),
        unidentified_timeout=_get_int(raw, "unidentified_timeout", d.unidentified_timeout),
        unidentified_max_bytes=_get_int(raw, "unidentified_max_bytes",
                                        d.unidentified_max_bytes),
        redis_url=_get_opt_str(raw, "redis_url"),
        node_id=_get_opt_str(raw, "node_id"),
        cluster_name=_get_str(raw, "cluster_name", d.cluster_name),
        reuse_port=_get_bool(raw, "reuse_port", d.reuse_port),
        workers=_get_int(raw, "workers", d.workers, high=64),
        frame_log_max_bytes=_get_int(raw, "frame_log_max_bytes", d.frame_log_max_bytes,
                                     low=0),
        config_file=config_file,
    )


def load_config(argv: Sequence[str], environ: Mapping[str, str]) -> Config:
    """Build the configuration from a TOML file, the environment and the command line.

    Precedence, lowest first: defaults, the TOML file (``--config FILE``, else
    ``IOT_CONFIG``), ``IOT_*`` variables, flags. An empty environment variable
    counts as unset. A layer that gives API keys replaces the lower layers' keys.

    Args:
        argv: The command-line arguments, without the program name.
        environ: The environment, e.g. ``os.environ``.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: An unreadable or invalid file, an unknown TOML key, a bad
            value (the message names the key and its source) or a bad flag.
    """
    args = argument_parser().parse_args(list(argv))
    config_arg: object = args.config
    config_path: Path | None = None
    if isinstance(config_arg, str):
        config_path = Path(config_arg)
    elif environ.get(_CONFIG_ENV, ""):
        config_path = Path(environ[_CONFIG_ENV])
    raw: dict[str, _Value] = {}
    if config_path is not None:
        raw.update(_toml_layer(config_path))
    raw.update(_env_layer(environ))
    raw.update(_flag_layer(args))
    return _build(raw, config_path)


# --- the generated API key -----------------------------------------------------------------

def generate_api_key() -> str:
    """A new random API key: 32 bytes from :mod:`secrets`, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """The SHA-256 of *key*, hex: what the database keeps of a generated key."""
    return hashlib.sha256(key.encode()).hexdigest()


def with_generated_api_key(config: Config, key: str = "", *,
                           key_sha256: str | None = None) -> Config:
    """*config* with one API key named :data:`GENERATED_API_KEY_NAME`: *key*, or
    the key whose SHA-256 is *key_sha256* (as stored, the key itself being gone).

    For starts without configured keys: the caller loads the hash from the
    ``settings`` row :data:`GENERATED_API_KEY_SETTING`, or generates a key with
    :func:`generate_api_key`, stores its :func:`hash_api_key` there and prints the
    key once.

    Raises:
        ValueError: *config* already has API keys, or neither a key nor a
            64-digit hex hash was given.
    """
    if config.api_keys:
        raise ValueError("the configuration already has API keys")
    if key_sha256 is not None:
        try:
            valid = len(bytes.fromhex(key_sha256)) == hashlib.sha256().digest_size
        except ValueError:
            valid = False
        if not valid or key:
            raise ValueError("key_sha256 must be a SHA-256 in hex, given without the key")
        return replace(config, api_keys=(
            ApiKey(GENERATED_API_KEY_NAME, "", key_sha256=key_sha256.lower()),))
    if not key:
        raise ValueError("the generated API key must not be empty")
    return replace(config, api_keys=(ApiKey(GENERATED_API_KEY_NAME, key),))


def _redact_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}:{_REDACTED}@{hostport}" if ":" in userinfo else netloc
    query = _REDACTED if parts.query else ""
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))

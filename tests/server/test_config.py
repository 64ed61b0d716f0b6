"""Configuration (api.md §1): defaults, every name per layer, precedence, validation."""
from __future__ import annotations

import json
import string
from pathlib import Path

import pytest

from reference_server.config import (
    GENERATED_API_KEY_NAME,
    ROLES,
    ApiKey,
    Config,
    ConfigError,
    argument_parser,
    generate_api_key,
    load_config,
    with_generated_api_key,
)


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "iot.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- defaults ------------------------------------------------------------------------------

def test_defaults_are_the_contracts() -> None:
    config = load_config([], {})

    assert ("0.0.0.0", 7065) == (config.tcp_host, config.tcp_port)
    assert ("0.0.0.0", 7055) == (config.http_host, config.http_port)
    assert Path("./data/iot.db") == config.db_path
    assert () == config.api_keys
    assert config.needs_generated_api_key
    assert (None, None) == (config.webhook_url, config.webhook_secret)
    assert (None, 180, 90) == (config.offline_after, config.offline_after_bkv,
                               config.offline_after_ap3000)
    assert (120, 300) == (config.start_timeout, config.command_ttl)
    assert ("reject", "info") == (config.busy_port_policy, config.log_level)
    assert ("json", "info") == (config.log_format, config.log_frame_level)
    assert (200, 400, 5) == (config.rate_limit_rps, config.rate_limit_burst,
                             config.device_command_rate)
    assert (5, 300, 86400) == (config.webhook_timeout, config.webhook_max_backoff,
                               config.webhook_retry_window)
    assert (65536, 300, 600, 86400) == (config.max_body_bytes, config.signature_max_skew,
                                        config.nonce_ttl, config.idempotency_ttl)
    assert Config() == config


def test_offline_after_per_protocol_and_global_override() -> None:
    default = load_config([], {})
    overridden = load_config(["--offline-after", "30"], {})

    assert (180, 90) == (default.offline_after_for("bkv"), default.offline_after_for("ap3000"))
    assert (30, 30) == (overridden.offline_after_for("bkv"),
                        overridden.offline_after_for("ap3000"))
    with pytest.raises(ValueError):
        default.offline_after_for("gn")


def test_per_protocol_offline_after_is_configurable(tmp_path: Path) -> None:
    path = _toml(tmp_path, "offline_after_bkv = 60\n")

    config = load_config(["--config", str(path), "--offline-after-ap3000", "45"], {})

    assert (60, 45) == (config.offline_after_for("bkv"), config.offline_after_for("ap3000"))


# --- every name of the contract's table, in each layer --------------------------------------

# (TOML key, environment variable, flag, raw text, expected attribute value)
TABLE = [
    ("tcp_host", "IOT_TCP_HOST", "--tcp-host", "127.0.0.1", "127.0.0.1"),
    ("tcp_port", "IOT_TCP_PORT", "--tcp-port", "7000", 7000),
    ("http_host", "IOT_HTTP_HOST", "--http-host", "::1", "::1"),
    ("http_port", "IOT_HTTP_PORT", "--http-port", "8080", 8080),
    ("db_path", "IOT_DB_PATH", "--db", "/var/lib/iot/iot.db", Path("/var/lib/iot/iot.db")),
    ("webhook_url", "IOT_WEBHOOK_URL", "--webhook-url", "http://localhost:8888/webhook",
     "http://localhost:8888/webhook"),
    ("database_url", "IOT_DATABASE_URL", "--database-url", "postgresql://bkv@db:5432/iot",
     "postgresql://bkv@db:5432/iot"),
    ("webhook_secret", "IOT_WEBHOOK_SECRET", "--webhook-secret", "s3cret", "s3cret"),
    ("offline_after", "IOT_OFFLINE_AFTER", "--offline-after", "30", 30),
    ("start_timeout", "IOT_START_TIMEOUT", "--start-timeout", "60", 60),
    ("command_ttl", "IOT_COMMAND_TTL", "--command-ttl", "600", 600),
    ("busy_port_policy", "IOT_BUSY_PORT_POLICY", "--busy-port-policy", "replace", "replace"),
    ("log_level", "IOT_LOG_LEVEL", "--log-level", "debug", "debug"),
    ("log_format", "IOT_LOG_FORMAT", "--log-format", "text", "text"),
    ("log_frame_level", "IOT_LOG_FRAME_LEVEL", "--log-frame-level", "debug", "debug"),
]


@pytest.mark.parametrize(("key", "env", "flag", "text", "expected"), TABLE)
def test_every_flag_of_the_table(key: str, env: str, flag: str, text: str,
                                 expected: object) -> None:
    config = load_config([flag, text], {})

    assert expected == getattr(config, key)


@pytest.mark.parametrize(("key", "env", "flag", "text", "expected"), TABLE)
def test_every_environment_variable_of_the_table(key: str, env: str, flag: str, text: str,
                                                 expected: object) -> None:
    config = load_config([], {env: text})

    assert expected == getattr(config, key)


@pytest.mark.parametrize(("key", "env", "flag", "text", "expected"), TABLE)
def test_every_toml_key_of_the_table(tmp_path: Path, key: str, env: str, flag: str, text: str,
                                     expected: object) -> None:
    value = text if not isinstance(expected, int) else int(text)
    path = _toml(tmp_path, f"{key} = {json.dumps(value)}\n")

    config = load_config(["--config", str(path)], {})

    assert expected == getattr(config, key)
    assert path == config.config_file


def test_help_lists_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        argument_parser().parse_args(["--help"])

    out = capsys.readouterr().out
    assert 0 == exit_info.value.code
    for flag in [row[2] for row in TABLE] + ["--api-key", "--config"]:
        assert flag in out


# --- precedence: TOML < environment < flags -------------------------------------------------

@pytest.mark.parametrize(("key", "env", "flag", "toml_value", "env_value", "flag_value"), [
    ("tcp_port", "IOT_TCP_PORT", "--tcp-port", 1001, "1002", "1003"),
    ("tcp_host", "IOT_TCP_HOST", "--tcp-host", "10.0.0.1", "10.0.0.2", "10.0.0.3"),
    ("http_port", "IOT_HTTP_PORT", "--http-port", 2001, "2002", "2003"),
    ("db_path", "IOT_DB_PATH", "--db", "a.db", "b.db", "c.db"),
    ("command_ttl", "IOT_COMMAND_TTL", "--command-ttl", 11, "12", "13"),
    ("busy_port_policy", "IOT_BUSY_PORT_POLICY", "--busy-port-policy", "reject", "replace",
     "reject"),
    ("log_level", "IOT_LOG_LEVEL", "--log-level", "error", "warning", "debug"),
])
def test_precedence_toml_env_flags(tmp_path: Path, key: str, env: str, flag: str,
                                   toml_value: object, env_value: str, flag_value: str) -> None:
    path = _toml(tmp_path, f"{key} = {json.dumps(toml_value)}\n")
    base = ["--config", str(path)]

    from_toml = getattr(load_config(base, {}), key)
    from_env = getattr(load_config(base, {env: env_value}), key)
    from_flag = getattr(load_config([*base, flag, flag_value], {env: env_value}), key)

    assert [str(toml_value), env_value, flag_value] == [str(v) for v in
                                                        (from_toml, from_env, from_flag)]


def test_layers_override_key_by_key(tmp_path: Path) -> None:
    path = _toml(tmp_path, 'tcp_port = 1\nhttp_port = 2\nlog_level = "error"\n')

    config = load_config(["--config", str(path), "--http-port", "22"], {"IOT_TCP_PORT": "11"})

    assert (11, 22, "error") == (config.tcp_port, config.http_port, config.log_level)


def test_config_file_from_environment_and_flag_wins(tmp_path: Path) -> None:
    env_file = tmp_path / "env.toml"
    env_file.write_text("tcp_port = 1\n", encoding="utf-8")
    flag_file = tmp_path / "flag.toml"
    flag_file.write_text("tcp_port = 2\n", encoding="utf-8")

    from_env = load_config([], {"IOT_CONFIG": str(env_file)})
    from_flag = load_config(["--config", str(flag_file)], {"IOT_CONFIG": str(env_file)})

    assert (1, env_file) == (from_env.tcp_port, from_env.config_file)
    assert (2, flag_file) == (from_flag.tcp_port, from_flag.config_file)


def test_empty_environment_variable_counts_as_unset(tmp_path: Path) -> None:
    path = _toml(tmp_path, 'webhook_url = "http://hook.example/x"\ntcp_port = 5\n')

    config = load_config(["--config", str(path)],
                         {"IOT_WEBHOOK_URL": "", "IOT_TCP_PORT": "", "IOT_API_KEYS": ""})

    assert ("http://hook.example/x", 5, ()) == (config.webhook_url, config.tcp_port,
                                                config.api_keys)


def test_unknown_environment_variables_are_ignored() -> None:
    assert Config() == load_config([], {"IOT_SOMETHING_ELSE": "1", "PATH": "/bin"})


# --- API keys ------------------------------------------------------------------------------

def test_api_keys_from_toml(tmp_path: Path) -> None:
    path = _toml(tmp_path, """
[[api_keys]]
name = "platform"
key = "test-api-key"

[[api_keys]]
name = "signed"
key = "k2"
secret = "hmac-secret"
""")

    config = load_config(["--config", str(path)], {})

    assert (ApiKey("platform", "test-api-key"), ApiKey("signed", "k2", "hmac-secret")) \
        == config.api_keys
    assert [False, True] == [k.signed for k in config.api_keys]


def test_api_keys_from_environment_and_flags() -> None:
    from_env = load_config([], {"IOT_API_KEYS": "k1, k2:s2,"})
    from_flags = load_config(["--api-key", "k3", "--api-key", "k4:s4"],
                             {"IOT_API_KEYS": "k1"})

    assert [("k1", None), ("k2", "s2")] == [(k.key, k.secret) for k in from_env.api_keys]
    assert [("k3", None), ("k4", "s4")] == [(k.key, k.secret) for k in from_flags.api_keys]


def test_api_key_names_are_stable_and_not_the_key() -> None:
    a = load_config(["--api-key", "secret-key-1"], {}).api_keys[0]
    b = load_config([], {"IOT_API_KEYS": "secret-key-1:other"}).api_keys[0]

    assert a.name == b.name
    assert a.name.startswith("key-")
    assert "secret-key-1" not in a.name


def test_a_layer_replaces_the_keys_below(tmp_path: Path) -> None:
    path = _toml(tmp_path, '[[api_keys]]\nname = "file"\nkey = "from-file"\n')

    config = load_config(["--config", str(path)], {"IOT_API_KEYS": "from-env"})

    assert ["from-env"] == [k.key for k in config.api_keys]


def test_secrets_never_in_repr_or_redacted() -> None:
    config = load_config(["--api-key", "KEY-AAAA:SECRET-BBBB", "--webhook-secret", "WH-CCCC",
                          "--webhook-url", "https://user:PASS-DDDD@hook.example/p?token=TOK-EEEE"],
                         {})

    shown = repr(config) + json.dumps(config.redacted()) + repr(config.api_keys)
    for secret in ("KEY-AAAA", "SECRET-BBBB", "WH-CCCC", "PASS-DDDD", "TOK-EEEE"):
        assert secret not in shown
    assert [{"name": config.api_keys[0].name, "signed": True, "roles": list(ROLES)}] == (
        config.redacted()["api_keys"])
    assert "hook.example/p" in str(config.redacted()["webhook_url"])


def test_the_database_url_is_shown_without_its_password() -> None:
    config = load_config([], {"IOT_DATABASE_URL": "postgresql://bkv:PASS-FFFF@db:5432/iot"
                                                  "?password=PASS-GGGG"})

    assert "postgresql://bkv:PASS-FFFF@db:5432/iot?password=PASS-GGGG" == config.database_url
    shown = repr(config) + json.dumps(config.redacted())
    assert "PASS-FFFF" not in shown and "PASS-GGGG" not in shown
    assert str(config.redacted()["database_url"]).startswith("postgresql://bkv:")
    assert None is Config().database_url  # SQLite at db_path
    with pytest.raises(ConfigError) as info:
        load_config(["--database-url", "mysql://u:PASS-HHHH@db/x"], {})
    assert "PASS-HHHH" not in str(info.value)


def test_generated_api_key() -> None:
    keys = {generate_api_key() for _ in range(20)}

    assert 20 == len(keys)
    assert all(len(k) >= 40 and set(k) <= set(string.ascii_letters + string.digits + "-_")
               for k in keys)
    config = with_generated_api_key(Config(), "generated-value")
    assert (ApiKey(GENERATED_API_KEY_NAME, "generated-value"),) == config.api_keys
    assert not config.needs_generated_api_key
    with pytest.raises(ValueError):
        with_generated_api_key(config, "again")
    with pytest.raises(ValueError):
        with_generated_api_key(Config(), "")


# --- validation ----------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "environ", "key"), [
    (["--tcp-port", "70000"], {}, "tcp_port"),
    (["--tcp-port", "-1"], {}, "tcp_port"),
    (["--http-port", "http"], {}, "http_port"),
    ([], {"IOT_TCP_PORT": "7.5"}, "tcp_port"),
    (["--busy-port-policy", "queue"], {}, "busy_port_policy"),
    ([], {"IOT_LOG_LEVEL": "verbose"}, "log_level"),
    ([], {"IOT_LOG_FORMAT": "yaml"}, "log_format"),
    (["--log-frame-level", "warning"], {}, "log_frame_level"),
    (["--offline-after", "0"], {}, "offline_after"),
    (["--start-timeout", "-5"], {}, "start_timeout"),
    (["--command-ttl", "five"], {}, "command_ttl"),
    (["--webhook-url", "ftp://example.com/x"], {}, "webhook_url"),
    (["--webhook-url", "not a url"], {}, "webhook_url"),
    (["--webhook-url", "http://host:99999/x"], {}, "webhook_url"),
    (["--database-url", "mysql://db/iot"], {}, "database_url"),
    ([], {"IOT_DATABASE_URL": "./data/iot.db"}, "database_url"),
    (["--tcp-host", " "], {}, "tcp_host"),
    (["--api-key", "k:"], {}, "api_keys"),
    (["--api-key", ":secret"], {}, "api_keys"),
    (["--api-key", "k", "--api-key", "k"], {}, "api_keys"),
    ([], {"IOT_API_KEYS": "a b"}, "api_keys"),
    (["--no-such-flag"], {}, "argv"),
    (["--tcp-port"], {}, "argv"),
])
def test_bad_values_name_their_key(argv: list[str], environ: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(argv, environ)

    assert key == info.value.key
    assert str(info.value).startswith(f"{key}: ")


def test_error_names_the_source() -> None:
    with pytest.raises(ConfigError) as info:
        load_config([], {"IOT_TCP_PORT": "abc"})

    assert "IOT_TCP_PORT" in str(info.value)
    assert "'abc'" in str(info.value)


def test_secret_values_are_not_echoed_in_errors(tmp_path: Path) -> None:
    path = _toml(tmp_path, 'webhook_secret = 12345\n[[api_keys]]\nname = "x"\nkey = " k "\n')

    with pytest.raises(ConfigError) as info:
        load_config(["--config", str(path)], {})

    assert "' k '" not in str(info.value)


@pytest.mark.parametrize(("text", "key"), [
    ("tcp_prot = 7065\n", "tcp_prot"),
    ("tcp_port = 70000\n", "tcp_port"),
    ("tcp_port = true\n", "tcp_port"),
    ("tcp_port = 1.5\n", "tcp_port"),
    ("tcp_host = 5\n", "tcp_host"),
    ('busy_port_policy = "steal"\n', "busy_port_policy"),
    ("webhook_secret = 12345\n", "webhook_secret"),
    ('api_keys = "k"\n', "api_keys"),
    ('[[api_keys]]\nkey = "k"\n', "api_keys[0].name"),
    ('[[api_keys]]\nname = "n"\n', "api_keys[0].key"),
    ('[[api_keys]]\nname = "n"\nkey = "k"\nsecret = ""\n', "api_keys[0].secret"),
    ('[[api_keys]]\nname = "n"\nkey = "k"\nscope = "all"\n', "api_keys[0]"),
    ('[[api_keys]]\nname = "n"\nkey = "k1"\n[[api_keys]]\nname = "n"\nkey = "k2"\n',
     "api_keys"),
    ('[[api_keys]]\nname = "a"\nkey = "k"\n[[api_keys]]\nname = "b"\nkey = "k"\n',
     "api_keys"),
    ("api_keys = [1]\n", "api_keys[0]"),
    ('[[api_keys]]\nname = "n"\nkey = "k"\nroles = ["root"]\n', "api_keys[0].roles"),
    ('[[api_keys]]\nname = "n"\nkey = "k"\nroles = []\n', "api_keys[0].roles"),
    ('[[api_keys]]\nname = "n"\nkey = "k"\nroles = "read"\n', "api_keys[0].roles"),
    ("retention_days = 0\n", "retention_days"),
    ("rate_limit_auth_failures = 0\n", "rate_limit_auth_failures"),
    ("[webhook]\nurl = 'http://x'\n", "webhook"),
    ("tcp_port = \n", "config"),
])
def test_bad_toml_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = _toml(tmp_path, text)

    with pytest.raises(ConfigError) as info:
        load_config(["--config", str(path)], {})

    assert key == info.value.key


def test_api_key_roles(tmp_path: Path) -> None:
    path = _toml(tmp_path, '[[api_keys]]\nname = "r"\nkey = "k1"\nroles = ["read", "cards"]\n'
                           '[[api_keys]]\nname = "all"\nkey = "k2"\n')

    config = load_config(["--config", str(path)], {})

    assert [frozenset({"read", "cards"}), frozenset(ROLES)] == [k.roles for k in config.api_keys]
    assert [["read", "cards"], list(ROLES)] == [k["roles"] for k in config.redacted()["api_keys"]]


def test_generated_api_key_by_hash() -> None:
    digest = "ab" * 32
    config = with_generated_api_key(Config(), key_sha256=digest)

    assert bytes.fromhex(digest) == config.api_keys[0].digest()
    assert "" == config.api_keys[0].key
    for bad in ("ab", "zz" * 32):
        with pytest.raises(ValueError):
            with_generated_api_key(Config(), key_sha256=bad)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config([], {"IOT_CONFIG": str(tmp_path / "absent.toml")})

    assert "config" == info.value.key
    assert "absent.toml" in str(info.value)


def test_case_insensitive_choices_and_port_zero() -> None:
    config = load_config(["--log-level", "WARNING", "--busy-port-policy", "Replace",
                          "--tcp-port", "0", "--http-port", "0"], {})

    assert ("warning", "replace", 0, 0) == (config.log_level, config.busy_port_policy,
                                            config.tcp_port, config.http_port)


def test_the_documented_production_configuration_loads_with_every_safeguard_on() -> None:
    path = Path(__file__).resolve().parents[2] / "docs" / "examples" / "production.toml"

    config = load_config(["--config", str(path)], {})

    assert ("known", "pin", "keep", "full") == (
        config.device_policy, config.iccid_binding, config.takeover_policy,
        config.sqlite_synchronous)
    assert config.known_devices and config.max_connections
    assert all(key.secret and key.roles and "admin" not in key.roles
               for key in config.api_keys if key.name != "operations")

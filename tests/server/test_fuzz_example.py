"""examples/fuzz_gateway.py, the documented CI fuzzing recipe, runs as part of the
suite (with fewer examples), so that it cannot rot."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from hypothesis import HealthCheck, given, settings

EXAMPLE = Path(__file__).parents[2] / "examples" / "fuzz_gateway.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_gateway_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_example_fuzzes_the_gateway(tmp_path: Path) -> None:
    example = _load()
    # The example's own test body and strategy, with fewer examples.
    check = example.test_gateway_survives_any_device_traffic.hypothesis.inner_test
    test = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])(
        given(chunks=example.device_traffic())(check))

    with example.running_server(tmp_path) as server:
        device = example.GoodDevice(example.socket.create_connection(
            ("127.0.0.1", server.port), timeout=example.TIMEOUT))
        try:
            assert device.heartbeat_answered()
            test(server=server, good_device=device)
        finally:
            device.sock.close()
        assert [] == server.errors()


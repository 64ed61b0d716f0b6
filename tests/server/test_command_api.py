"""POST /devices/{phy_id}/commands and parameter sets: the body of each kind, the
library's refusals as 422, the role each kind needs, and the document; then every
kind against the simulator over real TCP, and AP3000 partial parameter sets (merged
with known values, queried first, failed when the query goes unanswered)."""
from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from bkvcodec import (
    CommandAcknowledged,
    ParamsReported,
    ProtocolFamily,
    QueryParams,
    SetParams,
)
from reference_server.api import openapi_document
from reference_server.config import ApiKey
from reference_server.simulator import Charger, ap3000_unit, bkv_gateway

from .harness import AP3000_ID, BKV_ID, Device, RunningServer, e2e_config, server_running
from .test_api import AP1, BASE, CONFIG, GW1, add_device, assert_error, ok_data, running_api
from .test_simulator import simulation

TIMEOUT = 10
OPERATOR_KEY, FIRMWARE_KEY, READER_KEY = "operator-key", "firmware-key", "reader-key"
ROLE_CONFIG = replace(CONFIG, device_command_rate=1000, api_keys=(
    *CONFIG.api_keys,
    ApiKey("operator", OPERATOR_KEY, roles=frozenset({"operate"})),
    ApiKey("firmware", FIRMWARE_KEY, roles=frozenset({"firmware"})),
    ApiKey("reader", READER_KEY, roles=frozenset({"read"}))))
IMAGE = base64.b64encode(bytes(range(256)) * 2).decode()
#: Room for every request of a test (the device rate limit has a test of its own).
UNLIMITED = replace(CONFIG, device_command_rate=1000)


def commands_path(phy_id: str) -> str:
    return f"{BASE}/devices/{phy_id}/commands"


# --- bodies and refusals (no gateway: every device is offline) ---------------------------------

@pytest.mark.trio
@pytest.mark.parametrize(("phy_id", "body", "field"), [
    (GW1, {}, "kind"),
    (GW1, {"kind": "reboot"}, "kind"),
    (GW1, {"kind": 3}, "kind"),
    (GW1, {"kind": "query_status", "socket_no": 0}, "socket_no"),
    (GW1, {"kind": "set_params"}, "params"),
    (GW1, {"kind": "set_params", "params": [1]}, "params"),
    (GW1, {"kind": "set_params", "params": {"no_load_delay_s": -1}}, "params.no_load_delay_s"),
    (GW1, {"kind": "set_params", "params": {"no_load_delay_s": True}},
     "params.no_load_delay_s"),
    (GW1, {"kind": "query_params", "names": "float_percent"}, "names"),
    (GW1, {"kind": "query_params", "names": [7]}, "names[0]"),
    (AP1, {"kind": "modify_charge", "duration_s": 60}, "port_no"),
    (AP1, {"kind": "modify_charge", "port_no": 1, "duration_s": 60, "stop_when_full": 1},
     "stop_when_full"),
    (GW1, {"kind": "start_ota", "ftp_host": "10.0.0.1"}, "file_name"),
    (AP1, {"kind": "send_firmware", "image_base64": "not base64!"}, "image_base64"),
    (AP1, {"kind": "send_firmware", "image_base64": IMAGE, "target": "gateway"}, "target"),
    (GW1, {"kind": "set_network_list"}, "sockets"),
    (GW1, {"kind": "set_network_list", "sockets": [{"socket_no": 1}]}, "sockets[0].mac"),
    (GW1, {"kind": "set_network_list", "sockets": [{"socket_no": 1, "mac": "a"}],
           "add": "yes"}, "add"),
    (AP1, {"kind": "send_message", "message": "locate"}, "protocol"),
    (AP1, {"kind": "send_message", "protocol": "dny", "message": "locate"}, "protocol"),
    (AP1, {"kind": "send_message", "protocol": "ap3000"}, "message"),
    (AP1, {"kind": "send_message", "protocol": "ap3000", "message": "locate", "fields": [5]},
     "fields"),
])
async def test_a_body_of_the_wrong_shape_is_400_naming_the_field(
        tmp_path: Path, phy_id: str, body: dict[str, object], field: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path) as api:
            await add_device(api.db)
            await add_device(api.db, AP1, protocol=ProtocolFamily.AP3000, ports=2)
            assert_error(await api.client.post(commands_path(phy_id), json=body), 400,
                         "invalid_argument", field)


@pytest.mark.trio
@pytest.mark.parametrize(("phy_id", "body", "problem"), [
    (GW1, {"kind": "start_charging", "port_no": 1}, "POST /devices/{phy_id}/charge"),
    (AP1, {"kind": "stop_charging", "port_no": 1}, "POST /devices/{phy_id}/stop"),
    (AP1, {"kind": "set_params", "params": {"max_power_w": 1}},
     "unknown AP3000 parameter max_power_w"),
    (AP1, {"kind": "set_params", "params": {"mute": 1, "unplug_power": 3}},
     "belong to 2 AP3000 commands"),
    (AP1, {"kind": "set_params", "params": {"card_sector": 1, "user_card_key": 2**48,
                                            "new_card_key": 1}}, "card"),
    (AP1, {"kind": "set_params", "params": {"float_percent": 0}},
     "float_percent must be 1-100"),
    (GW1, {"kind": "set_params", "params": {"no_load_delay_s": 70000}},
     "no_load_delay_s must be 0-65535"),
    (GW1, {"kind": "set_params", "params": {"buzzer_on": 1}}, "voice_on"),
    (AP1, {"kind": "query_params", "names": ["unplug_power", "mute"]}, "mute"),
    (AP1, {"kind": "query_params", "names": ["mute", "mute"]}, "names repeat"),
    (AP1, {"kind": "modify_charge", "port_no": 1, "duration_s": 60, "energy_wh": 100},
     "exactly one of duration_s, energy_wh"),
    (GW1, {"kind": "modify_charge", "port_no": 1, "duration_s": 60}, "ModifyCharge"),
    (AP1, {"kind": "start_ota", "ftp_host": "10.0.0.1", "file_name": "fw.bin"}, "StartOta"),
    (GW1, {"kind": "send_firmware", "image_base64": IMAGE}, "SendFirmware"),
    (GW1, {"kind": "set_network_list", "sockets": [{"socket_no": 1, "mac": "zz"}]},
     "mac must be 12 hex digits"),
    (GW1, {"kind": "set_network_list", "add": True, "sockets": [
        {"socket_no": 1, "mac": "0123456789ab"}, {"socket_no": 2, "mac": "0123456789ac"}]},
     "exactly one"),
    (AP1, {"kind": "set_network_list", "sockets": [{"socket_no": 1, "mac": "0123456789ab"}]},
     "SetNetworkList"),
    (AP1, {"kind": "send_message", "protocol": "ap3000", "message": "no_such_message"},
     "unknown AP3000 message 'no_such_message'"),
    (AP1, {"kind": "send_message", "protocol": "ap3000", "message": "locate"}, "duration_s"),
    (AP1, {"kind": "send_message", "protocol": "ap3000", "message": "locate",
           "fields": {"duration_s": 300}}, "duration_s must be 0-255"),
    (AP1, {"kind": "send_message", "protocol": "ap3000", "message": "locate_reply",
           "fields": {"result": 0}}, "is sent by devices, not servers"),
    (AP1, {"kind": "send_message", "protocol": "bkv", "message": "voice_config",
           "fields": {"socket_no": 1, "port": 0, "buzzer_on": 1, "voice_on": 1,
                      "windows": [{"start": "08:00", "end": "20:00"}]}},
     "BKV message; this is an AP3000 connection"),
])
async def test_what_the_library_refuses_is_422_with_its_message(
        tmp_path: Path, phy_id: str, body: dict[str, object], problem: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path) as api:
            await add_device(api.db)
            await add_device(api.db, AP1, protocol=ProtocolFamily.AP3000, ports=2)
            response = await api.client.post(commands_path(phy_id), json=body)
            data = assert_error(response, 422, "invalid_command")
            message = response.json()["message"]

            assert {"kind": body["kind"]} == data
            assert problem in message, message
            assert message.startswith(f"{body['kind']}: ")
            assert [] == (await api.db.queued_commands(1, 0)) + (
                await api.db.queued_commands(2, 0))


@pytest.mark.trio
async def test_each_kind_is_stored_and_answered_as_a_command(tmp_path: Path) -> None:
    bodies: list[tuple[str, dict[str, object]]] = [
        (GW1, {"kind": "query_status", "socket_no": 2}),
        (GW1, {"kind": "set_params", "params": {"no_load_delay_s": 90}}),
        (GW1, {"kind": "query_params"}),
        (GW1, {"kind": "start_ota", "ftp_host": "10.0.0.1", "file_name": "fw.bin"}),
        (GW1, {"kind": "set_network_list", "channel": 3,
               "sockets": [{"socket_no": 1, "mac": "0123456789ab"}]}),
        (AP1, {"kind": "set_params", "params": {"max_charge_duration_s": 7200}}),
        (AP1, {"kind": "query_params", "names": ["overload_power_0p1w"]}),
        (AP1, {"kind": "modify_charge", "port_no": 2, "energy_wh": 500}),
        (AP1, {"kind": "send_firmware", "image_base64": IMAGE, "target": "host"}),
        (AP1, {"kind": "send_message", "protocol": "ap3000", "message": "locate",
               "fields": {"duration_s": 5}}),
        (GW1, {"kind": "send_message", "protocol": "bkv", "message": "voice_config",
               "fields": {"socket_no": 1, "port": 0, "buzzer_on": 0, "voice_on": 1,
                          "windows": [{"start": "08:00", "end": "20:00"}]}}),
    ]
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path, UNLIMITED) as api:
            await add_device(api.db)
            await add_device(api.db, AP1, protocol=ProtocolFamily.AP3000, ports=2)
            answers = [ok_data(await api.client.post(commands_path(phy_id), json=body))
                       for phy_id, body in bodies]
            fetched = [ok_data(await api.client.get(f"{BASE}/commands/{a['command_id']}"))
                       for a in answers]

            assert answers == fetched
            assert [(phy_id, body["kind"], "queued", "plain") for phy_id, body in bodies] == [
                (a["device_phy_id"], a["kind"], a["status"], a["key_name"]) for a in answers]
            stored = {a["kind"]: a for a in answers if a["device_phy_id"] == AP1}
            record = await api.db.get_command(str(stored["set_params"]["command_id"]))
            assert record is not None
            # The row keeps what the client asked; the device's values fill it when sent.
            assert {"params": {"max_charge_duration_s": 7200}, "socket_no": 1} == json.loads(
                record.payload_json)


@pytest.mark.trio
async def test_the_params_route_takes_any_ap3000_set_command_and_partial_sets(
        tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path) as api:
            await add_device(api.db, AP1, protocol=ProtocolFamily.AP3000, ports=2)
            path = f"{BASE}/devices/{AP1}/params"
            limits = await api.client.post(path, json={"params": {
                "max_charge_duration_s": 36000, "overload_power_0p1w": 25000}})
            partial = await api.client.post(path, json={"params": {"float_percent": 30}})
            unknown = await api.client.post(path, json={"params": {"max_power_w": 1}})
            negative = await api.client.post(path, json={"params": {"mute": -1}})

            assert ("queued", "set_params") == (ok_data(limits)["status"],
                                                ok_data(limits)["kind"])
            assert "queued" == ok_data(partial)["status"]
            assert_error(unknown, 400, "invalid_argument", "params")
            assert_error(negative, 400, "invalid_argument", "params")
            assert "must be a whole number >= 0" in negative.json()["message"]


@pytest.mark.trio
async def test_an_unknown_device_is_404(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path) as api:
            response = await api.client.post(commands_path(GW1), json={"kind": "query_status"})
            assert_error(response, 404, "device_not_found")


@pytest.mark.trio
async def test_the_role_a_command_needs_depends_on_its_kind(tmp_path: Path) -> None:
    firmware = {"kind": "send_firmware", "image_base64": IMAGE}
    status = {"kind": "query_status"}
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path, ROLE_CONFIG) as api:
            await add_device(api.db, AP1, protocol=ProtocolFamily.AP3000, ports=2)

            async def post(key: str, body: dict[str, object]) -> httpx.Response:
                return await api.client.post(commands_path(AP1), json=body,
                                             headers={"X-Api-Key": key})

            operator_firmware = await post(OPERATOR_KEY, firmware)
            operator_upgrade = await post(OPERATOR_KEY, {
                "kind": "send_message", "protocol": "ap3000",
                "message": "trigger_self_upgrade", "fields": {}})
            operator_locate = await post(OPERATOR_KEY, {
                "kind": "send_message", "protocol": "ap3000", "message": "locate",
                "fields": {"duration_s": 5}})
            firmware_status = await post(FIRMWARE_KEY, status)
            reader_status = await post(READER_KEY, status)

            assert "queued" == ok_data(await post(OPERATOR_KEY, status))["status"]
            assert "queued" == ok_data(await post(FIRMWARE_KEY, firmware))["status"]
            assert {"required_role": "firmware", "roles": ["operate"]} == assert_error(
                operator_firmware, 403, "forbidden")
            assert {"required_role": "firmware", "roles": ["operate"]} == assert_error(
                operator_upgrade, 403, "forbidden")
            assert "queued" == ok_data(operator_locate)["status"]
            assert {"required_role": "operate", "roles": ["firmware"]} == assert_error(
                firmware_status, 403, "forbidden")
            assert {"required_role": "operate", "roles": ["read"]} == assert_error(
                reader_status, 403, "forbidden")


@pytest.mark.trio
async def test_commands_count_against_the_device_rate_limit(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path, replace(CONFIG, device_command_rate=2)) as api:
            await add_device(api.db)
            statuses = [(await api.client.post(commands_path(GW1),
                                               json={"kind": "query_status"})).status_code
                        for _ in range(10)]

            assert 200 in statuses
            assert 429 in statuses


def test_the_document_shows_one_body_per_kind() -> None:
    document: Any = openapi_document()
    operation = document["paths"][f"{BASE}/devices/{{phy_id}}/commands"]["post"]
    schemas = document["components"]["schemas"]
    options = operation["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    bodies = [schemas[option["$ref"].rsplit("/", 1)[1]] for option in options]

    assert ["query_status", "set_params", "query_params", "modify_charge", "start_ota",
            "send_firmware", "set_network_list", "send_message"] == [
        body["properties"]["kind"]["enum"][0] for body in bodies]
    assert all("kind" in body["required"] for body in bodies)
    assert {"params", "socket_no"} <= set(bodies[1]["properties"])
    assert "operate" == operation["x-required-role"]
    assert "firmware" in operation["description"]
    assert "/charge" in operation["description"]


# --- against devices over TCP ----------------------------------------------------------------

async def command(server: RunningServer, phy_id: str, body: dict[str, object]) -> str:
    response = await server.call("POST", f"/devices/{phy_id}/commands", body)
    assert 200 == response.status_code, response.text
    return str(response.json()["data"]["command_id"])


async def outcome(server: RunningServer, command_id: str) -> dict[str, Any]:
    """The command once it has ended."""
    while True:
        data: dict[str, Any] = (await server.call("GET", f"/commands/{command_id}")).json()[
            "data"]
        if data["status"] not in ("queued", "sent"):
            return data
        await trio.sleep(0.05)


@pytest.mark.trio
async def test_every_kind_reaches_the_simulated_devices(tmp_path: Path) -> None:
    specs = [bkv_gateway(BKV_ID), ap3000_unit(AP3000_ID, ports=2)]
    async with simulation(tmp_path, specs, speed=60, seconds=40, command_ttl=30,
                          device_command_rate=100) as (
            server, fleet):
        # A charge to modify (a port with none refuses: port_not_charging).
        unit = next(d for d in fleet if d.phy_id == AP3000_ID)
        await unit.port(1).plug_in(Charger())
        order = await server.charge(AP3000_ID, port_no=1, duration=3600)
        await server.wait_order(order["order_no"], "charging")
        sent = {
            "bkv query_status": await command(server, BKV_ID, {"kind": "query_status"}),
            "bkv set_params": await command(server, BKV_ID, {
                "kind": "set_params", "params": {"no_load_delay_s": 90}}),
            "bkv query_params": await command(server, BKV_ID, {"kind": "query_params"}),
            "bkv set_network_list": await command(server, BKV_ID, {
                "kind": "set_network_list", "sockets": [{"socket_no": 1,
                                                          "mac": "0123456789ab"}]}),
            "bkv start_ota": await command(server, BKV_ID, {
                "kind": "start_ota", "ftp_host": "10.0.0.1", "file_name": "fw.bin"}),
            "ap3000 query_status": await command(server, AP3000_ID, {"kind": "query_status"}),
            "ap3000 set_params": await command(server, AP3000_ID, {
                "kind": "set_params", "params": {"max_charge_duration_s": 7200,
                                                 "overload_power_0p1w": 25000}}),
            "ap3000 query_params": await command(server, AP3000_ID, {
                "kind": "query_params", "names": ["overload_power_0p1w"]}),
            "ap3000 modify_charge": await command(server, AP3000_ID, {
                "kind": "modify_charge", "port_no": 1, "duration_s": 600}),
            "ap3000 send_firmware": await command(server, AP3000_ID, {
                "kind": "send_firmware", "image_base64": IMAGE, "target": "slave"}),
            "ap3000 send_message": await command(server, AP3000_ID, {
                "kind": "send_message", "protocol": "ap3000", "message": "locate",
                "fields": {"duration_s": 5}}),
            "bkv send_message": await command(server, BKV_ID, {
                "kind": "send_message", "protocol": "bkv", "message": "voice_config",
                "fields": {"socket_no": 1, "port": 0, "buzzer_on": 0, "voice_on": 1,
                           "windows": [{"start": "08:00", "end": "20:00"}]}}),
        }
        outcomes = {name: await outcome(server, command_id)
                    for name, command_id in sent.items()}

        assert {name: "acked" for name in sent} == {
            name: o["status"] for name, o in outcomes.items()}, outcomes
        # The 0x85 set went out whole and the device reports what it took.
        assert {"max_charge_duration_s": 7200, "overload_power_0p1w": 25000} == (
            outcomes["ap3000 set_params"]["result"]["params"])
        limits = outcomes["ap3000 query_params"]["result"]["params"]
        assert (7200, 25000) == (limits["max_charge_duration_s"], limits["overload_power_0p1w"])
        assert 90 == outcomes["bkv query_params"]["result"]["params"]["no_load_delay_s"]
        # The device's answer to a raw message is the command's result.
        assert "locate_reply" == outcomes["ap3000 send_message"]["result"]["reply"]["message"]
        assert "voice_config_ack" == outcomes["bkv send_message"]["result"]["reply"]["message"]
        # The simulated unit obeys the new longest charge.
        assert 7200 == unit.settings.max_charge_time_s


@pytest.mark.trio
async def test_a_partial_ap3000_set_queries_first_then_merges_known_values(
        tmp_path: Path) -> None:
    async with simulation(tmp_path, [ap3000_unit(AP3000_ID, ports=2)], speed=60, seconds=30,
                          command_ttl=20) as (server, _):
        first = await outcome(server, await command(server, AP3000_ID, {
            "kind": "set_params", "params": {"max_charge_duration_s": 5400}}))
        queries = server.log.getvalue().count("partial parameter set waits")
        second = await outcome(server, await command(server, AP3000_ID, {
            "kind": "set_params", "params": {"overload_power_0p1w": 18000}}))
        read = await outcome(server, await command(server, AP3000_ID, {
            "kind": "query_params", "names": ["max_charge_duration_s"]}))

        assert ("acked", "acked") == (first["status"], second["status"]), (first, second)
        # Nothing known at first: the device was asked, its 2000 W overload kept.
        assert 1 == queries
        assert {"max_charge_duration_s": 5400, "overload_power_0p1w": 20000,
                "over_voltage_0p1v": 2700, "under_voltage_0p1v": 1000} == (
            first["result"]["params"])
        # Then known: merged without asking again.
        assert 1 == server.log.getvalue().count("partial parameter set waits")
        assert {"max_charge_duration_s": 5400, "overload_power_0p1w": 18000,
                "over_voltage_0p1v": 2700, "under_voltage_0p1v": 1000} == (
            second["result"]["params"])
        assert (5400, 18000) == (read["result"]["params"]["max_charge_duration_s"],
                                 read["result"]["params"]["overload_power_0p1w"])


@pytest.mark.trio
async def test_a_partial_set_uses_the_values_a_query_reported(tmp_path: Path) -> None:
    config = e2e_config(tmp_path / "iot.db", None, command_ttl=20)
    with trio.fail_after(20):
        async with server_running(config) as server, trio.open_nursery() as nursery:
            device = Device(ProtocolFamily.AP3000, AP3000_ID, ports=2)
            await device.connect(nursery, server.addresses.tcp_port)
            await server.wait_online(AP3000_ID)
            query_id = await command(server, AP3000_ID, {"kind": "query_params",
                                                         "names": ["float_percent"]})
            query = await device.expect(QueryParams)
            await device.send(ParamsReported(
                phy_id=AP3000_ID, command_id=query.command_id, params={
                    "unplug_power": 4, "unplug_detect_time_s": 11, "float_percent": 21,
                    "float_detect_time_s": 1700, "float_time_s": 3500,
                    "heartbeat_interval_s": 170}))
            assert "acked" == (await outcome(server, query_id))["status"]
            set_id = await command(server, AP3000_ID, {"kind": "set_params",
                                                       "params": {"float_percent": 30}})
            received = await device.expect(SetParams)
            await device.send(CommandAcknowledged(command_id=received.command_id,
                                                  phy_id=AP3000_ID))
            done = await outcome(server, set_id)
            await device.disconnect()
            nursery.cancel_scope.cancel()

        expected = {"unplug_power": 4, "unplug_detect_time_s": 11, "float_percent": 30,
                    "float_detect_time_s": 1700, "float_time_s": 3500,
                    "heartbeat_interval_s": 170}
        assert expected == dict(received.params)
        assert ("acked", expected) == (done["status"], done["result"]["params"])
        assert "partial parameter set waits" not in server.log.getvalue()


@pytest.mark.trio
async def test_a_partial_set_fails_when_its_query_is_not_answered(tmp_path: Path) -> None:
    config = e2e_config(tmp_path / "iot.db", None, command_ttl=3)
    with trio.fail_after(20):
        async with server_running(config) as server, trio.open_nursery() as nursery:
            device = Device(ProtocolFamily.AP3000, AP3000_ID, ports=2)
            await device.connect(nursery, server.addresses.tcp_port)
            await server.wait_online(AP3000_ID)
            set_id = await command(server, AP3000_ID, {"kind": "set_params",
                                                       "params": {"card_sector": 2}})
            query = await device.expect(QueryParams)  # and never answered
            done = await outcome(server, set_id)
            await device.disconnect()
            nursery.cancel_scope.cancel()

        assert "card_sector" in query.names
        assert "failed" == done["status"]
        assert "did not answer the parameter query" in done["reason"]
        assert "0x86" in done["reason"]
        assert not any(isinstance(item, SetParams) for item in device.inputs)


@pytest.mark.trio
async def test_a_48_bit_card_key_is_a_parameter_value(tmp_path: Path) -> None:
    card_params = {"card_sector": 1, "user_card_key": 0x159185191880,
                   "new_card_key": 0xFFFFFFFFFFFF}
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path) as api:
            await add_device(api.db, AP1, protocol=ProtocolFamily.AP3000, ports=2)
            through_params = await api.client.post(f"{BASE}/devices/{AP1}/params",
                                                   json={"params": card_params})
            through_commands = await api.client.post(commands_path(AP1), json={
                "kind": "set_params", "params": card_params})

            assert "queued" == ok_data(through_params)["status"]
            assert "queued" == ok_data(through_commands)["status"]


@pytest.mark.trio
async def test_a_partial_set_queued_offline_asks_once_the_device_is_back(
        tmp_path: Path) -> None:
    config = e2e_config(tmp_path / "iot.db", None, command_ttl=20)
    with trio.fail_after(20):
        async with server_running(config) as server, trio.open_nursery() as nursery:
            first = Device(ProtocolFamily.AP3000, AP3000_ID, ports=2)
            await first.connect(nursery, server.addresses.tcp_port)
            await server.wait_online(AP3000_ID)
            await first.disconnect()
            await server.wait_online(AP3000_ID, online=False)
            set_id = await command(server, AP3000_ID, {"kind": "set_params",
                                                       "params": {"unplug_power": 5}})
            device = Device(ProtocolFamily.AP3000, AP3000_ID, ports=2)
            await device.connect(nursery, server.addresses.tcp_port)
            query = await device.expect(QueryParams)
            await device.send(ParamsReported(
                phy_id=AP3000_ID, command_id=query.command_id, params={"float_percent": 25}))
            received = await device.expect(SetParams)
            await device.send(CommandAcknowledged(command_id=received.command_id,
                                                  phy_id=AP3000_ID))
            done = await outcome(server, set_id)
            await device.disconnect()
            nursery.cancel_scope.cancel()

        assert ("acked", 5, 25) == (done["status"], received.params["unplug_power"],
                                    received.params["float_percent"])
        assert 1 == server.log.getvalue().count("partial parameter set waits")
        assert not any(isinstance(item, QueryParams) for item in device.inputs)

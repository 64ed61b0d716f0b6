# Real frames, embedded so that an installed package can seed a fuzzing corpus.
#
# Provenance: every entry is a case of the protocol references' vector files
# (``shared/protocols/vectors/bkv.json`` and ``ap3000.json``, copied in
# ``tests/vectors/``), with the case's id and ``source`` (vendor documents, logs of
# real gateways and devices, and, for AP3000, cases constructed from the vendor's
# layouts, marked ``constructed``). ``kind`` is the section of the file: ``vectors``
# (valid frames), ``non_frame`` (AP3000 modem items) or ``malformed`` (the
# references' bad inputs). ``tests/test_corpus.py`` checks that this table and the
# vector files agree; regenerate it from them when they change.
from __future__ import annotations

from typing import NamedTuple

__all__ = ["KNOWN_FRAMES", "KnownFrame"]


class KnownFrame(NamedTuple):
    """One case of the vendors' test vectors."""

    protocol: str  # "bkv" or "ap3000"
    kind: str  # "vectors", "non_frame" or "malformed"
    id: str
    direction: str | None  # "up", "down", or None when the case states none
    hex: str
    source: str


KNOWN_FRAMES: tuple[KnownFrame, ...] = (
    KnownFrame('bkv', 'vectors', 'heartbeat-up-vendor', 'up',
               ('fcfe002e0000000000000182200520004869383938363034363331313230373033313934'
                '313763562e31723436001fcafcee'),
               'vendor guide basic §2.1.1'),
    KnownFrame('bkv', 'vectors', 'heartbeat-ack-vendor', 'down',
               'fcff0018000000000000008220052000486920200730164545a7fcee',
               'vendor guide basic §2.1.1'),
    KnownFrame('bkv', 'vectors', 'heartbeat-up-gw382-rssi17', 'up',
               ('fcfe002e0000000000000182241218000382383938363038353531303234443139383831'
                '39363230302e312e31371152fcee'),
               ('iot-server-cdz real-gateway log (repo file docs/协议/充电数据分析.tx'
                't @0d64a6d, 22:03:36)')),
    KnownFrame('bkv', 'vectors', 'heartbeat-ack-gw382-20251122220336', 'down',
               'fcff001800000000000000822412180003822025112222033640fcee',
               ('iot-server-cdz real-gateway log (repo file docs/协议/充电数据分析.tx'
                't @0d64a6d, 22:03:36)')),
    KnownFrame('bkv', 'vectors', 'heartbeat-ack-gw382-20251122220344', 'down',
               'fcff00180000000000000082241218000382202511222203444efcee',
               ('iot-server-cdz real-gateway log (repo file docs/协议/充电数据分析.tx'
                't @0d64a6d, 22:03:44)')),
    KnownFrame('bkv', 'vectors', 'heartbeat-ack-gw382-20251122222740', 'down',
               'fcff00180000000000000082241218000382202511222227406efcee',
               ('iot-server-cdz real-gateway log (repo file docs/协议/充电数据分析.tx'
                't @0d64a6d, 22:27:40)')),
    KnownFrame('bkv', 'vectors', 'heartbeat-ack-gw382-20251124112328', 'down',
               'fcff001800000000000000822412180003822025112411232843fcee',
               ('iot-server-cdz real-gateway log (repo file tests/protocol/协议'
                '执行数据.txt @86d0f0e, 11:23:28)')),
    KnownFrame('bkv', 'vectors', 'status-report-vendor', 'up',
               ('fcfe0091100000000000018223121400270004010110170a010200000000000000000901'
                '038223121400270065019403014a0104013effff030107250301961e28015b0301080003'
                '01098004010a000004019508e304010b000004010c000104010d000004010e000028015b'
                '030108010301098004010a000004019508e304010b000004010c000104010d000004010e'
                '000030fcee'),
               'vendor guide basic §2.2.3'),
    KnownFrame('bkv', 'vectors', 'status-report-ack-vendor', 'down',
               ('fcff002f100000000000008223121400270004010110170a010200000000000000000901'
                '038223121400270003010f017efcee'),
               'vendor guide basic §2.2.3'),
    KnownFrame('bkv', 'vectors', 'status-report-gw382-idle-a', 'up',
               ('fcfe0091100000000000018224121800038204010110170a010200000000000000000901'
                '038224121800038265019403014a0104013effff0301071d0301961e28015b0301080003'
                '01098004010a000004019508f904010b000204010c000204010d000004010e000028015b'
                '030108010301098004010a000004019508f904010b000104010c000104010d000004010e'
                '00001efcee'),
               ('iot-server-cdz real-gateway log (repo file docs/协议/充电数据分析.tx'
                't @0d64a6d, 22:03:40)')),
    KnownFrame('bkv', 'vectors', 'status-report-gw382-idle-b', 'up',
               ('fcfe0091100000000000018224121800038204010110170a010200000000000000000901'
                '038224121800038265019403014a0104013effff0301071d0301961e28015b0301080003'
                '01098004010a000004019508f704010b000104010c000204010d000004010e000028015b'
                '030108010301098004010a000004019508f704010b000104010c000104010d000004010e'
                '000019fcee'),
               ('iot-server-cdz real-gateway log (repo file docs/协议/充电数据分析.tx'
                't @0d64a6d, 22:03:40)')),
    KnownFrame('bkv', 'vectors', 'status-report-gw382-after-end', 'up',
               ('fcfe0091100000000000018224121800038204010110170a010200000000000000000901'
                '038224121800038265019403014a0104013effff0301071d0301961e28015b0301080003'
                '01098004010a000004019508f904010b001104010c003804010d000004010e000028015b'
                '030108010301098004010a000004019508f904010b000104010c000104010d000004010e'
                '000063fcee'),
               ('iot-server-cdz real-gateway log (repo file docs/协议/充电数据分析.tx'
                't @0d64a6d, 22:04:41)')),
    KnownFrame('bkv', 'vectors', 'status-report-ack-gw382', 'down',
               ('fcff002f100000000000008224121800038204010110170a010200000000000000000901'
                '038224121800038203010f0144fcee'),
               ('iot-server-cdz real-gateway log (repo file docs/协议/充电数据分析.tx'
                't @0d64a6d, 22:03:40)')),
    KnownFrame('bkv', 'vectors', 'status-query-vendor', 'down',
               'fcff00150015001c91ee008600445945300500011d0181fcee',
               'vendor guide basic §2.2.4'),
    KnownFrame('bkv', 'vectors', 'socket-status-reply-vendor', 'up',
               ('fcfe00350015001c91ee018600445945300500211c01513629150080000008ef00000001'
                '000000000180000008ef000000010000000077fcee'),
               'vendor guide basic §2.2.4'),
    KnownFrame('bkv', 'vectors', 'network-refresh-vendor', 'down',
               ('fcff00310005001c94f90086004459453005001d08040145003070024702450030700743'
                '033500307012470425910240232075fcee'),
               'vendor guide basic §2.2.5'),
    KnownFrame('bkv', 'vectors', 'network-refresh-ack-vendor', 'up',
               'fcfe00150005001c94f90186004459453005000108016bfcee',
               'vendor guide basic §2.2.5'),
    KnownFrame('bkv', 'vectors', 'network-refresh-ack-gw382', 'up',
               'fcfe001500056921c2b80182241218000382000108017efcee',
               ('iot-server-cdz real-gateway log (repo file docs/协议/充电数据分析.tx'
                't @0d64a6d, 22:03:40)')),
    KnownFrame('bkv', 'vectors', 'network-add-vendor', 'down',
               'fcff001b0005001c979c0086004459453005000709033500307012474dfcee',
               'vendor guide basic §2.2.6'),
    KnownFrame('bkv', 'vectors', 'charge-control-vendor-fixed', 'down',
               'fcff001c0015001c9a5100860044594530050008070200010100f00000d8fcee',
               ('iot-server-cdz test fixture (internal/protocol/bkv/complete_'
                'examples_test.go @b3be41e), checksum-corrected copy of vendo'
                'r guide basic §2.2.8')),
    KnownFrame('bkv', 'vectors', 'charge-control-ack-vendor', 'up',
               'fcfe00190015001c9c2b0186004459453005000507010200006826fcee',
               'vendor guide basic §2.2.8'),
    KnownFrame('bkv', 'vectors', 'charge-control-gw382-1min', 'down',
               'fcff001c00156921c2bc00822412180003820008070100010100010001a2fcee',
               ('iot-server-cdz real-gateway log (repo file docs/协议/充电数据分析.tx'
                't @0d64a6d, 22:03:40)')),
    KnownFrame('bkv', 'vectors', 'charge-end-vendor', 'up',
               ('fcfe00250015000000000186004459453005001102025036302000980068000000010050'
                '002d41fcee'),
               'vendor guide basic §2.2.9'),
    KnownFrame('bkv', 'vectors', 'charge-end-gw382-biz15-a', 'up',
               ('fcfe0025001500000000018224121800038200110201ffff1d1e00b0000f000100020000'
                '0001a0fcee'),
               ('iot-server-cdz real-gateway log (repo file tests/protocol/协议'
                '执行数据.txt @86d0f0e, 11:23:28)')),
    KnownFrame('bkv', 'vectors', 'charge-end-gw382-biz15-b', 'up',
               ('fcfe0025001500000000018224121800038200110201ffff1d1e00b0000f000000020000'
                '00019ffcee'),
               ('iot-server-cdz real-gateway log (repo file tests/protocol/协议'
                '执行数据.txt @86d0f0e, 11:24:58)')),
    KnownFrame('bkv', 'vectors', 'charge-end-ack-gw382', 'down',
               'fcff0016001500000000008224121800038200020c010190fcee',
               ('iot-server-cdz real-gateway log (repo file docs/协议/充电数据分析.tx'
                't @0d64a6d, 22:04:40)')),
    KnownFrame('bkv', 'vectors', 'power-control-vendor', 'down',
               ('fcff0038000500282bda008600445945300500241701000100640507d00019003c0fa000'
                '32003c17700064003c1f400096003c4e2001f4007829fcee'),
               'vendor guide advanced §2.2.1'),
    KnownFrame('bkv', 'vectors', 'fee-control-vendor-fixed', 'down',
               ('fcff00591000215445a5008221022500052004010110070a010200000000215445a50901'
                '038221022500052003014a01030108000301130103011204030147010301f40204018800'
                '640301800103018901080183173b0032003255fcee'),
               ('iot-server-cdz test fixture (internal/protocol/bkv/complete_'
                'examples_test.go @b3be41e), length-corrected copy of vendor '
                'guide advanced §2.2.2 (electricity + service fee)')),
    KnownFrame('bkv', 'vectors', 'fee-charge-end-vendor', 'up',
               ('fcfe007d100000000000018221022500052004010110040a010200000000000000000901'
                '03822102250005200301072a03014a01030108000301099804010a003304010b00000401'
                '0c000004010d000004010e000109012e2024082310172903012f08030112040401850000'
                '040186000003018901080184000100000000dbfcee'),
               'vendor guide advanced §2.2.2 (electricity + service fee)'),
    KnownFrame('bkv', 'vectors', 'card-swipe-vendor', 'up',
               ('fcfe00330015000000000186004459453005001f0b0100001a9000000000000200000000'
                '00000000000000000000000000000000bdfcee'),
               'vendor guide advanced §2.2.3 step 1'),
    KnownFrame('bkv', 'vectors', 'card-order-time-vendor', 'down',
               'fcff001e00150028373f0086004459453005000a0b0100001a0101bb800000dbfcee',
               'vendor guide advanced §2.2.3 step 2-I'),
    KnownFrame('bkv', 'vectors', 'card-order-ack-vendor', 'up',
               'fcfe001700150028373f018600445945300500030f0100017cfcee',
               'vendor guide advanced §2.2.3 step 3'),
    KnownFrame('bkv', 'vectors', 'card-charge-end-time-vendor', 'up',
               ('fcfe00320015000000000186004459453005001e0c0151362d200098001a000000020002'
                '001f00000000000200010000000000bcfcee'),
               'vendor guide advanced §2.2.3 step 4-I'),
    KnownFrame('bkv', 'vectors', 'charge-end-ack-vendor', 'down',
               'fcff0016001500000000008600445945300500020c0101d8fcee',
               'vendor guide advanced §2.2.3 step 5'),
    KnownFrame('bkv', 'vectors', 'card-balance-query-vendor', 'up',
               'fcfe001c001500000000018222042000055200081a020000000029835273fcee',
               'vendor guide advanced §2.2.4'),
    KnownFrame('bkv', 'vectors', 'param-set-vendor', 'down',
               ('fcff005110001f6f78c3008222042000055204010110110a0102000000001f6f78c30901'
                '038222042000055203014a020401211c2004012200780401230064040124000803012555'
                '0401111b5804015902583ffcee'),
               'vendor guide advanced §2.2.6'),
    KnownFrame('bkv', 'vectors', 'param-query-vendor', 'down',
               ('fcff002f10001f6ac867008222042000055204010110120a0102000000001f6ac8670901'
                '038222042000055203014a027ffcee'),
               'vendor guide advanced §2.2.7'),
    KnownFrame('bkv', 'vectors', 'bkv-1013-gw382-a', 'up',
               ('fcfe0042100000000000018224121800038204010110130a010200000000000000000901'
                '038224121800038203014a010301087f0901062025112411232504015a31119efcee'),
               ('iot-server-cdz real-gateway log (repo file tests/protocol/协议'
                '执行数据.txt @86d0f0e, 11:23:28)')),
    KnownFrame('bkv', 'vectors', 'bkv-1013-gw382-b', 'up',
               ('fcfe0042100000000000018224121800038204010110130a010200000000000000000901'
                '038224121800038203014a010301087f0901062025112411241004015a31128bfcee'),
               ('iot-server-cdz real-gateway log (repo file tests/protocol/协议'
                '执行数据.txt @86d0f0e, 11:24:13)')),
    KnownFrame('bkv', 'malformed', 'bad-checksum-vendor-0x07', None,
               'fcff001c0015001c9a5100860044594530050008070200010100f00000c8fcee',
               'vendor guide basic §2.2.8 (as printed)'),
    KnownFrame('bkv', 'malformed', 'bad-checksum-fixture-0x07-ack', None,
               'fcfe00190015001c9c2b0186004459453005000507010200016826fcee',
               'iot-server-cdz test data (edited copy of vendor guide basic §2.2.8 reply)'),
    KnownFrame('bkv', 'malformed', 'truncated-heartbeat', None,
               'fcfe002e0000000000000182200520004869383938363034363331313230',
               'first 30 bytes of vendor guide basic §2.1.1 heartbeat'),
    KnownFrame('bkv', 'malformed', 'wrong-trailer', None,
               'fcff0018000000000000008220052000486920200730164545a7fcef',
               'edited vendor guide basic §2.1.1 heartbeat reply'),
    KnownFrame('bkv', 'malformed', 'length-too-long-vendor-0x1007', None,
               ('fcff00631000215445a5008221022500052004010110070a010200000000215445a50901'
                '038221022500052003014a01030108000301130103011204030147010301f40204018800'
                '640301800103018901080183173b003200325ffcee'),
               'vendor guide advanced §2.2.2 fee-mode control (as printed)'),
    KnownFrame('bkv', 'malformed', 'length-too-short', None,
               'fcfe00130005001c979c01860044594530050001090110fcee',
               'edited vendor guide basic §2.2.6 device reply'),
    KnownFrame('bkv', 'malformed', 'garbage-then-frame', None,
               '55aafc0001fcff0018000000000000008220052000486920200730164545a7fcee',
               '5 junk bytes + vendor guide basic §2.1.1 heartbeat reply'),
    KnownFrame('bkv', 'malformed', 'two-frames', None,
               ('fcfe002e0000000000000182200520004869383938363034363331313230373033313934'
                '313763562e31723436001fcafceefcff0018000000000000008220052000486920200730'
                '164545a7fcee'),
               'vendor guide basic §2.1.1 heartbeat + reply back to back'),
    KnownFrame('bkv', 'malformed', 'bad-magic', None,
               'fcfd0018000000000000008220052000486920200730164545a7fcee',
               'edited vendor guide basic §2.1.1 heartbeat reply'),
    KnownFrame('bkv', 'malformed', 'bkv-item-overrun', None,
               ('fcff002f100000000000008223121400270004010110170a010200000000000000000901'
                '038223121400270005010f0180fcee'),
               'edited vendor guide basic §2.2.3 server reply'),
    KnownFrame('ap3000', 'vectors', 'doc-20-up-register', 'up',
               '444e5913003b37ab04b900207e00021421000000e4009104',
               ("vendor_doc: vendor doc 'AP3000 设备与服务器通信协议 V8.6' as mirrored "
                'in taoyao-code/iot-zinx docs/协议/AP3000-设备与服务器通信协议.md §3.0.2 '
                'example')),
    KnownFrame('ap3000', 'vectors', 'doc-20-down-register-reply', 'down',
               '444e590a003b37ab04b9002000ef02',
               ("vendor_doc: vendor doc 'AP3000 设备与服务器通信协议 V8.6' as mirrored "
                'in taoyao-code/iot-zinx docs/协议/AP3000-设备与服务器通信协议.md §3.0.2 '
                'example')),
    KnownFrame('ap3000', 'vectors', 'doc-22-up-time-request', 'up',
               '444e5909003b37ab04b90022f002',
               ("vendor_doc: vendor doc 'AP3000 设备与服务器通信协议 V8.6' as mirrored "
                'in taoyao-code/iot-zinx docs/协议/AP3000-设备与服务器通信协议.md §3.0.3 '
                'example')),
    KnownFrame('ap3000', 'vectors', 'doc-22-down-time-reply', 'down',
               '444e590d003b37ab04b90022090ea95f1304',
               ("vendor_doc: vendor doc 'AP3000 设备与服务器通信协议 V8.6' as mirrored "
                'in taoyao-code/iot-zinx docs/协议/AP3000-设备与服务器通信协议.md §3.0.3 '
                'example')),
    KnownFrame('ap3000', 'vectors', 'doc-21-up-heartbeat', 'up',
               '444e5910003b37ab0401002198080200000905ee02',
               ("vendor_doc: vendor doc 'AP3000 设备与服务器通信协议 V8.6' as mirrored "
                'in taoyao-code/iot-zinx docs/协议/AP3000-设备与服务器通信协议.md §3.1 ex'
                'ample')),
    KnownFrame('ap3000', 'vectors', 'doc-21-down-heartbeat-reply', 'down',
               '444e590a003b37ab04010021003802',
               ("vendor_doc: vendor doc 'AP3000 设备与服务器通信协议 V8.6' as mirrored "
                'in taoyao-code/iot-zinx docs/协议/AP3000-设备与服务器通信协议.md §3.1 ex'
                'ample')),
    KnownFrame('ap3000', 'vectors', 'doc-02-up-card-swipe', 'up',
               '444e5911003b37ab040100027a8d05dd000100000a04',
               ("vendor_doc: vendor doc 'AP3000 设备与服务器通信协议 V8.6' as mirrored "
                'in taoyao-code/iot-zinx docs/协议/AP3000-设备与服务器通信协议.md §3.2 ex'
                'ample')),
    KnownFrame('ap3000', 'vectors', 'doc-02-down-card-swipe-reply', 'down',
               '444e5914003b37ab040100027a8d05dd000010270000014404',
               ("vendor_doc: vendor doc 'AP3000 设备与服务器通信协议 V8.6' as mirrored "
                'in taoyao-code/iot-zinx docs/协议/AP3000-设备与服务器通信协议.md §3.2 ex'
                'ample')),
    KnownFrame('ap3000', 'vectors', 'doc-03-up-settlement', 'up',
               ('444e5928003b37ab04010003100ee8033000010100000000012019090118000013003038'
                '0102030405e8034405'),
               ("vendor_doc: vendor doc 'AP3000 设备与服务器通信协议 V8.6' as mirrored "
                'in taoyao-code/iot-zinx docs/协议/AP3000-设备与服务器通信协议.md §3.3 ex'
                'ample')),
    KnownFrame('ap3000', 'vectors', 'doc-03-down-settlement-reply', 'down',
               '444e590a003b37ab04010003001a02',
               ("vendor_doc: vendor doc 'AP3000 设备与服务器通信协议 V8.6' as mirrored "
                'in taoyao-code/iot-zinx docs/协议/AP3000-设备与服务器通信协议.md §3.3 ex'
                'ample')),
    KnownFrame('ap3000', 'vectors', 'doc-06-up-power-heartbeat', 'up',
               ('444e5932003b37ab040a00060101100e300001e803b0042003e803201909011800001300'
                '303801020304050100e8039808c7015500da08'),
               ("vendor_doc: vendor doc 'AP3000 设备与服务器通信协议 V8.6' as mirrored "
                'in taoyao-code/iot-zinx docs/协议/AP3000-设备与服务器通信协议.md §3.4.2 '
                'example')),
    KnownFrame('ap3000', 'vectors', 'doc-81-down-query-status', 'down',
               '444e5909003b37ab040100819702',
               ("vendor_doc: vendor doc 'AP3000 设备与服务器通信协议 V8.6' as mirrored "
                'in taoyao-code/iot-zinx docs/协议/AP3000-设备与服务器通信协议.md §4.1 ex'
                'ample')),
    KnownFrame('ap3000', 'vectors', 'doc-82-down-charge-control', 'down',
               ('444e5926003b37ab04020082006401000001010000123456781234567812345678123456'
                '7880708813f808'),
               ("vendor_doc: vendor doc 'AP3000 设备与服务器通信协议 V8.6' as mirrored "
                'in taoyao-code/iot-zinx docs/协议/AP3000-设备与服务器通信协议.md §4.2 ex'
                'ample')),
    KnownFrame('ap3000', 'vectors', 'doc-82-up-charge-control-reply', 'up',
               '444e591d003b37ab040200820012345678123456781234567812345678010000fe06',
               ("vendor_doc: vendor doc 'AP3000 设备与服务器通信协议 V8.6' as mirrored "
                'in taoyao-code/iot-zinx docs/协议/AP3000-设备与服务器通信协议.md §4.2 ex'
                'ample')),
    KnownFrame('ap3000', 'vectors', 'doc-8A-down-modify-charge', 'down',
               '444e590d003b37ab0402008a000180709603',
               ("vendor_doc: vendor doc 'AP3000 设备与服务器通信协议 V8.6' as mirrored "
                'in taoyao-code/iot-zinx docs/协议/AP3000-设备与服务器通信协议.md §4.2.1 '
                'example')),
    KnownFrame('ap3000', 'vectors', 'doc-85-down-set-limits', 'down',
               '444e590d003b37ab04020085a08c204e3a04',
               ("vendor_doc: vendor doc 'AP3000 设备与服务器通信协议 V8.6' as mirrored "
                'in taoyao-code/iot-zinx docs/协议/AP3000-设备与服务器通信协议.md §4.4.1 '
                'example')),
    KnownFrame('ap3000', 'vectors', 'doc-86-down-set-card-params', 'down',
               '444e5916003b37ab0402008600159185191880ffffffffffff800a',
               ("vendor_doc: vendor doc 'AP3000 设备与服务器通信协议 V8.6' as mirrored "
                'in taoyao-code/iot-zinx docs/协议/AP3000-设备与服务器通信协议.md §4.4.2 '
                'example')),
    KnownFrame('ap3000', 'vectors', 'doc-87-down-reboot', 'down',
               '444e5909003b37ab040100879d02',
               ("vendor_doc: vendor doc 'AP3000 设备与服务器通信协议 V8.6' as mirrored "
                'in taoyao-code/iot-zinx docs/协议/AP3000-设备与服务器通信协议.md §4.4.3 '
                'example')),
    KnownFrame('ap3000', 'vectors', 'doc-87-up-reboot-reply', 'up',
               '444e590a003b37ab04010087009e02',
               ("vendor_doc: vendor doc 'AP3000 设备与服务器通信协议 V8.6' as mirrored "
                'in taoyao-code/iot-zinx docs/协议/AP3000-设备与服务器通信协议.md §4.4.3 '
                'example')),
    KnownFrame('ap3000', 'vectors', 'doc-8D-down-set-work-mode', 'down',
               '444e590a003b37ab0401008d00a402',
               ("vendor_doc: vendor doc 'AP3000 设备与服务器通信协议 V8.6' as mirrored "
                'in taoyao-code/iot-zinx docs/协议/AP3000-设备与服务器通信协议.md §4.4.6 '
                'example')),
    KnownFrame('ap3000', 'vectors', 'doc-E4-down-trigger-self-upgrade', 'down',
               '444e5909003b37ab040100e4fa02',
               ("vendor_doc: vendor doc 'AP3000 设备与服务器通信协议 V8.6' as mirrored "
                'in taoyao-code/iot-zinx docs/协议/AP3000-设备与服务器通信协议.md §4.9.b '
                'example')),
    KnownFrame('ap3000', 'vectors', 'hostdoc-12-up-host-time-request', 'up',
               '444e5909008426d6090500129402',
               ("vendor_doc: vendor doc '主机-服务器通信协议 V2.9' as mirrored in taoy"
                'ao-code/iot-zinx docs/协议/主机-服务器通信协议.md §4.2 example')),
    KnownFrame('ap3000', 'vectors', 'hostdoc-12-down-host-time-reply', 'down',
               '444e590d008426d609050012de5ca95fda04',
               ("vendor_doc: vendor doc '主机-服务器通信协议 V2.9' as mirrored in taoy"
                'ao-code/iot-zinx docs/协议/主机-服务器通信协议.md §4.2 example')),
    KnownFrame('ap3000', 'vectors', 'hostdoc-34-down-host-set-server', 'down',
               ('444e593b007008be76000034b822030162616964752e636f6d0000000000000000000000'
                '00000000000000000000000000000000000000000000000000005607'),
               ("vendor_doc: vendor doc '主机-服务器通信协议 V2.9' as mirrored in taoy"
                'ao-code/iot-zinx docs/协议/主机-服务器通信协议.md §6.4 example')),
    KnownFrame('ap3000', 'vectors', 'cap-22-up-time-request-04A228CD', 'up',
               '444e590900cd28a2043b0222ee02',
               'device_capture: taoyao-code/iot-zinx README.md log excerpt ("read buffer ...")'),
    KnownFrame('ap3000', 'vectors', 'con-00-up-host-poll', 'up',
               '444e590a000000000001000005fb00',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-02-up-card-swipe-ext', 'up',
               ('444e59260040aace04020102000000000400000070aa1467104131323334353637383930'
                '3132333435c807'),
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-02-down-card-swipe-reply-monthly', 'down',
               '444e59140040aace040201020000000007010015746700b803',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-03-up-settlement-full', 'up',
               ('444e592e0040aace04000203b0040d07250000007a8d05dd05202410201400357a8d05dd'
                '1354400030fe06e3a514670000390c'),
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-04-up-order-confirm', 'up',
               ('444e59210040aace04000304010100000000230012345678123456781234567812345678'
                '4407'),
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-04-down-order-confirm-reply', 'down',
               '444e590b0040aace040003040100ba02',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-05-up-upgrade-request', 'up',
               '444e59100040aace0401030521cd0001000000af03',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-06-up-power-heartbeat-full', 'up',
               ('444e59380040aace04010406000158021900019d3a5046d039a23a544844313732393430'
                '37363030303031c01250469d08901a6400ebac14670000530f'),
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-17-up-host-status-report', 'up',
               ('444e5920008426d609120017011eb708e20440e201000000000000000000031c1b0000de'
                '05'),
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-20-up-register-10port', 'up',
               '444e5911004e61bc05010020c9000a00290a6700fa03',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-21-up-heartbeat-10port', 'up',
               '444e5918004e61bc05020021bc080a000102030500080d0100005ce103',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-21-down-heartbeat-reply-16port', 'down',
               '444e590a00a1860106000121004502',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-35-up-slave-versions', 'up',
               '444e591a008426d609200035022100cd0040aace042900c9004e61bc05f107',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-41-up-cabinet-heartbeat', 'up',
               '444e59120040420f070500410c0400000001000000ec01',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-42-up-alarm-power-cut', 'up',
               '444e590c004e61bc05060042010000b002',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-43-up-charge-complete-notice', 'up',
               ('444e59260040420f07080043201c34088200020100000000011234567812345678123456'
                '78123456784207'),
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-44-up-port-push', 'up',
               '444e591b0040420f070900440102123456781234567812345678123456783e06',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-72-down-cabinet-stop', 'down',
               '444e591a0040420f0701107202123456781234567812345678123456787206',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-72-up-cabinet-stop-reply', 'up',
               '444e591a0040420f0701107200123456781234567812345678123456787006',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-82-down-start-energy-ff-full', 'down',
               ('444e592f0040aace0402108202e8030000ff01f401544844313732393430373630303030'
                '3100000000000000000200000000c309'),
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-82-down-stop', 'down',
               ('444e59220040aace04031082000000000000000000544844313732393430373630303030'
                '31d306'),
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-82-up-reply-multiple-pending', 'up',
               '444e591d0040aace040210820554484431373239343037363030303031ff0300d407',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-83-down-set-params-1-1', 'down',
               '444e59140040aace0405108303000a00140807100eb4005504',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-83-up-set-params-1-1-reply', 'up',
               '444e590a0040aace04051083014a03',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-84-down-set-params-1-2', 'down',
               ('444e59200040aace0406108420031e0008070a2c01302a2c012c0108072c015050000179'
                '05'),
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-85-down-set-limits-ext', 'down',
               '444e5911004e61bc05071085a08c204e8c0ae8032306',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-89-down-play-voice', 'down',
               '444e590d0040aace0408108901020a0b6d03',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-8A-down-modify-energy', 'down',
               '444e590d0040aace0409108a02002c018603',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-8A-up-modify-reply-less-than-current', 'up',
               '444e590a0040aace0409108a025603',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-8B-down-read-eeprom', 'down',
               '444e590c0040aace040a108b400008a003',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-8B-up-read-eeprom-reply', 'up',
               '444e59120040aace040a108b0001020304050607088203',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-8C-down-write-eeprom', 'down',
               '444e59100040aace040b108c400004a1b2c3d48c06',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-8E-down-set-qr-code', 'down',
               ('444e59550040aace040c108e01000000687474703a2f2f62616964752e636f6d00000000'
                '000000000000000000000000000000000000000000000000000000000000000000000000'
                '000000000000000000000000000000007109'),
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-8F-down-set-tc-card-mode', 'down',
               '444e590a0040aace040d108f046103',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-8F-up-set-tc-card-mode-reply', 'up',
               '444e590a0040aace040d108f005d03',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-90-down-query-params-1-1', 'down',
               '444e59090040aace040e10905e03',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-90-up-query-params-1-1-reply', 'up',
               '444e59140040aace040e109003000a00140807100eb4006b04',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-91-down-query-params-1-2', 'down',
               '444e59090040aace040f10916003',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-92-down-query-limits', 'down',
               '444e59090040aace041010926203',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-92-up-query-limits-reply', 'up',
               '444e59110040aace04101092a08c204e8c0ae8038506',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-93-up-query-card-params-reply', 'up',
               '444e59160040aace0411109300159185191880ffffffffffff470b',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-95-down-temp-qr-code', 'down',
               ('444e59d10040aace0412109568747470733a2f2f6578616d706c652e636f6d2f7061793f'
                '6f3d54484431373239343037363030303031000000000000000000000000000000000000'
                '000000000000000000000000000000000000000000000000000000000000000000000000'
                '000000000000000000000000000000000000000000000000000000000000000000000000'
                '000000000000000000000000000000000000000000000000000000000000000000000000'
                '00000000000000000000000000000000000000000000000000000000000000002c11'),
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-97-down-set-params-1-3', 'down',
               '444e590a0040aace04131097016c03',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-97-up-set-params-1-3-reply', 'up',
               '444e590a0040aace04131097006b03',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-98-down-multi-function', 'down',
               '444e590b0040420f0714109800024c02',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-34-up-host-set-server-reply', 'up',
               '444e590a008426d60915103400d702',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-E0-down-firmware-packet-1', 'down',
               ('444e59d50040aace040020e005000100030a11181f262d343b424950575e656c737a8188'
                '8f969da4abb2b9c0c7ced5dce3eaf1f8ff060d141b222930373e454c535a61686f767d84'
                '8b9299a0a7aeb5bcc3cad1d8dfe6edf4fb020910171e252c333a41484f565d646b727980'
                '878e959ca3aab1b8bfc6cdd4dbe2e9f0f7fe050c131a21282f363d444b525960676e757c'
                '838a91989fa6adb4bbc2c9d0d7dee5ecf3fa01080f161d242b323940474e555c636a7178'
                '7f868d949ba2a9b0b7bec5ccd3dae1e8eff6fd040b121920272e353c434a51585f666d74'
                'fe63'),
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-E0-up-firmware-packet-1-reply', 'up',
               '444e590c0040aace040020e0000100b403',
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-E0-down-firmware-packet-4-last', 'down',
               ('444e59d50040aace040320e0050004006b727980878e959ca3aab1b8bfc6cdd4dbe2e9f0'
                'f7fe050c131a21282f363d444b525960676e757c00000000000000000000000000000000'
                '000000000000000000000000000000000000000000000000000000000000000000000000'
                '000000000000000000000000000000000000000000000000000000000000000000000000'
                '000000000000000000000000000000000000000000000000000000000000000000000000'
                '000000000000000000000000000000000000000000000000000000000000000000000000'
                '9418'),
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-E1-down-power-board-packet', 'down',
               ('444e59d50040aace040021e105000100030a11181f262d343b424950575e656c737a8188'
                '8f969da4abb2b9c0c7ced5dce3eaf1f8ff060d141b222930373e454c535a61686f767d84'
                '8b9299a0a7aeb5bcc3cad1d8dfe6edf4fb020910171e252c333a41484f565d646b727980'
                '878e959ca3aab1b8bfc6cdd4dbe2e9f0f7fe050c131a21282f363d444b525960676e757c'
                '838a91989fa6adb4bbc2c9d0d7dee5ecf3fa01080f161d242b323940474e555c636a7178'
                '7f868d949ba2a9b0b7bec5ccd3dae1e8eff6fd040b121920272e353c434a51585f666d74'
                '0064'),
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-E2-down-host-packet', 'down',
               ('444e59d5008426d6090022e2050002007b828990979ea5acb3bac1c8cfd6dde4ebf2f900'
                '070e151c232a31383f464d545b626970777e858c939aa1a8afb6bdc4cbd2d9e0e7eef5fc'
                '030a11181f262d343b424950575e656c737a81888f969da4abb2b9c0c7ced5dce3eaf1f8'
                'ff060d141b222930373e454c535a61686f767d848b9299a0a7aeb5bcc3cad1d8dfe6edf4'
                'fb020910171e252c333a41484f565d646b727980878e959ca3aab1b8bfc6cdd4dbe2e9f0'
                'f7fe050c131a21282f363d444b525960676e757c838a91989fa6adb4bbc2c9d0d7dee5ec'
                '906b'),
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-F8-down-legacy-firmware-packet', 'down',
               ('444e590d0140aace040030f803000100010e1b2835424f5c697683909daab7c4d1deebf8'
                '05121f2c394653606d7a8794a1aebbc8d5e2effc091623303d4a5764717e8b98a5b2bfcc'
                'd9e6f3000d1a2734414e5b6875828f9ca9b6c3d0ddeaf704111e2b3845525f6c798693a0'
                'adbac7d4e1eefb0815222f3c495663707d8a97a4b1becbd8e5f2ff0c192633404d5a6774'
                '818e9ba8b5c2cfdce9f603101d2a3744515e6b7885929facb9c6d3e0edfa0714212e3b48'
                '55626f7c8996a3b0bdcad7e4f1fe0b1825323f4c596673808d9aa7b4c1cedbe8f5020f1c'
                '293643505d6a7784919eabb8c5d2dfecf90613202d3a4754616e7b8895a2afbcc9d6e3f0'
                'fd0a1724313e4b5865727f8c99a6b3c0cddae7f46183'),
               'constructed: constructed'),
    KnownFrame('ap3000', 'vectors', 'con-F8-up-legacy-firmware-reply-resend', 'up',
               '444e590c0040aace040030f8010000dc03',
               'constructed: constructed'),
    KnownFrame('ap3000', 'non_frame', 'nf-iccid-real', None,
               '3839383630344439313632333930343838323937',
               ('taoyao-code/iot-zinx tests: ICCID sent by the modem right af'
                'ter connecting (same value as inside cap-11-up-host-heartbea'
                't-04A26CF3)')),
    KnownFrame('ap3000', 'non_frame', 'nf-iccid-hostdoc', None,
               '3839383630343133313631383932303039323735',
               ("vendor doc '主机-服务器通信协议 V2.9' as mirrored in taoyao-code/iot-"
                'zinx docs/协议/主机-服务器通信协议.md §4')),
    KnownFrame('ap3000', 'non_frame', 'nf-link', None,
               '6c696e6b',
               ("vendor doc 'AP3000 设备与服务器通信协议 V8.6' as mirrored in taoyao-co"
                'de/iot-zinx docs/协议/AP3000-设备与服务器通信协议.md §1.04')),
    KnownFrame('ap3000', 'malformed', 'mal-01-checksum-wrong-real', None,
               '444e590a00f36ca204a0c096010604',
               ('taoyao-code/iot-zinx docs/协议/protocol_parsing_standard.md (h'
                'istory): frame with the checksum an earlier iot-zinx build p'
                'roduced')),
    KnownFrame('ap3000', 'malformed', 'mal-02-checksum-byte-swapped', None,
               '444e591d003b37ab04020082001234567812345678123456781234567801000006fe',
               ('taoyao-code/iot-zinx charge_control_handler_test.go: vendor '
                '0x82 reply example with the two checksum bytes swapped')),
    KnownFrame('ap3000', 'malformed', 'mal-03-truncated-real', None,
               '444e590d00cd28a20479082263ee5c68',
               ('taoyao-code/iot-zinx dny_protocol_parser.go comment (history'
                '): 0x22 reply printed without its checksum')),
    KnownFrame('ap3000', 'malformed', 'mal-04-length-too-large', None,
               '444e59ff0f40aace04010021',
               'constructed'),
    KnownFrame('ap3000', 'malformed', 'mal-05-no-header', None,
               '58585858cd28a204',
               ('taoyao-code/iot-zinx tests/common/protocol_helper.go (histor'
                'y): malformed-packet helper')),
    KnownFrame('ap3000', 'malformed', 'mal-06-length-too-small', None,
               '444e59050040aace0421cd02',
               'constructed'),
    KnownFrame('ap3000', 'malformed', 'mal-07-checksum-without-header', None,
               '444e59100040aace040500219808020100005aef02',
               ('constructed (checksum rule used by a third-party Go adapter:'
                ' sum from the length field on)')),
    KnownFrame('ap3000', 'malformed', 'mal-08-foreign-framing', None,
               '444e591a000831333534343030300100219808020100005abd03',
               ('constructed (framing of the taoyao-code/iot-server-cdz inter'
                'nal/protocol/ap3000 skeleton: length = total frame size, ASC'
                'II physical ID with a length prefix)')),
    KnownFrame('ap3000', 'malformed', 'mal-09-payload-too-short', None,
               '444e590e00a18601060101218e08100100f102',
               'constructed'),
    KnownFrame('ap3000', 'malformed', 'mal-10-stream-garbage-and-partial', None,
               '0d0a00444e5910003b37ab0401002198080200000905ee02444e5910003b',
               'constructed from the vendor 0x21 example'),
)

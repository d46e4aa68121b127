"""Valid site files used as the starting point of the hostile-file tests and the fuzzer."""

from __future__ import annotations

MODBUS_SITE = """\
site:
  name: Test Town
  latitude: 52.0
  longitude: 5.0
  timezone: Europe/Amsterdam
devices:
  - name: water.rtu1
    protocol: modbus
    endpoint: 127.0.0.1:1502
    unit_id: 1
    scan_interval: 0.5
tags:
  - name: water.tank1.level
    device: water.rtu1
    address: hr:0:float32
    unit: m
    range: [0, 5]
    scale: 1.0
    offset: 0.0
    max_step: 0.5
    min_command_interval: 5
    compression:
      mode: swinging_door
      compression_deviation: 0.5%
  - name: water.tank1.pump_cmd
    device: water.rtu1
    address: coil:0
    data_type: bool
    writable: true
automation:
  identity: {name: rules, role: operator, areas: [water]}
areas:
  - {name: water, tags: ["water.*"]}
interlocks:
  - name: water.tank1_high
    tags: [water.tank1.pump_cmd]
    block_when: water.tank1.level > 4.5
    applies_to: "true"
    message: tank 1 is nearly full
historian:
  spool_path: var/historian.spool
  compression:
    mode: exception
    exception_deviation: 0.01
"""
"""A Modbus site with command limits, an area, an interlock, compression and a spool."""

MIXED_SITE = """\
site: {name: Mixed, latitude: -33.9, longitude: 18.4, timezone: Africa/Johannesburg}
devices:
  - name: lights.d1
    protocol: opcua
    endpoint: opc.tcp://127.0.0.1:4840/city
    security_policy: Basic256Sha256
    security_mode: SignAndEncrypt
    certificate: pki/client.der
    private_key: pki/client.pem
    trusted_server_certificates: [pki/trusted/server.der]
    username: operator
    password_env: CITY_PASSWORD
  - name: hvac.b1
    protocol: bacnet
    endpoint: 127.0.0.1:47808
    device_instance: 1234
    cov_lifetime: 600
tags:
  - &level {name: lights.d1.level, device: lights.d1, address: "ns=2;s=Level", range: [0, 100]}
  - name: lights.d1.on
    device: lights.d1
    address: /Objects/2:Lights/2:On
    data_type: bool
    writable: true
  - name: hvac.b1.temp
    device: hvac.b1
    address: analog-input:3
    unit: degC
    description: "Supply air\\ttemperature"
hmi:
  featured: [lights.d1.level, hvac.b1.temp]
"""
"""An OPC UA and a BACnet device in flow style, with an anchor, paths and escapes."""

SEEDS = (MODBUS_SITE, MIXED_SITE)

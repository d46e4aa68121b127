'use strict';
// An independent BACnet/IP client (@bacnet-js/client, a TypeScript stack) talking to one
// simulated BACnet device at a direct address. Usage:
//   node bacnet_client.js <scenario> <host:port> <device instance>
// Prints one JSON object on stdout: what the device answered, for the Python test to judge.
// Exit status 0 when the scenario ran to its end, 1 when something failed outside the answers.

const {
  default: Client,
  ObjectType,
  PropertyIdentifier,
  ApplicationTag,
  ASN1_ARRAY_ALL,
} = require('@bacnet-js/client');
const Transport = require('@bacnet-js/client/dist/lib/transport').default;

const APDU_TIMEOUT_MS = 1500;
const WILDCARD_INSTANCE = 4194303; // "this device" (ASHRAE 135 12.11.1, 15.5.2)

// The stack binds its port with `port || 47808`: a transport of its own binds an ephemeral port
// on loopback, so that tests never take a fixed port.
class EphemeralTransport extends Transport {
  open() {
    this._server.bind(0, '127.0.0.1');
  }
}

function makeClient() {
  const transport = new EphemeralTransport({
    port: 0,
    interface: '127.0.0.1',
    broadcastAddress: '127.255.255.255',
    reuseAddr: false,
  });
  const client = new Client({ transport, apduTimeout: APDU_TIMEOUT_MS });
  const listening = new Promise((resolve) => client.on('listening', resolve));
  client.on('error', (err) => process.stderr.write(`client error: ${err.message}\n`));
  return { client, listening };
}

// An answer as data: its values, or the error/abort/reject text the stack raised.
async function outcome(call) {
  try {
    return { ok: true, value: await call() };
  } catch (err) {
    return { ok: false, error: String(err && err.message ? err.message : err) };
  }
}

function values(result) {
  return result.values.map((entry) => entry.value);
}

function objectId(type, instance) {
  return { type, instance };
}

async function readScenario(client, device, instance) {
  const ai1 = objectId(ObjectType.ANALOG_INPUT, 1);
  const wildcard = objectId(ObjectType.DEVICE, WILDCARD_INSTANCE);
  const report = {};
  report.presentValue = await outcome(async () =>
    values(await client.readProperty(device, ai1, PropertyIdentifier.PRESENT_VALUE)));
  report.units = await outcome(async () =>
    values(await client.readProperty(device, ai1, PropertyIdentifier.UNITS)));
  report.wildcardIdentifier = await outcome(async () =>
    values(await client.readProperty(device, wildcard, PropertyIdentifier.OBJECT_IDENTIFIER)));
  report.deviceName = await outcome(async () =>
    values(await client.readProperty(
      device, objectId(ObjectType.DEVICE, instance), PropertyIdentifier.OBJECT_NAME)));
  report.utcOffset = await outcome(async () =>
    values(await client.readProperty(device, wildcard, PropertyIdentifier.UTC_OFFSET)));
  report.servicesSupported = await outcome(async () =>
    values(await client.readProperty(device, wildcard, PropertyIdentifier.PROTOCOL_SERVICES_SUPPORTED)));
  report.objectTypesSupported = await outcome(async () =>
    values(await client.readProperty(
      device, wildcard, PropertyIdentifier.PROTOCOL_OBJECT_TYPES_SUPPORTED)));
  report.unknownObject = await outcome(async () =>
    values(await client.readProperty(
      device, objectId(ObjectType.ANALOG_INPUT, 999), PropertyIdentifier.PRESENT_VALUE)));
  report.multiple = await outcome(async () => {
    const answer = await client.readPropertyMultiple(device, [
      {
        objectId: wildcard,
        properties: [{ id: PropertyIdentifier.OBJECT_NAME }, { id: PropertyIdentifier.VENDOR_IDENTIFIER }],
      },
      {
        objectId: ai1,
        properties: [{ id: PropertyIdentifier.PRESENT_VALUE }, { id: PropertyIdentifier.STATUS_FLAGS }],
      },
      {
        objectId: objectId(ObjectType.ANALOG_INPUT, 999),
        properties: [{ id: PropertyIdentifier.PRESENT_VALUE }],
      },
    ]);
    return answer.values.map((object) => ({
      objectId: object.objectId,
      values: object.values.map((property) => ({
        id: property.id,
        value: property.value.map((item) => item.value),
      })),
    }));
  });
  return report;
}

const REAL = ApplicationTag.REAL;
const ENUMERATED = ApplicationTag.ENUMERATED;
const NULL = ApplicationTag.NULL;

async function writeScenario(client, device) {
  const setpoint = objectId(ObjectType.ANALOG_VALUE, 1);
  const fan = objectId(ObjectType.BINARY_OUTPUT, 1);
  const valve = objectId(ObjectType.ANALOG_OUTPUT, 1);
  const pv = PropertyIdentifier.PRESENT_VALUE;
  const report = {};
  report.writeSetpoint = await outcome(() =>
    client.writeProperty(device, setpoint, pv, [{ type: REAL, value: 21.5 }], { priority: 8 }));
  report.setpointAfter = await outcome(async () =>
    values(await client.readProperty(device, setpoint, pv)));
  report.priorityArray = await outcome(async () =>
    values(await client.readProperty(device, setpoint, PropertyIdentifier.PRIORITY_ARRAY)));
  report.relinquishSetpoint = await outcome(() =>
    client.writeProperty(device, setpoint, pv, [{ type: NULL, value: null }], { priority: 8 }));
  report.writeFan = await outcome(() =>
    client.writeProperty(device, fan, pv, [{ type: ENUMERATED, value: 1 }], { priority: 9 }));
  report.fanAfter = await outcome(async () => values(await client.readProperty(device, fan, pv)));
  report.writeMultiple = await outcome(() =>
    client.writePropertyMultiple(device, [
      {
        objectId: setpoint,
        values: [{ property: { id: pv, index: ASN1_ARRAY_ALL }, value: [{ type: REAL, value: 22 }], priority: 8 }],
      },
      {
        objectId: valve,
        values: [{ property: { id: pv, index: ASN1_ARRAY_ALL }, value: [{ type: REAL, value: 40 }], priority: 8 }],
      },
    ]));
  return report;
}

async function errorScenario(client, device) {
  const setpoint = objectId(ObjectType.ANALOG_VALUE, 1);
  const fan = objectId(ObjectType.BINARY_OUTPUT, 1);
  const ai1 = objectId(ObjectType.ANALOG_INPUT, 1);
  const pv = PropertyIdentifier.PRESENT_VALUE;
  const report = {};
  // The same invoke id for a failing WritePropertyMultiple and the next request: the device
  // must have closed the first transaction by answering it (ASHRAE 135 5.4).
  const invokeId = 42;
  report.failingWriteMultiple = await outcome(() =>
    client.writePropertyMultiple(
      device,
      [
        {
          objectId: setpoint,
          values: [{ property: { id: pv, index: ASN1_ARRAY_ALL }, value: [{ type: REAL, value: 99 }], priority: 8 }],
        },
      ],
      { invokeId },
    ));
  report.sameInvokeIdAgain = await outcome(async () =>
    values(await client.readProperty(device, ai1, pv, { invokeId })));
  report.binaryEnumerationFive = await outcome(() =>
    client.writeProperty(device, fan, pv, [{ type: ENUMERATED, value: 5 }], { priority: 8 }));
  report.wrongDatatype = await outcome(() =>
    client.writeProperty(
      device, setpoint, pv, [{ type: ApplicationTag.CHARACTER_STRING, value: 'warm' }],
      { priority: 8 }));
  report.priorityArrayWrite = await outcome(() =>
    client.writeProperty(
      device, setpoint, PropertyIdentifier.PRIORITY_ARRAY, [{ type: REAL, value: 1 }], {}));
  report.inputWrite = await outcome(() =>
    client.writeProperty(device, ai1, pv, [{ type: REAL, value: 1 }], { priority: 8 }));
  report.fanAfter = await outcome(async () => values(await client.readProperty(device, fan, pv)));
  return report;
}

// The next COV notification (confirmed ones acknowledged, 13.6) matching `wanted`.
function nextNotification(client, wanted, timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error('no COV notification'));
    }, timeoutMs);
    const handle = (confirmed) => (content) => {
      const payload = content.payload;
      if (confirmed) {
        client.simpleAckResponse(content.header.sender, content.service, content.invokeId);
      }
      const found = {
        confirmed,
        subscriberProcessId: payload.subscriberProcessId,
        initiatingDeviceId: payload.initiatingDeviceId,
        monitoredObjectId: payload.monitoredObjectId,
        timeRemaining: payload.timeRemaining,
        values: payload.values.map((entry) => ({
          id: entry.property.id,
          value: entry.value.map((item) => (item.value && item.value.value !== undefined
            ? item.value.value : item.value)),
        })),
      };
      if (!wanted(found)) return;
      cleanup();
      resolve(found);
    };
    const unconfirmed = handle(false);
    const confirmed = handle(true);
    function cleanup() {
      clearTimeout(timer);
      client.removeListener('covNotifyUnconfirmed', unconfirmed);
      client.removeListener('covNotify', confirmed);
    }
    client.on('covNotifyUnconfirmed', unconfirmed);
    client.on('covNotify', confirmed);
  });
}

function presentValueOf(notification) {
  const entry = notification.values.find((item) => item.id === PropertyIdentifier.PRESENT_VALUE);
  return entry ? entry.value[0] : undefined;
}

async function covScenario(client, device) {
  const setpoint = objectId(ObjectType.ANALOG_VALUE, 1);
  const fan = objectId(ObjectType.BINARY_OUTPUT, 1);
  const pv = PropertyIdentifier.PRESENT_VALUE;
  const report = {};
  // 13.1.2: a new subscription gets a notification at once.
  let first = nextNotification(client, (n) => n.subscriberProcessId === 7);
  report.subscribe = await outcome(() => client.subscribeCov(device, setpoint, 7, false, false, 60));
  report.first = await outcome(() => first);
  report.listed = await outcome(async () =>
    (await client.readProperty(
      device, objectId(ObjectType.DEVICE, WILDCARD_INSTANCE),
      PropertyIdentifier.ACTIVE_COV_SUBSCRIPTIONS)).values.length);
  let change = nextNotification(
    client, (n) => n.subscriberProcessId === 7 && presentValueOf(n) === 24);
  report.write = await outcome(() =>
    client.writeProperty(device, setpoint, pv, [{ type: REAL, value: 24 }], { priority: 8 }));
  report.change = await outcome(() => change);
  first = nextNotification(client, (n) => n.subscriberProcessId === 8);
  report.subscribeConfirmed = await outcome(() =>
    client.subscribeCov(device, fan, 8, false, true, 60));
  report.firstConfirmed = await outcome(() => first);
  change = nextNotification(client, (n) => n.subscriberProcessId === 8 && presentValueOf(n) === 1);
  report.writeFan = await outcome(() =>
    client.writeProperty(device, fan, pv, [{ type: ENUMERATED, value: 1 }], { priority: 8 }));
  report.changeConfirmed = await outcome(() => change);
  report.cancel = await outcome(() => client.subscribeCov(device, setpoint, 7, true, false, 0));
  report.cancelConfirmed = await outcome(() => client.subscribeCov(device, fan, 8, true, false, 0));
  report.listedAfterCancel = await outcome(async () =>
    (await client.readProperty(
      device, objectId(ObjectType.DEVICE, WILDCARD_INSTANCE),
      PropertyIdentifier.ACTIVE_COV_SUBSCRIPTIONS)).values.length);
  return report;
}

async function main() {
  const [scenario, address, instanceText] = process.argv.slice(2);
  const instance = Number(instanceText);
  const device = { address };
  const { client, listening } = makeClient();
  await listening;
  const scenarios = {
    read: readScenario,
    write: writeScenario,
    errors: errorScenario,
    cov: covScenario,
  };
  const run = scenarios[scenario];
  if (!run) throw new Error(`unknown scenario ${scenario}`);
  try {
    const report = await run(client, device, instance);
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } finally {
    client.close();
  }
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});

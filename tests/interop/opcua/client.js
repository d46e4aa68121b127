// node-opcua as an independent OPC UA client of a server (OPC UA Part 4 services).
// Usage: node client.js <endpoint url>. Connects (None security, anonymous), prints
// "READY <url>", then answers one JSON line per command read from stdin:
//   browse                         names of the Objects folder's children (Part 4 5.8.2)
//   read <nodeId> <Source|Server|Both|Neither>   a Read of the Value (Part 4 5.10.2, 7.40)
//   readmany <count> <nodeId>      a Read of the same Value <count> times in one request
//   write <nodeId> <Double|Boolean|Int32|UInt16> <json value>   a Write (Part 4 5.10.4)
//   subscribe <nodeId>             a monitored item; answers its first notification
//   next                           the monitored item's next notification
"use strict";
const readline = require("readline");
const {
  OPCUAClient, AttributeIds, TimestampsToReturn, DataType, ReadRequest, ClientSubscription,
  ClientMonitoredItem,
} = require("node-opcua");

function describe(dataValue) {
  return {
    value: dataValue.value ? dataValue.value.value : null,
    status: dataValue.statusCode.name,
    source: dataValue.sourceTimestamp ? dataValue.sourceTimestamp.toISOString() : null,
    server: dataValue.serverTimestamp ? dataValue.serverTimestamp.toISOString() : null,
  };
}

async function main() {
  const url = process.argv[2];
  const client = OPCUAClient.create({
    endpointMustExist: false,
    connectionStrategy: { maxRetry: 0 },
    requestedSessionTimeout: 60000,
  });
  await client.connect(url);
  const session = await client.createSession();
  let subscription = null;
  const notifications = [];
  const waiting = [];
  const deliver = () => {
    while (notifications.length && waiting.length) {
      waiting.shift()(notifications.shift());
    }
  };
  const nextNotification = () => new Promise((resolve) => {
    waiting.push(resolve);
    deliver();
  });

  const commands = {
    async browse() {
      const result = await session.browse("ns=0;i=85");
      return { names: result.references.map((r) => r.browseName.name) };
    },
    async read(nodeId, timestamps) {
      const request = new ReadRequest({
        maxAge: 0,
        timestampsToReturn: TimestampsToReturn[timestamps],
        nodesToRead: [{ nodeId, attributeId: AttributeIds.Value }],
      });
      const response = await session.performMessageTransaction(request);
      return describe(response.results[0]);
    },
    async readmany(count, nodeId) {
      const request = new ReadRequest({
        maxAge: 0,
        timestampsToReturn: TimestampsToReturn.Both,
        nodesToRead: Array.from({ length: Number(count) }, () => ({
          nodeId, attributeId: AttributeIds.Value,
        })),
      });
      try {
        const response = await session.performMessageTransaction(request);
        return { status: response.responseHeader.serviceResult.name, count: response.results.length };
      } catch (err) {
        return { status: String(err.message).match(/Bad\w+/) ? String(err.message).match(/Bad\w+/)[0] : String(err.message) };
      }
    },
    async write(nodeId, dataType, json) {
      const status = await session.write({
        nodeId,
        attributeId: AttributeIds.Value,
        value: { value: { dataType: DataType[dataType], value: JSON.parse(json) } },
      });
      return { status: status.name };
    },
    async subscribe(nodeId) {
      subscription = ClientSubscription.create(session, {
        requestedPublishingInterval: 100,
        requestedLifetimeCount: 600,
        requestedMaxKeepAliveCount: 20,
        publishingEnabled: true,
      });
      const item = ClientMonitoredItem.create(
        subscription,
        { nodeId, attributeId: AttributeIds.Value },
        { samplingInterval: 100, queueSize: 10, discardOldest: true },
        TimestampsToReturn.Both,
      );
      item.on("changed", (dataValue) => {
        notifications.push(describe(dataValue));
        deliver();
      });
      return nextNotification();
    },
    async next() {
      return nextNotification();
    },
  };

  console.log(`READY ${url}`);
  const input = readline.createInterface({ input: process.stdin });
  for await (const line of input) {
    const [name, ...args] = line.trim().split(" ");
    if (!name) {
      continue;
    }
    try {
      const answer = commands[name] ? await commands[name](...args) : { error: `unknown ${name}` };
      console.log(JSON.stringify(answer));
    } catch (err) {
      console.log(JSON.stringify({ error: String(err.message || err) }));
    }
  }
  if (subscription) {
    await subscription.terminate();
  }
  await session.close();
  await client.disconnect();
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

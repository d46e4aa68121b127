// node-opcua as an independent OPC UA server for the center's driver (OPC UA Part 4, Part 6).
// Listens on a free port on loopback, prints "READY <endpoint url>" once it serves, and keeps
// one variable of each scalar built-in type with fixed source timestamps and picoseconds.
// A line "set <name> <json value>" on stdin changes a value (new source timestamp); "ok" answers.
"use strict";
const readline = require("readline");
const {
  OPCUAServer, Variant, DataType, DataValue, StatusCodes, LocalizedText, VariantArrayType,
} = require("node-opcua");

// One value per type; the source time is fixed so the test can check it to the microsecond.
const SOURCE_TIME = new Date(Date.UTC(2026, 2, 1, 12, 0, 0, 250));
const SOURCE_PICOSECONDS = 7000;  // 7 ns; sent as 700 intervals of 10 ps (Part 6, 5.2.2.17)
const VALUES = {
  Boolean: [DataType.Boolean, true],
  SByte: [DataType.SByte, -12],
  Byte: [DataType.Byte, 200],
  Int16: [DataType.Int16, -30000],
  UInt16: [DataType.UInt16, 60000],
  Int32: [DataType.Int32, -2000000000],
  UInt32: [DataType.UInt32, 4000000000],
  Int64: [DataType.Int64, [0xfffffffe, 0]],  // [high, low]: -8589934592
  UInt64: [DataType.UInt64, [2, 7]],  // 8589934599
  Float: [DataType.Float, 21.5],
  Double: [DataType.Double, 1234.5678],
  String: [DataType.String, "pump läuft"],
  DateTime: [DataType.DateTime, new Date(Date.UTC(2025, 11, 24, 18, 30, 15, 125))],
  LocalizedText: [DataType.LocalizedText, new LocalizedText({ text: "open", locale: "en" })],
};

async function main() {
  const server = new OPCUAServer({
    port: 0,
    hostname: "127.0.0.1",
    alternateHostname: ["127.0.0.1"],
    buildInfo: { productName: "interop-plant" },
  });
  await server.initialize();
  const namespace = server.engine.addressSpace.getOwnNamespace();
  const folder = namespace.addFolder("ObjectsFolder", { browseName: "Plant" });
  const states = {};
  for (const [name, [dataType, value]] of Object.entries(VALUES)) {
    states[name] = { dataType, value, sourceTimestamp: SOURCE_TIME };
    namespace.addVariable({
      componentOf: folder,
      nodeId: `s=${name}`,
      browseName: name,
      dataType,
      minimumSamplingInterval: 100,
      value: {
        timestamped_get: () => {
          const state = states[name];
          return new DataValue({
            value: new Variant({
              dataType: state.dataType, arrayType: VariantArrayType.Scalar, value: state.value,
            }),
            statusCode: StatusCodes.Good,
            sourceTimestamp: state.sourceTimestamp,
            sourcePicoseconds: SOURCE_PICOSECONDS,
          });
        },
      },
    });
  }
  await server.start();
  const url = server.getEndpointUrl().replace(/\/\/[^:/]+:/, "//127.0.0.1:");
  console.log(`READY ${url}`);
  const input = readline.createInterface({ input: process.stdin });
  input.on("line", (line) => {
    const [command, name, ...rest] = line.trim().split(" ");
    if (!command) {
      return;
    }
    if (command === "set" && states[name]) {
      states[name].value = JSON.parse(rest.join(" "));
      states[name].sourceTimestamp = new Date();
      const variable = namespace.findNode(`ns=1;s=${name}`);
      variable.touchValue();
      console.log(`ok ${name}`);
    } else {
      console.log(`error ${line}`);
    }
  });
  input.on("close", async () => {
    await server.shutdown(0);
    process.exit(0);
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

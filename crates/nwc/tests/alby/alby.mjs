// Alby's JS SDK (@getalby/sdk, its NWCClient) as an app of moip's NWC service, driven by
// crates/nwc/tests/alby.rs.
//
// Usage: NWC_URI=nostr+walletconnect://... node alby.mjs
//
// Reads one JSON command a line on stdin, {"id": 1, "method": "make_invoice", "params": {...}},
// calls the SDK's method of that name (make_invoice -> client.makeInvoice(params)) and prints
// one JSON line on stdout per command:
//   {"id": 1, "result": ...}                        the SDK returned
//   {"id": 1, "error": {"class", "code", "message"}}  the SDK threw (class: Nip47WalletError...)
// Two commands are not NIP-47 methods: "get_wallet_service_info" (the SDK reads the service's
// info event) and "subscribe_notifications" (client.subscribeNotifications; every
// notification then comes as a line {"notification": {...}}). Commands run one at a time, in
// order. The process ends when stdin closes.

import { createInterface } from "node:readline";

// The SDK declares Node >= 22. Node 20 has no global WebSocket (nostr-tools, under the SDK,
// reads it when it is loaded, so the SDK is imported after this), and Node 18 (Debian 12's)
// no global Web Crypto either.
if (typeof globalThis.WebSocket === "undefined") {
  const { WebSocket } = await import("ws");
  globalThis.WebSocket = WebSocket;
}
if (typeof globalThis.crypto === "undefined") {
  globalThis.crypto = (await import("node:crypto")).webcrypto;
}
const { NWCClient } = await import("@getalby/sdk/nwc");

const uri = process.env.NWC_URI;
if (!uri) {
  console.error("alby.mjs: set NWC_URI to the connection URI");
  process.exit(2);
}

// The SDK logs its own failures with console.error; they go to stderr, stdout stays JSON.
const client = new NWCClient({ nostrWalletConnectUrl: uri });

function print(line) {
  process.stdout.write(JSON.stringify(line) + "\n");
}

function camel(method) {
  return method.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
}

async function run({ method, params }) {
  if (method === "subscribe_notifications") {
    await client.subscribeNotifications((notification) => print({ notification }));
    return true;
  }
  const call = client[camel(method)];
  if (typeof call !== "function") {
    throw new Error(`the SDK has no method ${camel(method)}`);
  }
  return await call.call(client, params ?? {});
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  const command = JSON.parse(line);
  try {
    const result = await run(command);
    print({ id: command.id, result: result ?? null });
  } catch (e) {
    print({
      id: command.id,
      error: { class: e?.constructor?.name, code: e?.code ?? null, message: String(e?.message ?? e) },
    });
  }
}
client.close();
process.exit(0);

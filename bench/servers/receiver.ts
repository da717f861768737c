/**
 * The webhook receiver (test/support/receiver.ts) in its own process, answering 200 to every POST.
 *
 *   node --import tsx bench/servers/receiver.ts
 *
 * Prints `{"port":N}`, then answers control commands on stdin (see control.ts): `reset` (drops the
 * recorded requests, which the receiver otherwise keeps), `stats` → how many arrived.
 */
import { startReceiver } from "../../test/support/receiver.js";
import { serveControl } from "./control.js";

async function main() {
  const receiver = await startReceiver();
  serveControl(
    receiver.port,
    (cmd) => {
      switch (cmd.op) {
        case "reset":
          receiver.reset();
          return { ok: true };
        case "stats":
          return { count: receiver.requests.length };
        default:
          throw new Error(`unknown op ${cmd.op}`);
      }
    },
    () => receiver.close(),
  );
}

void main();

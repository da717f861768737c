import { createInterface } from "node:readline";

export type Command = { id: number; op: string } & Record<string, unknown>;

/**
 * The wrappers' side of the control channel: one JSON command per stdin line, one JSON answer per
 * stdout line (same `id`). The first stdout line is `{"port":N}`. When stdin ends (the parent
 * exited, crashed or closed it) the server closes and the process exits: nothing outlives a bench run.
 */
export function serveControl(
  port: number,
  handle: (cmd: Command) => unknown,
  close: () => Promise<void>,
): void {
  process.stdout.write(`${JSON.stringify({ port })}\n`);
  const lines = createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    if (line.trim() === "") return;
    let cmd: Command;
    try {
      cmd = JSON.parse(line) as Command;
    } catch {
      process.stdout.write(`${JSON.stringify({ id: -1, error: "not JSON" })}\n`);
      return;
    }
    try {
      process.stdout.write(`${JSON.stringify({ id: cmd.id, result: handle(cmd) ?? null })}\n`);
    } catch (err) {
      process.stdout.write(`${JSON.stringify({ id: cmd.id, error: String(err) })}\n`);
    }
  });
  const stop = () => {
    void close().then(() => process.exit(0));
  };
  lines.on("close", stop);
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

/** The spec is the first argument, as JSON (absent: `{}`). */
export function specArg<T>(): Partial<T> {
  const raw = process.argv[2];
  return raw === undefined || raw === "" ? {} : (JSON.parse(raw) as Partial<T>);
}

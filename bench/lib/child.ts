import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** Every child this process started, so an interrupted run still stops them all. */
const started = new Set<ChildProcess>();
let hooked = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const killAll = () => {
    for (const child of started) if (child.exitCode === null) child.kill("SIGKILL");
  };
  process.on("exit", killAll);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      killAll();
      process.exit(130);
    });
  }
}

/** `node --import tsx <script> ...args` from the repository root. */
export function spawnTs(
  script: string,
  args: string[] = [],
  opts: { env?: Record<string, string>; nodeArgs?: string[]; stdio?: "pipe" | "inherit-err" } = {},
): ChildProcess {
  hookExit();
  const child = spawn(
    process.execPath,
    [...(opts.nodeArgs ?? []), "--import", "tsx", script, ...args],
    {
      cwd: ROOT,
      env: { ...process.env, ...opts.env },
      stdio: ["pipe", "pipe", opts.stdio === "inherit-err" ? "inherit" : "pipe"],
    },
  );
  started.add(child);
  child.on("exit", () => started.delete(child));
  return child;
}

export interface ServerChild {
  port: number;
  url: string;
  call<T = Record<string, unknown>>(op: string, args?: Record<string, unknown>): Promise<T>;
  stop(): Promise<void>;
}

/**
 * Starts one of bench/servers/*.ts: resolves once it prints its port. `call` sends a control command
 * and resolves with its answer; `stop` ends stdin (the server closes and exits) and kills it if it
 * lingers.
 */
export async function startServerChild(script: string, spec: unknown = {}): Promise<ServerChild> {
  const child = spawnTs(script, [JSON.stringify(spec)], { stdio: "inherit-err" });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const lines = createInterface({ input: child.stdout ?? process.stdin });
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script}: no port within 60 s`)), 60_000);
    void exited.then(() => reject(new Error(`${script} exited before listening`)));
    lines.on("line", (line) => {
      const msg = JSON.parse(line) as {
        port?: number;
        id?: number;
        result?: unknown;
        error?: string;
      };
      if (msg.port !== undefined) {
        clearTimeout(timer);
        resolve(msg.port);
        return;
      }
      const waiter = msg.id === undefined ? undefined : pending.get(msg.id);
      if (!waiter || msg.id === undefined) return;
      pending.delete(msg.id);
      if (msg.error !== undefined) waiter.reject(new Error(msg.error));
      else waiter.resolve(msg.result);
    });
  });
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    call<T>(op: string, args: Record<string, unknown> = {}) {
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        pending.set(id, { resolve: (v) => resolve(v as T), reject });
        child.stdin?.write(`${JSON.stringify({ id, op, ...args })}\n`);
      });
    },
    async stop() {
      child.stdin?.end();
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Runs a TypeScript script to its end and returns its stdout (its stderr passes through). */
export function runTs(
  script: string,
  args: string[] = [],
  opts: { env?: Record<string, string>; nodeArgs?: string[] } = {},
): Promise<{ code: number | null; stdout: string }> {
  const child = spawnTs(script, args, { ...opts, stdio: "inherit-err" });
  child.stdin?.end();
  let stdout = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString("utf8");
  });
  return new Promise((resolve) => child.once("exit", (code) => resolve({ code, stdout })));
}

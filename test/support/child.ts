import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface ServiceProcess {
  proc: ChildProcess;
  /** Base URL, once it listens. */
  url: string;
  port: number;
  /** Every stdout and stderr line so far (JSON log lines). */
  lines: string[];
  /** Resolves with the exit code (or the signal name) when the process ends. */
  exited: Promise<number | string>;
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  kill(signal?: NodeJS.Signals): void;
}

/**
 * Runs the real service (`src/main.ts` through tsx, or the given node arguments, e.g. the compiled
 * `dist/main.js`) as a child process on 127.0.0.1 with the given environment, and resolves once it
 * listens. The caller kills it (afterEach) — it never outlives the test run.
 */
export async function startService(
  env: Record<string, string>,
  timeoutMs = 15_000,
  nodeArgs: readonly string[] = ["--import", "tsx", "src/main.ts"],
): Promise<ServiceProcess> {
  const proc = spawn(process.execPath, [...nodeArgs], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? "",
      HOST: "127.0.0.1",
      PORT: "0",
      LOG_LEVEL: "info",
      NODE_ENV: "production",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  const waiters: Array<{ pattern: RegExp; resolve: (line: string) => void }> = [];
  const onLine = (line: string) => {
    if (line.trim() === "") return;
    lines.push(line);
    for (const w of [...waiters]) {
      if (w.pattern.test(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  };
  // A line can arrive split over two chunks (a pipe has no notion of lines): each stream keeps its
  // unfinished last line until the rest comes, or until it ends.
  for (const stream of [proc.stdout, proc.stderr]) {
    let pending = "";
    stream?.setEncoding("utf8");
    stream?.on("data", (chunk: string) => {
      const parts = (pending + chunk).split("\n");
      pending = parts.pop() ?? "";
      for (const line of parts) onLine(line);
    });
    stream?.on("end", () => onLine(pending));
  }
  const exited = new Promise<number | string>((resolve) => {
    proc.on("exit", (code, signal) => resolve(code ?? signal ?? "unknown"));
  });

  const waitForLine = (pattern: RegExp, ms = timeoutMs) =>
    new Promise<string>((resolve, reject) => {
      const found = lines.find((l) => pattern.test(l));
      if (found) return resolve(found);
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `no line matching ${pattern} within ${ms} ms:\n${lines.slice(-20).join("\n")}`,
            ),
          ),
        ms,
      );
      waiters.push({
        pattern,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      });
      void exited.then(() => {
        clearTimeout(timer);
        reject(
          new Error(
            `service exited before a line matching ${pattern}:\n${lines.slice(-20).join("\n")}`,
          ),
        );
      });
    });

  const listening = await waitForLine(/taskhook listening/);
  const port = (JSON.parse(listening) as { port: number }).port;
  return {
    proc,
    port,
    url: `http://127.0.0.1:${port}`,
    lines,
    exited,
    waitForLine,
    kill: (signal = "SIGTERM") => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    },
  };
}

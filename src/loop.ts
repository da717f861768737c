import type { Logger } from "./log.js";

export interface LoopOptions {
  name: string;
  logger: Logger;
  /** One iteration; resolves to how long to sleep (ms) before the next. */
  tick: () => Promise<number>;
  onError?: (err: unknown) => void;
  /** Sleep after a failed tick. */
  errorDelayMs?: number;
  maxIdleMs: number;
}

/**
 * A background loop that never dies: `while (!stopping) { tick; sleep }`. A tick's error is logged
 * and counted and the loop goes on; `notify()` cuts a sleep short; `stop()` ends the sleep and waits
 * for the current tick.
 */
export class Loop {
  private stopping = false;
  private runPromise: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private woken = false;

  constructor(private readonly opts: LoopOptions) {}

  get running(): boolean {
    return this.runPromise !== null && !this.stopping;
  }

  start(): void {
    if (this.runPromise) return;
    this.stopping = false;
    this.runPromise = this.run();
  }

  notify(): void {
    this.woken = true;
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.runPromise;
    this.runPromise = null;
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      let delay: number;
      try {
        delay = await this.opts.tick();
      } catch (err) {
        this.opts.logger.error({ err, loop: this.opts.name }, "loop tick failed; continuing");
        this.opts.onError?.(err);
        delay = this.opts.errorDelayMs ?? 1000;
      }
      if (this.stopping) break;
      await this.sleep(Math.min(delay, this.opts.maxIdleMs));
    }
  }

  private sleep(ms: number): Promise<void> {
    if (this.woken || ms <= 0) {
      this.woken = false;
      // Yield to I/O even when there is more work, so completions and requests are served.
      return new Promise((resolve) => setImmediate(resolve));
    }
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = null;
        this.woken = false;
        done();
      };
    });
  }
}

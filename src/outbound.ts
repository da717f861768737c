import { type Dispatcher, errors } from "undici";

/**
 * One outgoing HTTP request through undici's `dispatch`, the API its `request` is built on. The
 * loops send thousands of small requests a second and read a few hundred bytes of each answer:
 * `request` wraps every body in a Node stream that is then read back into a string, and that was
 * about a quarter of a bare GET's cost (bench/RESULTS.md, sixth session). Here the body's chunks
 * are kept as they arrive, up to a limit.
 */
export interface OutboundRequest {
  /** `http(s)://host[:port]`. */
  origin: string;
  /** Path and query. */
  path: string;
  method: "GET" | "POST";
  headers: Record<string, string>;
  body?: string;
  /** The whole exchange, queueing for a socket included; the deadline fails it as a time-out. */
  timeoutMs: number;
  /** Reading stops (and the connection is dropped) once this many bytes have come. */
  maxBodyBytes: number;
}

/** An answer: its status line and headers came, and as much of its body as was read. */
export interface Answer {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  /** What arrived: at least `maxBodyBytes` when cut (the whole chunk that reached the limit). */
  body: Buffer;
  /**
   * Why the body may not be whole: `"cut"` at `maxBodyBytes`; an error (a time-out, a broken
   * connection) after the headers. null when it ended.
   */
  incomplete: "cut" | Error | null;
}

/** The deadline passed; `name` is the one `AbortSignal.timeout` gives, which callers already test. */
export class DeadlineError extends Error {
  override name = "TimeoutError";
}

/**
 * True for every way a request runs out of time: our deadline, or undici's own connect, headers and
 * body time-outs (the Agent's options). `AbortError` is what an abort signal gives.
 */
export function isTimeout(err: unknown): boolean {
  const name = (err as { name?: unknown } | null)?.name;
  return (
    err instanceof errors.HeadersTimeoutError ||
    err instanceof errors.BodyTimeoutError ||
    err instanceof errors.ConnectTimeoutError ||
    name === "TimeoutError" ||
    name === "AbortError"
  );
}

/** Why reading stopped at `maxBodyBytes`: never surfaces, the answer settles first. */
class BodyCut extends Error {}

/** Rejects only when no answer came (connect, send or headers failed or timed out). */
export function exchange(dispatcher: Dispatcher, req: OutboundRequest): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const handler = new ExchangeHandler(resolve, reject, req.maxBodyBytes, req.timeoutMs);
    const options = {
      origin: req.origin,
      path: req.path,
      method: req.method,
      headers: req.headers,
      body: req.body ?? null,
    };
    try {
      dispatcher.dispatch(options, handler);
    } catch (err) {
      // undici's own dispatchers hand such errors to the handler; any other settles here too.
      handler.onResponseError(null, err as Error);
    }
  });
}

class ExchangeHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null;
  private statusCode = 0;
  private headers: Answer["headers"] = {};
  private chunks: Buffer[] = [];
  private size = 0;
  private settled = false;
  /** Set when the deadline passed before undici handed us the request's controller. */
  private abortReason: Error | null = null;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly resolve: (answer: Answer) => void,
    private readonly reject: (err: Error) => void,
    private readonly maxBodyBytes: number,
    timeoutMs: number,
  ) {
    // Like `AbortSignal.timeout`, the deadline alone does not keep the process alive.
    this.timer = setTimeout(() => this.expire(), timeoutMs).unref();
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    // Called again when undici retries the request on another socket: start over.
    this.controller = controller;
    this.statusCode = 0;
    this.chunks = [];
    this.size = 0;
    if (this.abortReason) controller.abort(this.abortReason);
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Answer["headers"],
  ): void {
    // 1xx answers are interim; the final one follows.
    if (statusCode < 200) return;
    this.statusCode = statusCode;
    this.headers = headers;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.settled) return;
    this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.size >= this.maxBodyBytes) {
      this.answer("cut");
      // Not from inside the parser's callback: when this chunk also ends a `connection: close`
      // answer, undici would go on to complete the request it had just been told to abort.
      controller.pause();
      queueMicrotask(() => controller.abort(new BodyCut()));
    }
  }

  onResponseEnd(): void {
    this.answer(null);
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, err: Error): void {
    this.fail(err);
  }

  private expire(): void {
    const err = new DeadlineError("no answer before the deadline");
    this.fail(err);
    if (this.controller) this.controller.abort(err);
    else this.abortReason = err;
  }

  /** After the headers an error only ends the body; before them, there is no answer. */
  private fail(err: Error): void {
    if (this.statusCode !== 0) this.answer(err);
    else this.settle(() => this.reject(err));
  }

  private answer(incomplete: Answer["incomplete"]): void {
    this.settle(() => {
      const body = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
      this.resolve({
        statusCode: this.statusCode,
        headers: this.headers,
        body: body ?? Buffer.alloc(0),
        incomplete,
      });
    });
  }

  private settle(settle: () => void): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    settle();
  }
}

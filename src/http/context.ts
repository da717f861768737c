import type { Clock } from "../clock.js";
import type { Config } from "../config.js";
import type { Db } from "../db/client.js";
import type { Sender } from "../delivery/sender.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";

/** Everything a handler may use, handed in by `createApp(deps)`: no module-level singletons. */
export interface AppDeps {
  db: Db;
  config: Config;
  clock: Clock;
  logger: Logger;
  /** AES-256-GCM key for API keys and signing secrets at rest. */
  encryptionKey: Buffer;
  /** Liveness of the background loops, for /readyz. Absent: the loops are not run by this process. */
  loops?: () => { scheduler: boolean; deliverer: boolean };
  /** Upstream requests and errors in the last minute, for /admin/stats. */
  upstreamLastMinute?: () => { requests: number; errors: number };
  /** The Prometheus registry behind /metrics (absent: no /metrics figures beyond the database's). */
  metrics?: Metrics;
  /** Sends the signed `ping` of POST /v1/webhook-test (the deliverer's sender). */
  sender: Sender;
  /** Wakes the loops when the API creates work for them now (registration, replay). */
  wake?: { scheduler(): void; deliverer(): void };
}

export interface Tenant {
  /** Hex SHA-256 of the API key. */
  id: string;
  /** The key itself, held only for this request (to store it encrypted at registration). */
  apiKey: string;
}

export type AppEnv = {
  Variables: {
    deps: AppDeps;
    requestId: string;
    tenant: Tenant;
  };
};

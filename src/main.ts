import { serve } from "@hono/node-server";
import { systemClock } from "./clock.js";
import { ConfigError, configWarnings, loadConfig } from "./config.js";
import { openDatabase } from "./db/client.js";
import { createApp } from "./http/app.js";
import { resolveEncryptionKey } from "./keyfile.js";
import { createLogger } from "./log.js";

/** The composition root: config → database (migrated) → HTTP server and the loops; owns shutdown. */
function start() {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`taskhook: ${err.message}\n`);
    process.exit(1);
  }

  const logger = createLogger({
    level: config.LOG_LEVEL,
    pretty: process.stdout.isTTY === true && process.env.NODE_ENV !== "production",
  });
  for (const warning of configWarnings(config)) logger.warn(warning);

  const { key, warning } = resolveEncryptionKey(config.ENCRYPTION_KEY, config.DATABASE_URL);
  if (warning) logger.warn(warning);

  const db = openDatabase(config.DATABASE_URL);
  const app = createApp({ db, config, clock: systemClock, logger, encryptionKey: key });
  const server = serve({ fetch: app.fetch, port: config.PORT, hostname: config.HOST }, (info) => {
    logger.info({ port: info.port, host: config.HOST }, "taskhook listening");
  });

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, "second signal: exiting now");
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, "shutting down");
    server.close(() => {
      db.$client.close();
      logger.info("stopped");
      process.exit(0);
    });
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

start();

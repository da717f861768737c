import { type Config, ConfigError, configWarnings, loadConfig } from "./config.js";
import { resolveEncryptionKey } from "./keyfile.js";
import { createLogger } from "./log.js";
import { createService } from "./service.js";

/** The entry point: config → service; owns the signals. A bad config is one line on stderr, exit 1. */
async function main(): Promise<void> {
  let config: Config;
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

  const service = createService({ config, logger, encryptionKey: key, defaultMetrics: true });
  await service.start();

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, "second signal: exiting now");
      process.exit(1);
    }
    stopping = true;
    logger.info(
      { signal, graceMs: config.SHUTDOWN_GRACE_MS },
      "shutting down: draining in-flight work",
    );
    await service.stop();
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

void main();

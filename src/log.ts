import { type DestinationStream, type Logger, pino } from "pino";

export type { Logger };

/**
 * Paths that may hold a credential. Keys, secrets and signatures are never logged on purpose;
 * this is the second line of defence should one slip into a logged object.
 */
const REDACT = [
  "apiKey",
  "*.apiKey",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "*.headers.authorization",
  "secret",
  "*.secret",
  "webhook-signature",
  "*.webhook-signature",
  "*.headers['webhook-signature']",
];

export interface LoggerOptions {
  level: string;
  /** Pretty, human output (development in a terminal); JSON lines otherwise. */
  pretty?: boolean;
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const base = {
    level: options.level,
    base: { service: "taskhook" },
    redact: { paths: REDACT, censor: "[redacted]" },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (options.destination) return pino(base, options.destination);
  if (options.pretty) {
    return pino({ ...base, transport: { target: "pino-pretty", options: { colorize: true } } });
  }
  return pino(base);
}

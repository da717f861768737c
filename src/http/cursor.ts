import { ApiError } from "./errors.js";

/**
 * Cursors are opaque to clients (base64url of a position) so that paging can change without
 * breaking them; a cursor that doesn't decode to a position of the expected kind is a 400.
 */
export function encodeCursor(position: string): string {
  return Buffer.from(`c1:${position}`, "utf8").toString("base64url");
}

export function decodeCursor(cursor: string | undefined, pattern: RegExp): string | undefined {
  if (cursor === undefined || cursor === "") return undefined;
  const text = /^[A-Za-z0-9_-]+$/.test(cursor)
    ? Buffer.from(cursor, "base64url").toString("utf8")
    : "";
  const position = text.startsWith("c1:") ? text.slice(3) : "";
  if (!pattern.test(position)) {
    throw new ApiError("VALIDATION_ERROR", "cursor: is not a cursor this API returned", [
      { path: "cursor", message: "invalid cursor" },
    ]);
  }
  return position;
}

export function nextCursor<T>(
  rows: readonly T[],
  more: boolean,
  position: (row: T) => string,
): string | null {
  const last = rows[rows.length - 1];
  return more && last !== undefined ? encodeCursor(position(last)) : null;
}

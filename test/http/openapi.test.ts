import { describe, expect, it } from "vitest";
import { createTestContext } from "../support/context.js";

type Operation = {
  security?: Array<Record<string, string[]>>;
  responses: Record<string, { content?: Record<string, { schema: { $ref?: string } }> }>;
  requestBody?: { content: Record<string, { schema: { $ref?: string } }> };
};
type Doc = {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Record<string, unknown>>; securitySchemes: object };
};

async function loadDoc() {
  const t = createTestContext();
  const res = await t.call("GET", "/openapi.json", { key: null });
  return { t, res, doc: res.body as Doc };
}

const EXPECTED: Record<string, string[]> = {
  "/v1/watches": ["get", "post"],
  "/v1/watches/{id}": ["delete", "get"],
  "/v1/watches/{id}/events": ["get"],
  "/v1/events": ["get"],
  "/v1/deliveries/{id}/retry": ["post"],
  "/v1/webhook-test": ["post"],
  "/v1/signing-secret": ["get"],
  "/v1/signing-secret/rotate": ["post"],
  "/admin/watches": ["get"],
  "/admin/stats": ["get"],
  "/admin/deliveries": ["get"],
  "/admin/deliveries/{id}/retry": ["post"],
  "/healthz": ["get"],
  "/readyz": ["get"],
  "/metrics": ["get"],
};

describe("GET /openapi.json", () => {
  it("is an OpenAPI 3.1 document served without credentials", async () => {
    const { res, doc } = await loadDoc();
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
    expect(doc.info.title).toBe("taskhook");
    expect(doc.info.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it("lists every API route with its methods", async () => {
    const { doc } = await loadDoc();
    const listed = Object.fromEntries(
      Object.entries(doc.paths).map(([path, ops]) => [path, Object.keys(ops).sort()]),
    );
    expect(listed).toEqual(EXPECTED);
  });

  it("documents every route the app serves (besides itself and /docs)", async () => {
    const { t, doc } = await loadDoc();
    const served = new Set(
      t.app.routes
        .filter((r) => r.method !== "ALL" && r.path !== "/openapi.json" && r.path !== "/docs")
        .map((r) => `${r.method.toLowerCase()} ${r.path.replace(/:(\w+)/g, "{$1}")}`),
    );
    const documented = new Set(
      Object.entries(doc.paths).flatMap(([path, ops]) =>
        Object.keys(ops).map((m) => `${m} ${path}`),
      ),
    );
    expect(documented).toEqual(served);
  });

  it("names the credential of every client and admin route", async () => {
    const { doc } = await loadDoc();
    expect(Object.keys(doc.components.securitySchemes).sort()).toEqual(["adminToken", "apiKey"]);
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const op of Object.values(ops)) {
        if (path.startsWith("/v1/")) expect(op.security).toEqual([{ apiKey: [] }]);
        else if (path.startsWith("/admin/")) expect(op.security).toEqual([{ adminToken: [] }]);
        else expect(op.security).toBeUndefined();
      }
    }
  });

  it("documents the one error envelope on every failure response", async () => {
    const { doc } = await loadDoc();
    const error = doc.components.schemas.Error as {
      properties: { error: { properties: { code: { enum: string[] } } } };
    };
    expect(error.properties.error.properties.code.enum).toEqual([
      "VALIDATION_ERROR",
      "UNAUTHORIZED",
      "FORBIDDEN",
      "NOT_FOUND",
      "WATCH_EXISTS",
      "PAYLOAD_TOO_LARGE",
      "UNSUPPORTED_MEDIA_TYPE",
      "RATE_LIMITED",
      "INTERNAL",
      "UNAVAILABLE",
    ]);
    for (const ops of Object.values(doc.paths)) {
      for (const op of Object.values(ops)) {
        for (const [status, response] of Object.entries(op.responses)) {
          if (Number(status) < 400) continue;
          expect(response.content?.["application/json"]?.schema.$ref).toBe(
            "#/components/schemas/Error",
          );
        }
      }
    }
    const create = doc.paths["/v1/watches"]?.post;
    expect(Object.keys(create?.responses ?? {}).sort()).toEqual(
      ["200", "201", "400", "401", "409", "413", "415", "429", "500", "503"].sort(),
    );
    const admin = doc.paths["/admin/stats"]?.get;
    expect(admin?.responses).toHaveProperty("403");
  });

  it("is generated from the schemas that validate: CreateWatch is strict, with its bounds", async () => {
    const { doc } = await loadDoc();
    const create = doc.paths["/v1/watches"]?.post;
    expect(create?.requestBody?.content["application/json"]?.schema.$ref).toBe(
      "#/components/schemas/CreateWatch",
    );
    expect(doc.components.schemas.CreateWatch).toMatchObject({
      type: "object",
      required: ["task_id", "callback_url"],
      additionalProperties: false,
      properties: {
        task_id: { type: "string", pattern: "^[A-Za-z0-9_-]{1,128}$" },
        callback_url: { type: "string", maxLength: 2048 },
        events: { type: "array", minItems: 1 },
        expires_in: { type: "integer", minimum: 60, maximum: 604800 },
      },
    });
    expect(doc.components.schemas.Watch).toMatchObject({
      type: "object",
      required: expect.arrayContaining([
        "id",
        "task_id",
        "callback_url",
        "events",
        "metadata",
        "status",
        "task_status",
        "task",
        "created_at",
        "expires_at",
        "ended_at",
        "end_reason",
        "last_polled_at",
      ]),
    });
  });

  it("gives /docs an example for every request body and every successful response", async () => {
    const { doc } = await loadDoc();
    const hasExample = (schema: Record<string, unknown> | undefined): boolean => {
      if (!schema) return false;
      if ("example" in schema) return true;
      const ref = schema.$ref as string | undefined;
      if (ref) return hasExample(doc.components.schemas[ref.replace("#/components/schemas/", "")]);
      const props = schema.properties as Record<string, Record<string, unknown>> | undefined;
      const items = props?.data?.items as Record<string, unknown> | undefined;
      return hasExample(items);
    };
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const bodies = [
          ...Object.entries(op.responses)
            .filter(([status]) => status.startsWith("2"))
            .flatMap(([, r]) => Object.values(r.content ?? {})),
          ...Object.values(op.requestBody?.content ?? {}),
        ];
        for (const body of bodies) {
          expect(hasExample(body.schema as Record<string, unknown>), `${method} ${path}`).toBe(
            true,
          );
        }
      }
    }
  });
});

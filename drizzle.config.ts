import { defineConfig } from "drizzle-kit";

// Migrations are generated (`npm run db:generate`) and committed; start-up applies them. Never `push`.
export default defineConfig({
  dialect: "sqlite",
  schema: "./src/db/schema.ts",
  out: "./migrations",
});

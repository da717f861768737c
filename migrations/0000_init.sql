CREATE TABLE `deliveries` (
	`id` text PRIMARY KEY NOT NULL,
	`event_id` text NOT NULL,
	`watch_id` text NOT NULL,
	`tenant_id` text NOT NULL,
	`callback_url` text NOT NULL,
	`status` text NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`next_attempt_at` integer NOT NULL,
	`lease_until` integer,
	`last_attempt_at` integer,
	`last_error` text,
	`last_status_code` integer,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`event_id`) REFERENCES `events`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `deliveries_event_id_unique` ON `deliveries` (`event_id`);--> statement-breakpoint
CREATE INDEX `deliveries_due` ON `deliveries` (`next_attempt_at`) WHERE "deliveries"."status" = 'pending';--> statement-breakpoint
CREATE INDEX `deliveries_watch_pending` ON `deliveries` (`watch_id`,`id`) WHERE "deliveries"."status" = 'pending';--> statement-breakpoint
CREATE INDEX `deliveries_status` ON `deliveries` (`status`,`id`);--> statement-breakpoint
CREATE INDEX `deliveries_tenant` ON `deliveries` (`tenant_id`,`id`);--> statement-breakpoint
CREATE TABLE `delivery_attempts` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`delivery_id` text NOT NULL,
	`at` integer NOT NULL,
	`duration_ms` integer NOT NULL,
	`status_code` integer,
	`error` text,
	`response_body` text,
	FOREIGN KEY (`delivery_id`) REFERENCES `deliveries`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `delivery_attempts_delivery` ON `delivery_attempts` (`delivery_id`,`id`);--> statement-breakpoint
CREATE TABLE `events` (
	`id` text PRIMARY KEY NOT NULL,
	`watch_id` text NOT NULL,
	`tenant_id` text NOT NULL,
	`sequence` integer NOT NULL,
	`type` text NOT NULL,
	`payload` text NOT NULL,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`watch_id`) REFERENCES `watches`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `events_watch_sequence` ON `events` (`watch_id`,`sequence`);--> statement-breakpoint
CREATE INDEX `events_tenant` ON `events` (`tenant_id`,`id`);--> statement-breakpoint
CREATE TABLE `leases` (
	`name` text PRIMARY KEY NOT NULL,
	`holder` text NOT NULL,
	`expires_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `poll_targets` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`tenant_id` text NOT NULL,
	`task_id` text NOT NULL,
	`active` integer DEFAULT true NOT NULL,
	`task_status` text,
	`task_json` text,
	`queue_position` integer,
	`estimated_completion_at` integer,
	`next_poll_at` integer NOT NULL,
	`due_at` integer NOT NULL,
	`lease_until` integer,
	`last_polled_at` integer,
	`fault_count` integer DEFAULT 0 NOT NULL,
	`reject_code` text,
	`reject_count` integer DEFAULT 0 NOT NULL,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `poll_targets_tenant_task` ON `poll_targets` (`tenant_id`,`task_id`);--> statement-breakpoint
CREATE INDEX `poll_targets_due` ON `poll_targets` (`next_poll_at`) WHERE "poll_targets"."active" = 1;--> statement-breakpoint
CREATE TABLE `tenants` (
	`id` text PRIMARY KEY NOT NULL,
	`api_key_enc` text,
	`signing_secret_enc` text,
	`signing_secret_created_at` integer,
	`previous_secret_enc` text,
	`previous_secret_expires_at` integer,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `watches` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`poll_target_id` integer NOT NULL,
	`task_id` text NOT NULL,
	`callback_url` text NOT NULL,
	`events` text NOT NULL,
	`metadata` text,
	`status` text NOT NULL,
	`end_reason` text,
	`last_status` text,
	`last_queue_position` integer,
	`sequence` integer DEFAULT 0 NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`ended_at` integer,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`poll_target_id`) REFERENCES `poll_targets`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `watches_active_registration` ON `watches` (`tenant_id`,`task_id`,`callback_url`) WHERE "watches"."status" = 'active';--> statement-breakpoint
CREATE INDEX `watches_tenant` ON `watches` (`tenant_id`,`id`);--> statement-breakpoint
CREATE INDEX `watches_status` ON `watches` (`status`,`id`);--> statement-breakpoint
CREATE INDEX `watches_active_target` ON `watches` (`poll_target_id`) WHERE "watches"."status" = 'active';--> statement-breakpoint
CREATE INDEX `watches_active_expiry` ON `watches` (`expires_at`) WHERE "watches"."status" = 'active';--> statement-breakpoint
CREATE INDEX `watches_ended` ON `watches` (`ended_at`) WHERE "watches"."status" <> 'active';
DROP INDEX `deliveries_status`;--> statement-breakpoint
DROP INDEX `watches_status`;--> statement-breakpoint
DROP INDEX `watches_active_target`;--> statement-breakpoint
CREATE INDEX `watches_target` ON `watches` (`poll_target_id`,`status`);
DROP INDEX `watches_active_tenant`;--> statement-breakpoint
ALTER TABLE `tenants` ADD `active_watches` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
-- Hand-written backfill: the counts of the watches active when this migration runs.
UPDATE `tenants` SET `active_watches` = (SELECT count(*) FROM `watches` WHERE `watches`.`tenant_id` = `tenants`.`id` AND `watches`.`status` = 'active');

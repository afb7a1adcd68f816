-- How a worker process consumes each of its queues: fetch loops and jobs per
-- fetch (WORKER_CONCURRENCY and WORKER_BATCH_SIZE), as
-- [{"queue": "canary", "loops": 4, "batch_size": 500}, ...] in the order of
-- `queues`. `concurrency` stays what it was, loops x batch size summed over the
-- queues. Null: a worker that registered before this column existed.
alter table wombat.workers add column queue_settings jsonb;

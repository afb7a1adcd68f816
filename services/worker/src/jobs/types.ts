import type { Kysely } from 'kysely';
import type { Logger, PgBoss } from '@wombat/core/platform';
import type { Exchange, JobParams, JobType } from '@wombat/core/jobs';
import type { CoreTables } from '@wombat/core/tables';
import type { ChannelName } from '@wombat/core/alerts';
import type { BackupResult } from '@wombat/core/backup';
import type { CollectorsPort, CrawlsPort } from '../collectors-port.ts';

/** What a job handler gets: its validated params, one AbortSignal, and a progress callback. */
export interface JobContext<J extends JobType> {
  runId: string;
  job: J;
  params: JobParams<J>;
  /** 1 for the first attempt. */
  attempt: number;
  /**
   * Aborts on cancellation, on the job's timeout (expireInSeconds), when pg-boss loses the job's
   * claim, and when the worker is stopping and cannot wait any longer. Pass it down to every I/O call.
   */
  signal: AbortSignal;
  /** fraction 0..1; written to the run at most every WORKER_PROGRESS_INTERVAL_MS. */
  progress: (fraction: number, message?: string) => void;
  log: Logger;
}

export interface HandlerDeps {
  db: Kysely<CoreTables>;
  boss: PgBoss;
  /** Absent in a worker that runs no collector jobs (e.g. a canary-only benchmark). */
  collectors?: CollectorsPort;
  /** Absent in a worker without the crawl configuration: crawl jobs then fail saying so. */
  crawls?: CrawlsPort;
  /** Absent in a worker without BACKUP_DIR: database-backup jobs then fail saying so. */
  backup?: BackupPort;
  /** Exchanges collect-prices covers when its params name none. */
  defaultExchanges: Exchange[];
  /** The alert channels reports are recorded for (this worker's SLACK_WEBHOOK_URL, SMTP_URL, ALERT_WEBHOOK_URL); none: recorded, not sent. */
  reportChannels?: ChannelName[];
  /** Where data-snapshot takes DATA_ROOT's snapshots (absolute paths); absent without SNAPSHOT_DIR. */
  snapshots?: { dataRoot: string; snapshotDir: string; retention: { keepDaily: number; keepWeekly: number } };
  log: Logger;
}

/** Takes a database backup with the worker's settings (BACKUP_*), into BACKUP_DIR. */
export interface BackupPort {
  run(log: Logger, signal?: AbortSignal): Promise<BackupResult>;
}

export type JobHandler<J extends JobType> = (ctx: JobContext<J>, deps: HandlerDeps) => Promise<unknown>;
export type JobHandlers = { [J in JobType]: JobHandler<J> };

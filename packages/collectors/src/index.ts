export { createCollectors, DEFAULT_BACKFILL_DAYS, type Collectors, type CollectorsOptions, type FetchResult, type Progress, type SymbolsResult } from './collectors.ts';
export { addPeriods, closedCutoff, floorToTimeframe, isTimeframe, sortUnique, candleProblems, type Candle } from './candle.ts';
export { RateLimitedError } from './errors.ts';
export { PermanentError } from '@wombat/core';
export { RateLimiter, SlidingWindow, sharedLimiter } from './rate-limit.ts';
export { createUpbitClient, type UpbitClient, type UpbitMarket } from './upbit.ts';
export { createKisClient, KIS_TIMEFRAMES, type KisClient } from './kis.ts';
export { KIS_MARKETS, parseMaster, parseMasterZip, type KisMarket } from './kis-master.ts';
export { decodeParquet, encodeParquet, mergeColumns, parquetPath, readCandlesParquet, readColumns, writeCandlesParquet, type Columns, type SeriesKey } from './parquet-store.ts';
export { withFileLock } from './file-lock.ts';
export type { CollectorTables, CollectorDb } from './pg-store.ts';
export { collectorConfigProblems, collectorFields, collectorsOptionsFromConfig, type CollectorConfig } from './config.ts';
// ETL crawls (issue 14): the price crawl and the community-post collection.
export { parsePrice, SOLD_OUT_PATTERN, type PriceReading, type PriceHints } from './crawl/price-parse.ts';
export { loadPriceSources, parsePriceSources, type PriceSource, type PriceSources, type HostPoliteness } from './crawl/sources.ts';
export { parseRobots, isAllowed, productToken, type RobotsRules } from './crawl/robots.ts';
export { crawlPrices, type PriceCrawlOptions, type PriceCrawlResult, type SourceResult } from './crawl/price-crawl.ts';
export { latestPrices, type CrawlTables, type CrawlDb, type LatestPricesView } from './crawl/store.ts';

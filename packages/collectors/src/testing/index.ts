export { startFakeExchange, type FakeExchange, type FakeExchangeOptions } from './fake-exchange.ts';
export type { FakeUpbitControls, FakeUpbitOptions, UpbitMarketSpec } from './fake-upbit.ts';
export type { FakeKisControls, FakeKisOptions, KisSymbolSpec } from './fake-kis.ts';
export type { Counter, Fault } from './fake-common.ts';
export { encodeCp949 } from './cp949.ts';
export { startFakeShop, defaultShopPages, DEFAULT_ROBOTS, type FakeShop, type ShopPage, type ShopFault } from './fake-shop.ts';
export { startFakeReddit, makePosts, type FakeReddit, type FakePost, type FakeRedditOptions, type RedditFault } from './fake-reddit.ts';
export { writeLegacyHourlyFile } from './legacy-files.ts';

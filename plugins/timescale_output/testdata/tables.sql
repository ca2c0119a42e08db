-- The three shipped tables, as plain PostgreSQL tables, for tests that do
-- not depend on the schema tooling. Keep in step with pipelines/schema.yaml.
CREATE TABLE crypto_prices (
  last_updated TIMESTAMPTZ NOT NULL,
  coin_id VARCHAR(64) NOT NULL,
  symbol VARCHAR(32) NOT NULL,
  exchange_id VARCHAR(64) NOT NULL,
  usd_price NUMERIC(20,8) NOT NULL,
  market_cap NUMERIC(24,2),
  volume_24h NUMERIC(24,2),
  change_24h NUMERIC(10,4),
  change_7d NUMERIC(10,4),
  source VARCHAR(64) NOT NULL,
  attribution TEXT NOT NULL,
  ingested_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (last_updated, coin_id, exchange_id)
);
CREATE TABLE crypto_ohlcv (
  "timestamp" TIMESTAMPTZ NOT NULL,
  coin_id VARCHAR(64) NOT NULL,
  exchange_id VARCHAR(64) NOT NULL,
  timeframe VARCHAR(8) NOT NULL,
  open NUMERIC(20,8) NOT NULL,
  high NUMERIC(20,8) NOT NULL,
  low NUMERIC(20,8) NOT NULL,
  close NUMERIC(20,8) NOT NULL,
  volume NUMERIC(28,8) NOT NULL,
  source VARCHAR(64) NOT NULL,
  attribution TEXT NOT NULL,
  ingested_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY ("timestamp", coin_id, exchange_id, timeframe)
);
CREATE TABLE crypto_market_analytics (
  "timestamp" TIMESTAMPTZ NOT NULL,
  exchange_id VARCHAR(64) NOT NULL DEFAULT 'global',
  total_market_cap NUMERIC(24,2) NOT NULL,
  total_volume NUMERIC(24,2) NOT NULL,
  btc_dominance NUMERIC(7,4) NOT NULL,
  eth_dominance NUMERIC(7,4),
  active_cryptocurrencies INTEGER NOT NULL,
  markets INTEGER NOT NULL,
  market_cap_change_24h NUMERIC(10,4) NOT NULL,
  source VARCHAR(64) NOT NULL,
  attribution TEXT NOT NULL,
  ingested_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY ("timestamp", exchange_id)
);

-- dbdr.backup benchmark: secondary indexes, built once after the bulk load (faster than
-- maintaining them row by row). Primary keys exist from schema.sql.
SET client_min_messages = warning;
SET maintenance_work_mem = '512MB';
SET max_parallel_maintenance_workers = 2;
CREATE UNIQUE INDEX IF NOT EXISTS customers_email_key ON customers (email);
CREATE INDEX IF NOT EXISTS customers_created_at_idx ON customers (created_at);
CREATE INDEX IF NOT EXISTS customers_profile_gin ON customers USING gin (profile jsonb_path_ops);
CREATE INDEX IF NOT EXISTS orders_customer_id_idx ON orders (customer_id);
CREATE INDEX IF NOT EXISTS orders_created_at_idx ON orders (created_at);
CREATE INDEX IF NOT EXISTS orders_open_idx ON orders (status, created_at)
    WHERE status IN ('pending', 'paid', 'shipped');
CREATE INDEX IF NOT EXISTS events_customer_ts_idx ON events (customer_id, occurred_at);
CREATE INDEX IF NOT EXISTS events_occurred_at_brin ON events USING brin (occurred_at);
CREATE INDEX IF NOT EXISTS documents_customer_id_idx ON documents (customer_id);
CREATE INDEX IF NOT EXISTS documents_created_at_idx ON documents (created_at);

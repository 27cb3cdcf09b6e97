-- dbdr.backup benchmark: load one chunk of synthetic data (~121 MB of pg_database_size with
-- indexes). Usage: psql -v ON_ERROR_STOP=1 -v chunk=<n> -f chunk.sql   (n = 0, 1, 2, ...)
-- Chunk n owns the id ranges [n*N+1, (n+1)*N] of every table, so chunks can be loaded by
-- several sessions at once and a top-up can append more chunks later.
--
-- Per chunk: 20,000 customers, 100,000 orders, 150,000 events, 10,000 documents.
-- Content: words drawn Zipf-like from a vocabulary (common English words + syllable words),
-- names/emails/addresses from realistic lists, jsonb documents whose keys vary per row,
-- numeric amounts, timestamps spread over one year, bytea mixing text, runs and random bytes.
-- The mix compresses about 3x with zstd -3 (checked by backup_bench.sh).

SET client_min_messages = warning;
SET synchronous_commit = off;
SELECT FROM setseed(((:chunk % 997) + 1) / 1000.0);

BEGIN;

-- pick(arr) = arr[1 + floor(cardinality(arr) * random())]; words are drawn with random()^3
-- (Zipf-like: the first ~250 common words make up ~37% of all words).
-- "+ s*0" ties a per-word draw to the inner generate_series row, so each word is drawn anew.

INSERT INTO customers
SELECT id,
       lower(fn) || CASE WHEN r1 < 0.5 THEN '.' WHEN r1 < 0.75 THEN '_' ELSE '' END || lower(ln)
           || id::text || '@' || dom,
       fn, ln,
       CASE WHEN r2 < 0.85 THEN '+' || (1 + floor(r2 * 98))::int::text || ' '
           || lpad(floor(random() * 1e9)::bigint::text, 9, '0') END,
       (1 + floor(random() ^ 2 * 2999))::int::text || ' ' || st || ' ' || suf,
       city, lpad(floor(random() * 99999)::int::text, 5, '0'), ctry,
       created, r3 < 0.92,
       round((random() ^ 2 * 25000)::numeric, -2),
       jsonb_strip_nulls(jsonb_build_object(
           'lang', lang,
           'newsletter', random() < 0.35,
           'marketing_consent', CASE WHEN random() < 0.6 THEN random() < 0.5 END,
           'tags', CASE WHEN r3 < 0.5 THEN to_jsonb(ARRAY(
                SELECT lk.x_w[1 + floor(lk.x_nw * random() ^ 3)::int + s * 0]::text
                FROM generate_series(1, 1 + (id % 4)::int) s)) END,
           'loyalty', CASE WHEN random() < 0.25 THEN jsonb_build_object(
                'tier', (ARRAY['bronze','silver','gold','platinum'])[1 + floor(random() ^ 2 * 4)::int],
                'points', floor(random() * 50000)::int,
                'since', (created + random() * interval '30 days')::date) END,
           'referrer', CASE WHEN random() < 0.3 THEN 'https://' || dom || '/ref/'
                || substr(md5(random()::text), 1, 8) END,
           'preferences', CASE WHEN random() < 0.4 THEN jsonb_build_object(
                'currency', cur, 'size', (ARRAY['S','M','L','XL'])[1 + floor(random() * 4)::int],
                'dark_mode', random() < 0.5) END,
           'notes', CASE WHEN random() < 0.15 THEN (
                SELECT string_agg(lk.x_w[1 + floor(lk.x_nw * random() ^ 3)::int + s * 0]::text, ' ')
                FROM generate_series(1, 8 + (id % 23)::int) s) END))
FROM (
    SELECT :chunk::bigint * 20000 + g AS id,
           lk.x_fst[1 + floor(random() * cardinality(lk.x_fst))::int]::text AS fn,
           lk.x_lst[1 + floor(random() * cardinality(lk.x_lst))::int]::text AS ln,
           lk.x_dom[1 + floor(random() ^ 2 * cardinality(lk.x_dom))::int]::text AS dom,
           lk.x_st[1 + floor(random() * cardinality(lk.x_st))::int]::text AS st,
           lk.x_suf[1 + floor(random() * cardinality(lk.x_suf))::int]::text AS suf,
           lk.x_city[1 + floor(random() * cardinality(lk.x_city))::int]::text AS city,
           lk.x_ctry[1 + floor(random() * cardinality(lk.x_ctry))::int]::text AS ctry,
           lk.x_cur[1 + floor(random() * cardinality(lk.x_cur))::int]::text AS cur,
           lk.x_lang[1 + floor(random() * cardinality(lk.x_lang))::int]::text AS lang,
           timestamptz '2025-11-23 00:00:00+00' + random() * interval '365 days' AS created,
           random() AS r1, random() AS r2, random() AS r3
    FROM generate_series(1, 20000) g, bench_lk() lk
) c, bench_lk() lk;

INSERT INTO orders
SELECT id, cust, created, created + random() ^ 2 * interval '12 days', status, cur,
       amount, round(amount * 0.19, 2),
       (SELECT jsonb_agg(jsonb_build_object(
                   'sku', 'SKU-' || lpad((1 + floor(random() ^ 2 * 50000))::int::text, 6, '0'),
                   'name', initcap(lk.x_w[1 + floor(lk.x_nw * random() ^ 3)::int + s * 0]::text || ' '
                                   || lk.x_w[1 + floor(lk.x_nw * random() ^ 3)::int]::text),
                   'qty', 1 + floor(random() ^ 3 * 5)::int,
                   'unit_price', round((1 + random() ^ 2 * 300)::numeric, 2)))
        FROM generate_series(1, 1 + (id % 4)::int) s),
       (1 + floor(random() ^ 2 * 2999))::int::text || ' '
           || lk.x_st[1 + floor(random() * cardinality(lk.x_st))::int] || ' '
           || lk.x_suf[1 + floor(random() * cardinality(lk.x_suf))::int] || ', '
           || lpad(floor(random() * 99999)::int::text, 5, '0') || ' '
           || lk.x_city[1 + floor(random() * cardinality(lk.x_city))::int] || ', '
           || lk.x_ctry[1 + floor(random() * cardinality(lk.x_ctry))::int],
       CASE WHEN status IN ('shipped', 'delivered', 'returned')
            THEN '1Z' || upper(substr(md5(random()::text), 1, 16)) END,
       CASE WHEN random() < 0.25 THEN (
            SELECT string_agg(lk.x_w[1 + floor(lk.x_nw * random() ^ 3)::int + s * 0]::text, ' ')
            FROM generate_series(1, 5 + (id % 37)::int) s) END
FROM (
    SELECT :chunk::bigint * 100000 + g AS id,
           1 + floor(random() * (:chunk + 1) * 20000)::bigint AS cust,
           timestamptz '2025-11-23 00:00:00+00' + random() * interval '365 days' AS created,
           lk.x_stat[1 + floor(random() * cardinality(lk.x_stat))::int]::text AS status,
           lk.x_cur[1 + floor(random() * cardinality(lk.x_cur))::int]::text AS cur,
           round((5 + random() ^ 2 * 900)::numeric, 2) AS amount
    FROM generate_series(1, 100000) g, bench_lk() lk
) o, bench_lk() lk;

INSERT INTO events
SELECT id, ts, cust, kind,
       md5(((id / 12) * 7919 + :chunk)::text)::uuid,          -- ~12 events per session
       (((id / 12) % 223 + 1)::text || '.' || ((id / 12 * 31) % 256)::text || '.'
           || ((id / 12 * 17) % 256)::text || '.' || ((id / 12 * 7) % 254 + 1)::text)::inet,
       lk.x_agent[1 + ((id / 12) % cardinality(lk.x_agent))::int]::text,
       jsonb_strip_nulls(CASE kind
         WHEN 'page_view' THEN jsonb_build_object(
              'path', '/products/' || floor(random() ^ 2 * 50000)::int,
              'referrer', CASE WHEN random() < 0.4 THEN 'https://www.google.com/' END,
              'duration_ms', floor(random() ^ 2 * 60000)::int)
         WHEN 'click' THEN jsonb_build_object(
              'element', lk.x_el[1 + floor(random() * cardinality(lk.x_el))::int]::text,
              'x', floor(random() * 1920)::int, 'y', floor(random() * 1080)::int)
         WHEN 'search' THEN jsonb_build_object(
              'query', (SELECT string_agg(lk.x_w[1 + floor(lk.x_nw * random() ^ 3)::int + s * 0]::text, ' ')
                        FROM generate_series(1, 1 + (id % 3)::int) s),
              'results', floor(random() ^ 2 * 500)::int,
              'page', 1 + floor(random() ^ 4 * 5)::int)
         WHEN 'add_to_cart' THEN jsonb_build_object(
              'sku', 'SKU-' || lpad((1 + floor(random() ^ 2 * 50000))::int::text, 6, '0'),
              'qty', 1 + floor(random() ^ 3 * 5)::int)
         WHEN 'purchase' THEN jsonb_build_object(
              'order_id', 1 + floor(random() * (:chunk + 1) * 100000)::bigint,
              'amount', round((5 + random() ^ 2 * 900)::numeric, 2),
              'currency', lk.x_cur[1 + floor(random() * cardinality(lk.x_cur))::int]::text)
         ELSE jsonb_build_object(
              'method', (ARRAY['password','sso','token'])[1 + floor(random() * 3)::int],
              'success', random() < 0.95,
              'mfa', CASE WHEN random() < 0.3 THEN true END)
       END)
FROM (
    SELECT :chunk::bigint * 150000 + g AS id,
           timestamptz '2025-11-23 00:00:00+00' + ((g / 150000.0 + :chunk) / 16.0 % 1)::float8 * interval '365 days'
               + random() * interval '1 hour' AS ts,
           CASE WHEN random() < 0.9 THEN 1 + floor(random() * (:chunk + 1) * 20000)::bigint END AS cust,
           lk.x_kind[1 + floor(random() * cardinality(lk.x_kind))::int]::text AS kind
    FROM generate_series(1, 150000) g, bench_lk() lk
) e, bench_lk() lk;

INSERT INTO documents
SELECT id, cust, title, body,
       mime, md5(body), created, created + random() ^ 3 * interval '90 days',
       CASE WHEN random() < 0.6 THEN
            convert_to((SELECT string_agg(lk.x_w[1 + floor(lk.x_nw * random() ^ 3)::int + s * 0]::text, ' ')
                        FROM generate_series(1, 20 + (id % 80)::int) s), 'UTF8')
            || decode(repeat('00000000ffff', 10 + (id % 40)::int), 'hex')
            || (SELECT string_agg(decode(md5(random()::text || s), 'hex'), ''::bytea)
                FROM generate_series(1, 4 + (id % 24)::int) s)
       END
FROM (
    SELECT id, cust, title, created, mime,
           (SELECT string_agg(lk.x_w[1 + floor(lk.x_nw * random() ^ 3)::int + s * 0]::text, ' ')
            FROM generate_series(1, 40 + (id * 7919 % 260)::int) s) AS body
    FROM (
        SELECT :chunk::bigint * 10000 + g AS id,
               1 + floor(random() * (:chunk + 1) * 20000)::bigint AS cust,
               timestamptz '2025-11-23 00:00:00+00' + random() * interval '365 days' AS created,
               lk.x_mime[1 + floor(random() * cardinality(lk.x_mime))::int]::text AS mime,
               (SELECT initcap(string_agg(lk.x_w[1 + floor(lk.x_nw * random() ^ 3)::int + s * 0]::text, ' '))
                FROM generate_series(1, 3 + (g % 6)::int) s) AS title
        FROM generate_series(1, 10000) g, bench_lk() lk
    ) d0, bench_lk() lk
) d, bench_lk() lk;

COMMIT;

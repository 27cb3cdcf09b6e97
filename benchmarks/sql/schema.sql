-- dbdr.backup benchmark: schema and lookup data for the synthetic `bench` database.
-- Run once per fresh database (psql -v ON_ERROR_STOP=1 -f schema.sql).
-- Tables are created WITHOUT secondary indexes; indexes.sql adds them after the bulk load.

SET client_min_messages = warning;

-- Progress/identity of the generated data set; lets BENCH_KEEP=1 re-runs reuse it.
CREATE TABLE bench_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

-- Lookup arrays. `name` is a fixed-width (64 byte) type, so subscripting a name[] is O(1);
-- subscripting a text[] walks the array and made generation ~15x slower.
CREATE TABLE bench_lookup (
    kind  text PRIMARY KEY,
    items name[] NOT NULL
);

-- Vocabulary: ~250 common English words first (the head of a Zipf-like draw), then ~4,800
-- pseudo-words built from syllables (the long tail).
INSERT INTO bench_lookup
SELECT 'words', array_agg(w::name ORDER BY ord, md5(w))
FROM (
    SELECT 0 AS ord, w FROM unnest(string_to_array(
      'the of and to in is for on that with as was by at from it this be are or an have not '
      'which but all were when we there can more one has their if will about up out so what '
      'other new some time only also into after first could two over any these may people most '
      'year work back use because good well way even want through made day just before where '
      'order customer account payment invoice delivery shipping product price total discount '
      'warehouse stock return refund support ticket issue request update status report please '
      'thanks regards team service contract renewal subscription plan monthly annual billing '
      'address street city country phone email message review rating quality size color blue '
      'red green black white large small medium package box item quantity received delayed '
      'confirmed cancelled pending shipped tracking number reference note internal external '
      'manager sales marketing finance data system error login password reset store online '
      'mobile app website page search click cart checkout card bank transfer credit balance '
      'weekly daily report summary meeting schedule project release version feature bug fix '
      'test server backup restore database table query index cluster region north south east '
      'west central office building floor room desk chair coffee morning evening night today '
      'tomorrow yesterday week month next last early late fast slow easy hard open closed', ' ')) w
    UNION ALL
    SELECT 1, w FROM (
        SELECT DISTINCT s1 || s2 || coalesce(s3, '') AS w
        FROM unnest(ARRAY['ka','lo','mi','ne','ar','ta','ver','in','sol','ben','tri','po','da','ru',
                          'est','on','gar','fi','lu','sen','mo','pel','cor','an','zu','el','hal',
                          'ri','te','bo']) s1,
             unnest(ARRAY['ra','to','n','ssa','ble','lor','mer','ti','vo','der','ce','la','ni',
                          'go','pe','ste','ry','ko','ma','s']) s2,
             unnest(ARRAY[NULL,'ing','ed','er','ly','s','tion','y']) s3
    ) syl
) v
WHERE w <> '';

INSERT INTO bench_lookup VALUES
 ('first', string_to_array('James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth '
   'William Barbara Richard Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel '
   'Nancy Matthew Betty Anthony Sandra Mark Margaret Donald Ashley Steven Kimberly Paul Emily Andrew '
   'Donna Joshua Michelle Kenneth Carol Kevin Amanda Brian Melissa George Deborah Timothy Stephanie '
   'Lukas Sofia Mateo Chiara Jan Anna Pierre Camille Hiroshi Yuki Olga Ivan Priya Arjun Fatima Omar '
   'Lars Ingrid Pedro Lucia Marek Zofia Noah Emma Liam Olivia', ' ')::name[]),
 ('last', string_to_array('Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez '
   'Hernandez Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson '
   'White Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres '
   'Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Muller '
   'Schmidt Schneider Fischer Weber Rossi Russo Ferrari Dubois Moreau Laurent Tanaka Suzuki Sato '
   'Kowalski Nowak Novak Ivanov Petrov Silva Santos Oliveira Jensen Hansen Andersson Johansson '
   'Kumar Singh Patel Khan Ali', ' ')::name[]),
 ('domain', string_to_array('gmail.com yahoo.com outlook.com hotmail.com icloud.com proton.me '
   'gmx.de web.de orange.fr libero.it example.com example.org acme.io globex.com initech.com '
   'umbrella.net hooli.xyz fastmail.com zoho.com mail.ru', ' ')::name[]),
 ('street', string_to_array('Main Oak Pine Maple Cedar Elm Washington Lake Hill Park Sunset '
   'Highland River Church Spring Mill Forest Meadow Ridge Willow Bridge Station Market Victoria '
   'Kings Queens Harbor Garden Chestnut Birch', ' ')::name[]),
 ('suffix', string_to_array('Street Avenue Road Lane Drive Court Boulevard Way Place Terrace', ' ')::name[]),
 ('city', string_to_array('Springfield Riverside Franklin Greenville Bristol Clinton Fairview Salem '
   'Madison Georgetown Arlington Ashland Dover Oxford Jackson Burlington Manchester Milton Newport '
   'Auburn Dayton Lexington Milford Winchester Hudson Berlin Hamburg Munich Paris Lyon Milan Turin '
   'Madrid Lisbon Porto Warsaw Krakow Prague Vienna Oslo Stockholm Copenhagen Dublin Leeds Austin '
   'Denver Portland Seattle Toronto Osaka Kyoto', ' ')::name[]),
 ('country', string_to_array('US US US US US US DE DE DE GB GB GB FR FR IT ES NL PL SE NO DK IE AT '
   'CZ PT CA CA JP IN BR', ' ')::name[]),
 ('status', string_to_array('delivered delivered delivered delivered delivered delivered shipped '
   'shipped shipped pending pending paid paid cancelled refunded returned', ' ')::name[]),
 ('currency', string_to_array('USD USD USD USD EUR EUR EUR GBP GBP JPY CHF SEK PLN CAD', ' ')::name[]),
 ('kind', string_to_array('page_view page_view page_view page_view page_view click click click '
   'search search add_to_cart login logout purchase', ' ')::name[]),
 ('agent', ARRAY[
   'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36',
   'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Safari/605.1.15',
   'Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0',
   'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148',
   'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Mobile Safari/537.36',
   'curl/8.5.0', 'okhttp/4.12.0', 'python-requests/2.32.3']::name[]),
 ('element', string_to_array('buy-button add-to-cart nav-home nav-search banner-top footer-link '
   'product-card filter-size filter-color sort-price pagination-next wishlist', ' ')::name[]),
 ('mime', string_to_array('text/plain text/plain application/pdf application/pdf image/png '
   'application/json text/csv application/vnd.ms-excel', ' ')::name[]),
 ('lang', string_to_array('en en en en en de de fr it es nl pl sv ja pt', ' ')::name[]);

CREATE TABLE customers (
    id           bigint PRIMARY KEY,
    email        text NOT NULL,
    first_name   text NOT NULL,
    last_name    text NOT NULL,
    phone        text,
    street       text NOT NULL,
    city         text NOT NULL,
    postcode     text NOT NULL,
    country      text NOT NULL,
    created_at   timestamptz NOT NULL,
    is_active    boolean NOT NULL,
    credit_limit numeric(12,2) NOT NULL,
    profile      jsonb NOT NULL
);

CREATE TABLE orders (
    id            bigint PRIMARY KEY,
    customer_id   bigint NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    status        text NOT NULL,
    currency      text NOT NULL,
    amount        numeric(12,2) NOT NULL,
    tax           numeric(12,2) NOT NULL,
    items         jsonb NOT NULL,
    shipping_addr text NOT NULL,
    tracking_code text,
    note          text
);

CREATE TABLE events (
    id          bigint PRIMARY KEY,
    occurred_at timestamptz NOT NULL,
    customer_id bigint,
    kind        text NOT NULL,
    session_id  uuid NOT NULL,
    ip          inet NOT NULL,
    user_agent  text NOT NULL,
    payload     jsonb NOT NULL
);

CREATE TABLE documents (
    id           bigint PRIMARY KEY,
    customer_id  bigint NOT NULL,
    title        text NOT NULL,
    body         text NOT NULL,
    content_type text NOT NULL,
    checksum     text NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    attachment   bytea
);

-- All lookup arrays as one row of detoasted, in-memory values. A PL/pgSQL set-returning
-- function is materialized once per scan; reading the arrays straight from bench_lookup
-- would detoast the 320 KB word array for every generated value (100x slower).
CREATE FUNCTION bench_lk(
    OUT x_w name[], OUT x_nw int, OUT x_fst name[], OUT x_lst name[], OUT x_dom name[],
    OUT x_st name[], OUT x_suf name[], OUT x_city name[], OUT x_ctry name[], OUT x_stat name[],
    OUT x_cur name[], OUT x_kind name[], OUT x_agent name[], OUT x_el name[], OUT x_mime name[],
    OUT x_lang name[])
RETURNS SETOF record LANGUAGE plpgsql VOLATILE AS $$


BEGIN
    -- array_agg builds a fresh (never toasted) value.
    SELECT array_agg(x ORDER BY o) INTO x_w FROM bench_lookup, unnest(items) WITH ORDINALITY u(x, o) WHERE kind = 'words';
    x_nw := cardinality(x_w);
    SELECT array_agg(x ORDER BY o) INTO x_fst FROM bench_lookup, unnest(items) WITH ORDINALITY u(x, o) WHERE kind = 'first';
    SELECT array_agg(x ORDER BY o) INTO x_lst FROM bench_lookup, unnest(items) WITH ORDINALITY u(x, o) WHERE kind = 'last';
    SELECT array_agg(x ORDER BY o) INTO x_dom FROM bench_lookup, unnest(items) WITH ORDINALITY u(x, o) WHERE kind = 'domain';
    SELECT array_agg(x ORDER BY o) INTO x_st FROM bench_lookup, unnest(items) WITH ORDINALITY u(x, o) WHERE kind = 'street';
    SELECT array_agg(x ORDER BY o) INTO x_suf FROM bench_lookup, unnest(items) WITH ORDINALITY u(x, o) WHERE kind = 'suffix';
    SELECT array_agg(x ORDER BY o) INTO x_city FROM bench_lookup, unnest(items) WITH ORDINALITY u(x, o) WHERE kind = 'city';
    SELECT array_agg(x ORDER BY o) INTO x_ctry FROM bench_lookup, unnest(items) WITH ORDINALITY u(x, o) WHERE kind = 'country';
    SELECT array_agg(x ORDER BY o) INTO x_stat FROM bench_lookup, unnest(items) WITH ORDINALITY u(x, o) WHERE kind = 'status';
    SELECT array_agg(x ORDER BY o) INTO x_cur FROM bench_lookup, unnest(items) WITH ORDINALITY u(x, o) WHERE kind = 'currency';
    SELECT array_agg(x ORDER BY o) INTO x_kind FROM bench_lookup, unnest(items) WITH ORDINALITY u(x, o) WHERE kind = 'kind';
    SELECT array_agg(x ORDER BY o) INTO x_agent FROM bench_lookup, unnest(items) WITH ORDINALITY u(x, o) WHERE kind = 'agent';
    SELECT array_agg(x ORDER BY o) INTO x_el FROM bench_lookup, unnest(items) WITH ORDINALITY u(x, o) WHERE kind = 'element';
    SELECT array_agg(x ORDER BY o) INTO x_mime FROM bench_lookup, unnest(items) WITH ORDINALITY u(x, o) WHERE kind = 'mime';
    SELECT array_agg(x ORDER BY o) INTO x_lang FROM bench_lookup, unnest(items) WITH ORDINALITY u(x, o) WHERE kind = 'lang';
    RETURN NEXT;
END
$$;

-- Builds a table of 100,000 rows and queries it; the output is compared with known values.
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, payload BLOB);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
INSERT INTO t SELECT i, i % 97, 'name-' || i, zeroblob(i % 200) FROM n;
CREATE INDEX t_grp ON t(grp, name);
SELECT count(*), sum(id), sum(length(payload)) FROM t;
SELECT grp, count(*), min(name), max(name) FROM t WHERE grp IN (0, 42, 96) GROUP BY grp ORDER BY grp;
SELECT count(DISTINCT name) FROM t;
SELECT group_concat(id, ',') FROM (SELECT id FROM t ORDER BY name DESC LIMIT 5);

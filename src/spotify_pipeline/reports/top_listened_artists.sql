-- title: Top artists listened to
-- description: Artists by minutes listened (or by plays: --param by=plays) over the period (from/to, inclusive UTC dates; default all time), music only. Incognito listens are left out unless include_incognito=true.
SELECT artist, round(ms / 60000.0, 1) AS minutes, plays
FROM (
    SELECT l.artist_name AS artist, sum(coalesce(l.ms_played, 0)) AS ms, sum(CASE WHEN l.ms_played IS NULL OR l.ms_played >= 30000 THEN 1 ELSE 0 END) AS plays
    FROM listens l
    WHERE ({{user}} IS NULL OR l.user_id = {{user}})
      AND ({{from}} IS NULL OR l.ended_at >= {{from}})
      AND ({{to}} IS NULL OR l.ended_at < {{to}})
      AND ({{include_incognito}} OR l.incognito IS DISTINCT FROM TRUE)
      AND l.item_type = 'track' AND l.artist_name IS NOT NULL
    GROUP BY l.artist_name
) t
ORDER BY CASE WHEN {{by}} = 'plays' THEN plays ELSE ms END DESC,
         CASE WHEN {{by}} = 'plays' THEN ms ELSE plays END DESC, artist
LIMIT 25

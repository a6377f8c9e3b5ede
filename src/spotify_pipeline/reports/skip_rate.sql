-- title: Skip rate
-- description: Per month, the share of songs skipped (Spotify's skipped flag; listens without it, like the legacy files and recently played, are not counted). Incognito listens are left out unless include_incognito=true.
SELECT month, listens, skips, round(CAST(skips AS DOUBLE) / listens, 4) AS skip_rate
FROM (
    SELECT CAST(date_trunc('month', l.ended_at AT TIME ZONE 'UTC') AS DATE) AS month,
           count(*) AS listens, sum(CASE WHEN l.skipped THEN 1 ELSE 0 END) AS skips
    FROM listens l
    WHERE ({{user}} IS NULL OR l.user_id = {{user}})
      AND ({{from}} IS NULL OR l.ended_at >= {{from}})
      AND ({{to}} IS NULL OR l.ended_at < {{to}})
      AND ({{include_incognito}} OR l.incognito IS DISTINCT FROM TRUE)
      AND l.item_type = 'track' AND l.skipped IS NOT NULL
    GROUP BY 1
) m
ORDER BY month

-- title: New artists
-- description: Artists heard for the first time (first listen ever in the history, music only), per month of that first listen within the period. Incognito listens are left out unless include_incognito=true.
SELECT CAST(date_trunc('month', first_heard AT TIME ZONE 'UTC') AS DATE) AS month, count(*) AS new_artists
FROM (
    SELECT l.artist_name, min(l.ended_at) AS first_heard
    FROM listens l
    WHERE ({{user}} IS NULL OR l.user_id = {{user}})
      AND ({{include_incognito}} OR l.incognito IS DISTINCT FROM TRUE)
      AND l.item_type = 'track' AND l.artist_name IS NOT NULL
    GROUP BY l.artist_name
) a
WHERE ({{from}} IS NULL OR first_heard >= {{from}}) AND ({{to}} IS NULL OR first_heard < {{to}})
GROUP BY 1
ORDER BY month

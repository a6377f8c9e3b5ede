-- title: When you listen
-- description: Minutes listened and plays by weekday (1 = Monday) and hour of the day (UTC) over the period. Incognito listens are left out unless include_incognito=true.
SELECT weekday,
       CASE weekday WHEN 1 THEN 'Mon' WHEN 2 THEN 'Tue' WHEN 3 THEN 'Wed' WHEN 4 THEN 'Thu' WHEN 5 THEN 'Fri'
                    WHEN 6 THEN 'Sat' ELSE 'Sun' END AS day,
       hour, round(ms / 60000.0, 1) AS minutes, plays
FROM (
    SELECT (date_diff('day', DATE '2024-01-01', CAST(l.ended_at AT TIME ZONE 'UTC' AS DATE)) % 7 + 7) % 7 + 1
               AS weekday,
           hour(l.ended_at AT TIME ZONE 'UTC') AS hour,
           sum(coalesce(l.ms_played, 0)) AS ms, sum(CASE WHEN l.ms_played IS NULL OR l.ms_played >= 30000 THEN 1 ELSE 0 END) AS plays
    FROM listens l
    WHERE ({{user}} IS NULL OR l.user_id = {{user}})
      AND ({{from}} IS NULL OR l.ended_at >= {{from}})
      AND ({{to}} IS NULL OR l.ended_at < {{to}})
      AND ({{include_incognito}} OR l.incognito IS DISTINCT FROM TRUE)
    GROUP BY 1, 2
) h
ORDER BY weekday, hour

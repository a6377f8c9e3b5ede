-- title: Listening time
-- description: Minutes listened and plays per day, week or month (--param period=day|week|month|year; default month), UTC. A play is a listen of 30 s or more (recently-played plays count, with no minutes). Incognito listens are left out unless include_incognito=true.
SELECT CAST(date_trunc({{period}}, l.ended_at AT TIME ZONE 'UTC') AS DATE) AS period_start,
       round(sum(coalesce(l.ms_played, 0)) / 60000.0, 1) AS minutes,
       sum(CASE WHEN l.ms_played IS NULL OR l.ms_played >= 30000 THEN 1 ELSE 0 END) AS plays
FROM listens l
WHERE ({{user}} IS NULL OR l.user_id = {{user}})
      AND ({{from}} IS NULL OR l.ended_at >= {{from}})
      AND ({{to}} IS NULL OR l.ended_at < {{to}})
      AND ({{include_incognito}} OR l.incognito IS DISTINCT FROM TRUE)
GROUP BY 1
ORDER BY period_start

-- title: Playlist growth
-- description: Items added per month (from added_at; very old items without a date are left out), with the running total.
SELECT month, items_added, sum(items_added) OVER (ORDER BY month) AS total_items
FROM (
    SELECT CAST(date_trunc('month', ps.added_at) AS DATE) AS month, count(*) AS items_added
    FROM playlist_songs ps
    WHERE ps.added_at IS NOT NULL
      AND ({{playlist}} IS NULL OR ps.playlist_id = {{playlist}})
    GROUP BY 1
) m
ORDER BY month

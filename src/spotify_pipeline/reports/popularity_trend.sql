-- title: Popularity trend
-- description: Average popularity per day of the songs observed that day (from song_popularity; a song is observed when its playlist is extracted).
SELECT sp.observed_date AS day,
       round(avg(sp.popularity), 2) AS avg_popularity,
       count(*) AS songs
FROM song_popularity sp
WHERE sp.song_id IN (SELECT ps.song_id FROM playlist_songs ps
                     WHERE ({{playlist}} IS NULL OR ps.playlist_id = {{playlist}}))
GROUP BY sp.observed_date
ORDER BY day

-- title: Popularity distribution
-- description: Distinct songs by current popularity, in bands of 10 (0-9, 10-19, ... 100). Popularity needs extended quota; songs without it are left out.
SELECT CAST(floor(s.popularity / 10.0) * 10 AS INTEGER) AS popularity_band,
       count(*) AS songs
FROM songs s
WHERE s.popularity IS NOT NULL
  AND s.song_id IN (SELECT ps.song_id FROM playlist_songs ps
                    WHERE ({{playlist}} IS NULL OR ps.playlist_id = {{playlist}}))
GROUP BY 1
ORDER BY popularity_band

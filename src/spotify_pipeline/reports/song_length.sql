-- title: Song length and explicit share
-- description: Distinct songs by length in whole minutes, with the share of explicit songs in each length band.
SELECT CAST(floor(s.duration_ms / 60000.0) AS INTEGER) AS minutes,
       count(*) AS songs,
       round(avg(CASE WHEN s.explicit THEN 1.0 ELSE 0.0 END), 3) AS explicit_share
FROM songs s
WHERE s.song_id IN (SELECT ps.song_id FROM playlist_songs ps
                    WHERE ({{playlist}} IS NULL OR ps.playlist_id = {{playlist}}))
GROUP BY 1
ORDER BY minutes

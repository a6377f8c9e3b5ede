-- title: Release decades
-- description: Distinct songs by the decade their album was released ("unknown" when the release date is not known, e.g. 0000).
SELECT CASE WHEN al.release_date IS NULL THEN 'unknown'
            ELSE CAST(CAST(floor(year(al.release_date) / 10) * 10 AS INTEGER) AS VARCHAR) || 's' END AS decade,
       count(DISTINCT s.song_id) AS songs
FROM playlist_songs ps
JOIN songs s ON s.song_id = ps.song_id
JOIN albums al ON al.album_id = s.album_id
WHERE ({{playlist}} IS NULL OR ps.playlist_id = {{playlist}})
GROUP BY 1
ORDER BY decade

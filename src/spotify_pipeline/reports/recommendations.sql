-- title: Recommendations
-- description: The latest stored recommendations (`spotify-pipeline recommend`), ten per playlist or user: the song, its artist, the score and why it was recommended.
SELECT coalesce(p.name, r.target_id) AS recommended_for, r.rank, s.name AS song, a.name AS artist,
       round(r.score, 4) AS score, r.reason
FROM recommendations r
LEFT JOIN playlists p ON r.target_type = 'playlist' AND p.playlist_id = r.target_id
LEFT JOIN songs s ON s.song_id = r.song_id
LEFT JOIN artists a ON a.artist_id = s.artist_id
WHERE r.rank <= 10 AND ({{playlist}} IS NULL OR (r.target_type = 'playlist' AND r.target_id = {{playlist}}))
ORDER BY r.target_type, recommended_for, r.rank
LIMIT 200

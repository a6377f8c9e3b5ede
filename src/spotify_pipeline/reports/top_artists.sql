-- title: Top artists
-- description: Artists by playlist appearances (every position of every song they are credited on) and by the number of distinct playlists they appear in.
SELECT a.name AS artist,
       count(*) AS appearances,
       count(DISTINCT ps.playlist_id) AS playlists
FROM playlist_songs ps
JOIN song_artists sa ON sa.song_id = ps.song_id
JOIN artists a ON a.artist_id = sa.artist_id
WHERE ({{playlist}} IS NULL OR ps.playlist_id = {{playlist}})
GROUP BY a.artist_id, a.name
ORDER BY appearances DESC, playlists DESC, artist
LIMIT 15

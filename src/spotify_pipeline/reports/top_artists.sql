-- title: Top artists
-- description: Artists by playlist appearances (every position of every song they are credited on) and by the number of distinct playlists they appear in.
-- Over every playlist it reads artist_stats (the same counts, summed by the transform); for one playlist it
-- counts that playlist's positions.
SELECT a.name AS artist, s.appearances, s.playlists
FROM artist_stats s
JOIN artists a ON a.artist_id = s.artist_id
WHERE {{playlist}} IS NULL
UNION ALL
SELECT a.name AS artist, count(*) AS appearances, count(DISTINCT ps.playlist_id) AS playlists
FROM playlist_songs ps
JOIN song_artists sa ON sa.song_id = ps.song_id
JOIN artists a ON a.artist_id = sa.artist_id
WHERE {{playlist}} IS NOT NULL AND ps.playlist_id = {{playlist}}
GROUP BY a.artist_id, a.name
ORDER BY appearances DESC, playlists DESC, artist
LIMIT 15

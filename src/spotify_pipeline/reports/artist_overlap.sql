-- title: Artist overlap
-- description: Pairs of playlists by the number of artists they share, with the Jaccard similarity of their artist sets (among the 100 largest playlists, and the chosen one).
WITH largest AS (
    SELECT playlist_id FROM playlist_songs GROUP BY playlist_id ORDER BY count(*) DESC, playlist_id LIMIT 100
),
pa AS (
    SELECT DISTINCT ps.playlist_id, sa.artist_id
    FROM playlist_songs ps JOIN song_artists sa ON sa.song_id = ps.song_id
    WHERE ps.playlist_id IN (SELECT playlist_id FROM largest) OR ps.playlist_id = {{playlist}}
),
sizes AS (SELECT playlist_id, count(*) AS artists FROM pa GROUP BY playlist_id),
pairs AS (
    SELECT a.playlist_id AS left_id, b.playlist_id AS right_id, count(*) AS shared_artists
    FROM pa a JOIN pa b ON a.artist_id = b.artist_id AND a.playlist_id < b.playlist_id
    GROUP BY a.playlist_id, b.playlist_id
)
SELECT p1.name AS playlist_a, p2.name AS playlist_b, pairs.shared_artists,
       round(pairs.shared_artists * 1.0 / (s1.artists + s2.artists - pairs.shared_artists), 3) AS jaccard
FROM pairs
JOIN sizes s1 ON s1.playlist_id = pairs.left_id
JOIN sizes s2 ON s2.playlist_id = pairs.right_id
JOIN playlists p1 ON p1.playlist_id = pairs.left_id
JOIN playlists p2 ON p2.playlist_id = pairs.right_id
WHERE ({{playlist}} IS NULL OR pairs.left_id = {{playlist}} OR pairs.right_id = {{playlist}})
ORDER BY shared_artists DESC, jaccard DESC, playlist_a, playlist_b
LIMIT 20

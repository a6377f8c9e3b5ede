-- title: Genre mix
-- description: Playlist positions by the genres of the song's first-listed artist (an artist can have several genres; artists without genres count as "unclassified"). Genres need extended quota.
SELECT coalesce(g.genre, 'unclassified') AS genre,
       count(*) AS items
FROM playlist_songs ps
JOIN songs s ON s.song_id = ps.song_id
JOIN artists a ON a.artist_id = s.artist_id
LEFT JOIN (
    SELECT a2.artist_id, t.genre
    FROM artists a2
    CROSS JOIN UNNEST(a2.genres) AS t(genre)
) g ON g.artist_id = a.artist_id
WHERE ({{playlist}} IS NULL OR ps.playlist_id = {{playlist}})
GROUP BY coalesce(g.genre, 'unclassified')
ORDER BY items DESC, genre

-- title: Playlist changes
-- description: Songs and episodes added to and removed from playlists between two extractions (newest first), from the playlist_changes table.
SELECT c.changed_at, p.name AS playlist, c.change, c.item_name, c.item_uri
FROM playlist_changes c
JOIN playlists p ON p.playlist_id = c.playlist_id
WHERE ({{playlist}} IS NULL OR c.playlist_id = {{playlist}})
ORDER BY c.changed_at DESC, playlist, c.change, c.item_name
LIMIT 200

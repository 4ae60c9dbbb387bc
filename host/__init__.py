"""lanthorn.host: the artist's tools on a laptop (data, training, console client, push, views)."""

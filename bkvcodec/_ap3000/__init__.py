"""The AP3000 ("DNY") protocol family: private; import from :mod:`bkvcodec`."""

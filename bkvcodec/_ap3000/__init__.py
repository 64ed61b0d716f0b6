"""The AP3000 ("DNY") protocol family (ap3000.md): private; import from :mod:`bkvcodec`."""

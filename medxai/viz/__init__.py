"""Pictures of maps: colour maps, overlays, outlines, montages, and the HTML report."""

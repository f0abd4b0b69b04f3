"""Logic without request objects: caches, options, ratios, quota, routing, token counting."""

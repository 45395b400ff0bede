"""Machinery every capability folder shares: keys and names per use case, partitions, metadata,
resources. Nothing here names a capability's assets; the folders derive their keys from here."""

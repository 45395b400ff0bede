"""Feature tables: generic build and check steps around the use case's Spark builders."""

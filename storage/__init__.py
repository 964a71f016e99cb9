"""Everything Shelfcast keeps: settings, the SQL registry, sales, artifacts."""

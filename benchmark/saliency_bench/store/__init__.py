"""Where results live: per-(method, check) records, image shards, arrays, the folder lock."""

"""Market data: the snapshot type, recorded datasets and their replay."""

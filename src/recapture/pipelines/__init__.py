"""What a user calls: image recapture, in-the-wild photos, video."""

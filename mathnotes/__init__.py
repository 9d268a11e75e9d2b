"""Math documents rewritten as SwallowMath-style learning notes; non-English math translated to English."""

"""Networks: geometric and appearance generators, SAT, LGR, discriminators, losses."""

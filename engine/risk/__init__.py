"""Portfolio risk beyond the Greeks, in the pure core: VaR and ES (:mod:`engine.risk.var`)."""

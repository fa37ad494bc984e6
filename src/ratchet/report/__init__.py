"""How a run is shown: the terminal view (HTML report and dashboard come later)."""

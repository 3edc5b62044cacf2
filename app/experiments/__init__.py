"""Experiments for researchers (DESIGN §10): labelled datasets (`formats`, `datasets`), parameter
spaces (`space`), sweeps run as jobs through the invoker (`sweeps`, `runner`), metrics against
ground truth (`metrics`, `results`), and their charts and exports (`figures`, `report`)."""

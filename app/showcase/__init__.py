"""The Showcase: inputs (inputs), runs with the result cache (runs), comparisons (compare, metrics),
scenarios (scenarios), video runs (video) and video comparisons (video_compare), behind the
facade `showcase.Showcase`. Modules import one way: inputs ← runs ← compare ← video ←
video_compare ← scenarios ← showcase. Long video work runs as jobs of the core (app.jobs)."""

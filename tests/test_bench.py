"""The bench's flip footprint (bench/measure.py `flip_footprint`, bench/report.py `footprint_section`):
what docs/performance.md says a flip's update touches is what the flip's own offline prediction touches.

Tests do not import `bench` (tests/test_layout.py), so the bench's functions run in a subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys

from offline import ROOT, changed_resources, configs, run_with_weights

SIZES = (2, 3)
BENCH = f"""
import json
from bench.measure import flip_footprint
from bench.report import footprint_section
rows = flip_footprint({SIZES!r})
print(json.dumps([[r.clusters, r.resources, r.touched, r.ratio] for r in rows]))
print(footprint_section(rows))
"""


def test_the_footprint_is_the_flips_prediction_and_its_share_falls_as_clusters_grow() -> None:
    done = subprocess.run([sys.executable, "-c", BENCH], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr
    first, _, section = done.stdout.partition("\n")
    rows = json.loads(first)
    assert [r[0] for r in rows] == list(SIZES)
    for clusters, resources, touched, ratio in rows:
        # What tools.flip predicts for the same move (offline.run_with_weights, changed_resources).
        config = configs.n_clusters(clusters)
        start, final = config["traffic"]["weights"], configs.flipped(config)["traffic"]["weights"]
        before, after = run_with_weights(config, start), run_with_weights(config, final)
        predicted = changed_resources(before, after).touched
        assert (resources, touched) == (len(before.resources), len(predicted))
        # Routing only: every primary's VirtualService of the routed service, and the dashboard's weight lines.
        kinds = sorted(urn.split("::")[-2].split("$")[-1] for urn in predicted)
        assert kinds.count("kubernetes:networking.istio.io/v1:VirtualService") == clusters, kinds
        assert len(kinds) == clusters + 1, kinds
        assert f"| {clusters} | {resources} | {touched} | {ratio:.3f} |" in section, section
    ratios = [r[3] for r in rows]
    assert ratios == sorted(ratios, reverse=True) and ratios[0] > ratios[-1]
    assert section.startswith("### A flip's update against the stack")

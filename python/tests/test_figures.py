"""experiments/plot.py on the committed results, and `overopt plot`'s SVG in a real browser engine."""
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, overopt_binary

PLOT = REPO / "experiments" / "plot.py"


def run_plot(*args):
    return subprocess.run([sys.executable, str(PLOT), *map(str, args)], capture_output=True, text=True)


def test_plot_py_writes_png_and_pdf_with_the_options(tmp_path):
    pytest.importorskip("matplotlib")
    summary = REPO / "results" / "fig3-bon-ppo-noisy-summary.h5"
    png, pdf = tmp_path / "f.png", tmp_path / "f.pdf"
    r = run_plot(summary, "--sqrt-kl", "--fits", "--variants", "bt,grm-sft", "--title", "Fig 3", "-o", png, "-o", pdf)
    assert r.returncode == 0, r.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pdf.read_bytes()[:5] == b"%PDF-"
    r = run_plot(REPO / "results" / "fig1-accuracy-vs-size-summary.h5", "-o", tmp_path / "acc.png")
    assert r.returncode == 0, r.stderr  # the accuracy-vs-pairs figure


@pytest.mark.parametrize("args, message", [
    (["results/fig2-bon-large-summary.h5", "-o", "x.gif"], "expected a .png, .pdf or .svg"),
    (["results/fig2-bon-large-summary.h5", "-o", "/nonexistent/dir/x.png"], "no folder /nonexistent/dir"),
    (["/nonexistent/x.h5", "-o", "x.png"], "/nonexistent/x.h5: no such file"),
    (["results/fig2-bon-large-summary.h5", "--variants", "nope", "-o", "x.png"], "no variant 'nope'"),
])
def test_plot_py_errors_are_one_line(args, message, tmp_path):
    pytest.importorskip("matplotlib")
    args = [REPO / a if a.startswith("results/") else (tmp_path / a if a.startswith("x.") else a) for a in args]
    r = run_plot(*args)
    assert r.returncode != 0 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_overopt_svg_renders_in_headless_chromium(tmp_path):
    """The SVG of `overopt plot` drawn by Chromium: not blank, and the curves' colours are there."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed")
    image = pytest.importorskip("matplotlib.image")
    np = pytest.importorskip("numpy")
    svg, png = tmp_path / "f.svg", tmp_path / "f.png"
    subprocess.run([str(overopt_binary()), "plot", str(REPO / "results" / "fig2-bon-large-summary.h5"), "--fits",
                    "-o", str(svg)], check=True, capture_output=True)
    text = svg.read_text()
    width = int(text.split('width="', 1)[1].split('"', 1)[0])
    height = int(text.split('height="', 1)[1].split('"', 1)[0])
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={png}", f"--window-size={width},{height}", svg.as_uri()],
                   check=True, capture_output=True, timeout=120)
    pixels = image.imread(str(png))[..., :3]
    assert pixels.shape[:2] == (height, width)
    dark = (pixels.max(axis=2) < 0.3).mean()        # text, axes
    blue = (np.abs(pixels - np.array([0x1F, 0x77, 0xB4]) / 255).max(axis=2) < 0.08).mean()   # first variant
    orange = (np.abs(pixels - np.array([0xFF, 0x7F, 0x0E]) / 255).max(axis=2) < 0.08).mean()  # second variant
    assert 0.002 < dark < 0.2, f"dark share {dark}: blank or broken render"
    assert blue > 0.0005 and orange > 0.0005, f"curve colours missing (blue {blue}, orange {orange})"

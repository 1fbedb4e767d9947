"""The gallery in a real browser: Debian's chromium, headless, driven by Playwright, pages opened from disk.

The project is applied for real (the CLI against the simulator over a socket); then every page is opened
from file:// and checked: no broken image, the matrix grid's axis labels and cell count, the full view and
its keyboard navigation. Screenshots of the index and of a grid page go to test-artifacts/gallery/.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import REPO, Project, SimProcess, make_project, start_sim

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "gallery"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

MATRICES = """
---
apiVersion: reconciler/v1
kind: Generation
metadata: {name: alice-grid}
spec:
  model_name: realisticVisionV51_v51VAE_94301.safetensors
  prompt: a photo of ohwx woman, studio lighting
  negative_prompt: blurry
  loras: [{model: alice-v1, strength: 0.8}]
  width: 384
  height: 384
  output: ../outputs/alice-grid
  matrix:
    seed: [1, 2, 3]
    loras[0].strength: [0.6, 0.8, 1.0]
---
apiVersion: reconciler/v1
kind: Generation
metadata: {name: alice-steps}
spec:
  model_name: realisticVisionV51_v51VAE_94301.safetensors
  prompt: ohwx woman reading in a cafe
  loras: [{model: alice-v1, strength: 0.8}]
  width: 256
  height: 256
  output: ../outputs/alice-steps
  matrix:
    steps: [20, 30]
    seed: [7, 8]
    guidance_scale: [5, 9]
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """The example with two matrices, applied, then one prompt edited and applied again (history)."""
    if not CHROMIUM.exists():
        pytest.fail("chromium is missing: .ci/run installs it (apt-get install chromium chromium-driver)")
    tmp = tmp_path_factory.mktemp("gallery")
    sim: SimProcess = start_sim(tmp / "sim", "--ipm-txt2img", "0", "--ipm-img2img", "0")
    try:
        project = make_project(tmp, sim)
        manifest = project.root / "manifests/generations.yaml"
        manifest.write_text(manifest.read_text() + MATRICES)
        ipm = ("--ipm-txt2img", "0", "--ipm-img2img", "0")
        first = project.apply(*ipm, timeout=300)
        assert first.returncode == 0, first.stdout + first.stderr
        project.edit("manifests/generations.yaml", "cinematic lighting", "golden hour light")
        second = project.apply(*ipm)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "Gallery: gallery/index.html (20 images, " in second.stdout
        yield project
    finally:
        sim.stop()


@pytest.fixture(scope="module")
def browser(built: Project) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            args=ARGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
            offline=True,  # the gallery needs no network
        )
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


def open_page(browser: Any, path: Path) -> Any:
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    for img in page.locator("img[loading=lazy]").all():  # lazy images load once scrolled into view
        img.scroll_into_view_if_needed()
    page.wait_for_function("Array.from(document.images).every(i => i.complete)")
    assert all(url.startswith("file://") for url in requests), [u for u in requests if not u.startswith("file:")]
    return page


def broken_images(page: Any) -> list[str]:
    return list(
        page.evaluate(
            "Array.from(document.images).filter(i => i.getAttribute('src') && i.naturalWidth === 0)"
            ".map(i => i.getAttribute('src'))"
        )
    )


def test_every_page_loads_every_image(built: Project, browser: Any) -> None:
    gallery = built.root / "gallery"
    pages = sorted(gallery.rglob("*.html"))
    assert len(pages) == 1 + 2 + 2 + 9 + 8  # index, 2 plain pages, 2 matrix grids, 17 member pages
    for path in pages:
        page = open_page(browser, path)
        assert broken_images(page) == [], path
        missing_alt = page.evaluate("Array.from(document.images).filter(i => i.id !== 'viewer-img' && !i.alt).length")
        assert missing_alt == 0, path
        page.close()


def test_index_lists_models_and_generations(built: Project, browser: Any) -> None:
    page = open_page(browser, built.root / "gallery/index.html")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "index.png"), full_page=True)
    cards = page.locator(".card.gen h3 a").all_inner_texts()
    assert cards == ["alice-grid", "alice-steps", "alice-portraits", "alice-restyle"]
    model = page.locator(".card.model")
    assert model.locator("h3").inner_text() == "alice-v1"
    assert model.locator(".status").inner_text() == "trained"
    assert model.locator(".strip img").count() == 8  # dataset thumbnails
    assert "1 model · 19 generations · 20 images" in page.locator(".lede").inner_text()


def test_a_matrix_is_a_grid_with_its_axes_as_labels(built: Project, browser: Any) -> None:
    page = open_page(browser, built.root / "gallery/m/alice-grid.html")
    page.screenshot(path=str(ARTIFACTS / "grid.png"), full_page=True)
    grid = page.locator("table.grid")
    assert grid.count() == 1
    assert grid.locator("thead th[scope=col]").all_inner_texts()[1:] == [
        "strength=0.6",
        "strength=0.8",
        "strength=1",
    ]
    assert grid.locator("tbody th[scope=row]").all_inner_texts() == ["seed=1", "seed=2", "seed=3"]
    assert grid.locator("td.cell").count() == 9
    assert grid.locator("td.cell img").count() == 9
    alt = grid.locator("tbody tr").nth(1).locator("td.cell img").nth(2).get_attribute("alt")
    assert alt is not None and "seed 2" in alt and "× 1" in alt and "“a photo of ohwx woman, studio lighting”" in alt


def test_a_third_axis_stacks_grids(built: Project, browser: Any) -> None:
    page = open_page(browser, built.root / "gallery/m/alice-steps.html")
    assert page.locator("section.grid-wrap h2").all_inner_texts() == ["guidance_scale=5", "guidance_scale=9"]
    assert page.locator("table.grid").count() == 2
    assert page.locator("table.grid td.cell img").count() == 8
    assert page.locator("table.grid").first.locator("tbody th").all_inner_texts() == ["seed=7", "seed=8"]


def test_the_full_view_opens_and_steps_with_the_keyboard(built: Project, browser: Any) -> None:
    page = open_page(browser, built.root / "gallery/m/alice-grid.html")
    dialog = page.locator("dialog#viewer")
    assert not dialog.is_visible()
    first = page.locator("a.full").first
    first.focus()
    page.keyboard.press("Enter")
    assert dialog.is_visible()
    page.wait_for_function("document.getElementById('viewer-img').naturalWidth > 0")
    assert page.locator("#viewer-img").evaluate("i => i.naturalWidth") == 384  # the full image, not the thumb
    assert page.locator("#viewer-count").inner_text() == "1 / 9"
    assert "seed=1, strength=0.6" in page.locator("#viewer-caption").inner_text()
    page.keyboard.press("ArrowRight")
    assert page.locator("#viewer-count").inner_text() == "2 / 9"
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert page.locator("#viewer-count").inner_text() == "9 / 9"
    page.keyboard.press("Escape")
    assert not dialog.is_visible()
    assert page.evaluate("document.activeElement.classList.contains('full')")  # the focus is given back


def test_history_is_shown_beside_the_current_images(built: Project, browser: Any) -> None:
    page = open_page(browser, built.root / "gallery/g/alice-portraits.html")
    page.screenshot(path=str(ARTIFACTS / "history.png"), full_page=True)
    compare = page.locator(".compare")
    assert compare.locator("h3").all_inner_texts()[0] == "Now"
    assert compare.locator("h3").all_inner_texts()[1].startswith("Before (")
    assert compare.locator("img").count() == 4  # 2 now, 2 before
    diff = compare.locator("table.diff tbody tr").first.locator("th, td").all_inner_texts()
    assert diff == ["Prompt", "a photo of ohwx woman, cinematic lighting", "a photo of ohwx woman, golden hour light"]
    assert broken_images(page) == []


def test_serve_shows_the_gallery_on_loopback(built: Project) -> None:
    import httpx

    proc = built.popen("gallery", "--serve", "--port", "0")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("Gallery: gallery/index.html (20 images, 22 pages")
        line = proc.stdout.readline()
        assert line.startswith("Serving on http://127.0.0.1:") and line.endswith(
            "/gallery/index.html (Ctrl-C stops).\n"
        )
        url = line.split()[2]
        index = httpx.get(url, timeout=10)
        assert index.status_code == 200 and "alice-grid" in index.text
        image = httpx.get(url.replace("gallery/index.html", "outputs/alice-restyle/alice-restyle-1.jpg"), timeout=10)
        assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)

"""The explorer page (frontend/) in a real browser: Debian's Chromium driven by Playwright,
against uvicorn serving two small checkpoints on a loopback port.

One browser for the module; each test gets a fresh context (no shared cache, history or
storage) and fails if the page logged an error to the console or threw.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from chromium import CHROMIUM, launch_chromium
from PIL import Image
from service_helpers import LABELS, META, REPO, free_port, uvicorn_process, venv_executable, write_checkpoint

from models import LatentSpec, load_checkpoint
from models.latent import CategoricalCode, ContinuousCode

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # reported by the browser fixture: a failure in CI, a skip elsewhere
    sync_playwright = None

ARTIFACTS = REPO / "test-artifacts"
# A second spec, so that nothing about the controls can be hard-coded: two categorical codes
# without labels, three continuous codes with a normal prior and an off-centre training range.
WIDE = LatentSpec(
    noise_dim=16,
    categorical=(CategoricalCode(5, "shape"), CategoricalCode(3)),
    continuous=(
        ContinuousCode(name="width"),
        ContinuousCode(prior="normal", name="tilt"),
        ContinuousCode(train_range=(-1.5, 0.5)),
    ),
)
MEASURED = {  # c1 clearly slants the digit, c2 does nothing clear (as training/evaluate.py reports)
    **META,
    "metrics": {
        "continuous": {
            "c1": {"slant_spearman": 0.98, "width_spearman": 0.1, "identity_kept": 0.93},
            "c2": {"slant_spearman": 0.4, "width_spearman": -0.6, "identity_kept": 0.7},
        }
    },
}
DIGITS = {label: category for category, label in enumerate(LABELS)}  # "3" -> the category that drew 3
DIGITS_SHIPPED = {  # digit -> the shipped model's category for it
    int(label): category
    for category, label in enumerate(
        load_checkpoint(REPO / "models" / "pretrained" / "mnist.safetensors").meta["category_labels"]
    )
}
FIRST_CODE = "Number(document.querySelector('fieldset.categorical [aria-pressed=true]').dataset.category)"


def browser_problem() -> str | None:
    if sync_playwright is None:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


@contextmanager
def explorer(folder: Path, port: int | None = None, **settings: str) -> Iterator[str]:
    """uvicorn serving the page and the checkpoints in `folder` on a loopback port (a free one
    unless given); `settings` are more INFOGAN_* variables."""
    port = port or free_port()
    command = [venv_executable("uvicorn"), "backend.app:app", "--host", "127.0.0.1", "--port", str(port)]
    env = {"INFOGAN_CHECKPOINT_DIR": str(folder), "INFOGAN_FRONTEND_DIR": str(REPO / "frontend")}
    env |= {"INFOGAN_RUNS_DIR": str(folder / "runs"), **settings}
    with uvicorn_process([*command, "--no-access-log"], env, port, folder / "uvicorn.log") as url:
        yield url


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("checkpoints")
    write_checkpoint(folder / "mnist.safetensors", meta=MEASURED)  # the first, so the default
    write_checkpoint(folder / "wide.safetensors", seed=1, latent=WIDE, meta={"dataset": "synthetic"})
    shutil.copy(REPO / "models" / "pretrained" / "mnist.safetensors", folder / "shipped.safetensors")  # a real G
    with explorer(folder) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    problem = browser_problem()
    if problem:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"browser tests cannot run: {problem}; CI must run them (.ci/run installs chromium)")
        pytest.skip(f"browser tests need Chromium and Playwright: {problem}")
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture
def console() -> list[str]:
    """Errors the page logged or threw; a test that provokes some removes those it expects."""
    return []


@contextmanager
def page_of(browser: Browser, url: str, console: list[str]) -> Iterator[Page]:
    """A page in a fresh browser context on the service at `url`; it must log no errors."""
    context = browser.new_context(base_url=url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: console.append(f"uncaught: {error}"))
    try:
        yield page
    finally:
        page.unroute_all(behavior="ignoreErrors")  # a routed request still in flight must not fail the next test
        context.close()
    assert console == [], "the page logged errors"


@pytest.fixture
def page(browser: Browser, service: str, console: list[str]) -> Iterator[Page]:
    with page_of(browser, service, console) as page:
        yield page


# ---- helpers ----


def image_id(page: Page) -> int:
    return int(page.get_attribute("#image", "data-request-id"))


def settled(page: Page, after: int) -> None:
    """Waits until the image shows the page's newest state, drawn by a request after `after`."""
    page.wait_for_function(
        """after => {
            const image = document.getElementById("image");
            return image.dataset.state === "ready" && Number(image.dataset.requestId) > after;
        }""",
        arg=after,
    )


def open_page(page: Page, query: str = "") -> None:
    page.goto(f"/{query}")
    settled(page, 0)


def change(page: Page, action) -> None:
    """Does `action` and waits for the image that follows it."""
    before = image_id(page)
    action()
    settled(page, before)


def shown(page: Page) -> bytes:
    """The bytes of the picture the page shows, read from its own object URL."""
    encoded = page.evaluate(
        """async () => {
            const response = await fetch(document.getElementById("image").src);
            const bytes = new Uint8Array(await response.arrayBuffer());
            return btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(""));
        }"""
    )
    return base64.b64decode(encoded)


def served(service: str, *, seed: int, categorical: list[int], continuous: list[float], checkpoint="mnist") -> bytes:
    """What the service answers for a state, asked directly."""
    params = {"checkpoint": checkpoint, "seed": seed, "categorical": categorical, "continuous": continuous}
    response = httpx.get(f"{service}/generate", params=params)
    assert response.status_code == 200, response.text
    return response.content


def sliders(page: Page) -> list[float]:
    return [float(v) for v in page.eval_on_selector_all("input[type=range]", "nodes => nodes.map(n => n.value)")]


def pressed(page: Page) -> list[int]:
    """The chosen category of each categorical code, from the buttons' aria-pressed."""
    return page.eval_on_selector_all(
        "fieldset.categorical",
        """sets => sets.map(s => Number(s.querySelector("[aria-pressed=true]").dataset.category))""",
    )


def snap(value: float) -> float:
    """The page's slider grid: -2..2 in steps of 0.05."""
    return round(max(-2.0, min(2.0, value)) * 20) / 20


def read_encodes(page: Page) -> list[tuple[str, dict]]:
    """Passes every `POST /encode` through, keeping (request Content-Type, answer JSON) of each."""
    seen = []

    def through(route) -> None:
        response = route.fetch()
        seen.append((route.request.headers["content-type"], response.json()))
        route.fulfill(response=response)

    page.route(lambda url: "/encode?" in url, through)
    return seen


def tab_to(page: Page, selector: str) -> None:
    """Presses Tab until `selector` has the focus: the control is reachable by keyboard."""
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


# ---- the controls follow the latent spec ----


def test_the_controls_follow_the_mnist_spec(page: Page) -> None:
    open_page(page)
    (buttons,) = page.eval_on_selector_all(
        "fieldset.categorical",
        "sets => sets.map(s => [...s.querySelectorAll('button')].map(b => [+b.dataset.category, b.textContent]))",
    )
    assert sorted(buttons) == [[c, LABELS[c]] for c in range(10)]  # labelled with the learned digits
    assert [label for _, label in buttons] == [str(d) for d in range(10)]  # ... shown in digit order
    assert pressed(page) == [0]
    ranges = page.eval_on_selector_all(
        "input[type=range]",
        """nodes => nodes.map(n => [n.min, n.max, n.step, n.labels[0].textContent.trim(),
                                    n.closest(".code").style.getPropertyValue("--lo"),
                                    n.closest(".code").style.getPropertyValue("--hi")])""",
    )
    # -2..2 by 0.05; the training range -1..1 shaded from 1/4 to 3/4 of the track.
    assert ranges == [["-2", "2", "0.05", name, "0.25", "0.75"] for name in ("c1", "c2")]
    unlabelled = page.eval_on_selector_all("input, select", "nodes => nodes.filter(n => !n.labels.length)")
    assert unlabelled == []  # a <label for> on every control


def test_each_slider_says_what_its_code_measurably_does(page: Page) -> None:
    open_page(page)
    expect(page.locator(".intro")).to_contain_text("Pick a digit")  # what the page is, what to try first
    expect(page.locator("#continuous-0-effect")).to_have_text(
        "Leans the digit to the right as it grows (slant rank correlation +0.98); "
        "keeps the digit in 93% of sweeps from -2 to 2."
    )
    expect(page.locator("#continuous-1-effect")).to_contain_text("No single clear effect")
    assert "continuous-0-effect" in page.get_attribute("#continuous-0", "aria-describedby")
    page.select_option("#checkpoint", "wide")
    expect(page.locator("#continuous-2-effect")).to_have_text("Effect not measured: drag it and see.")


def test_links_name_the_digit_by_its_label(page: Page) -> None:
    open_page(page, "?seed=3")
    change(page, lambda: page.click("fieldset.categorical button:text-is('5')"))
    assert "label=5" in page.url and "categorical=" not in page.url
    other = page.context.new_page()
    other.goto("/?seed=3&label=7")
    settled(other, 0)
    assert pressed(other) == [DIGITS["7"]]
    other.goto("/?seed=3&label=seven")
    expect(other.locator("#messages [data-source=link]")).to_contain_text("label must be one of 0, 1, 2")
    assert pressed(other) == [0]
    change(page, lambda: page.select_option("#checkpoint", "wide"))  # no labels: indices
    assert "categorical=0,0" in page.url and "label=" not in page.url


def test_another_checkpoint_rebuilds_the_controls_from_its_spec(page: Page, service: str) -> None:
    open_page(page)
    change(page, lambda: page.select_option("#checkpoint", "wide"))
    assert "checkpoint=wide" in page.url
    groups = page.eval_on_selector_all(
        "fieldset.categorical", "sets => sets.map(s => [...s.querySelectorAll('button')].map(b => b.textContent))"
    )
    assert groups == [["0", "1", "2", "3", "4"], ["0", "1", "2"]]  # no labels: category indices
    names = page.eval_on_selector_all("input[type=range]", "nodes => nodes.map(n => n.labels[0].textContent.trim())")
    assert names == ["width", "tilt", "c3"]
    shading = page.eval_on_selector_all(
        ".code.continuous", "nodes => nodes.map(n => ['--lo', '--hi'].map(p => n.style.getPropertyValue(p)))"
    )
    assert shading == [["0.25", "0.75"], ["0.25", "0.75"], ["0.125", "0.625"]]  # c3 trained on -1.5..0.5
    options = page.eval_on_selector_all("#vary option", "nodes => nodes.map(n => n.textContent)")
    assert options == ["width", "tilt", "c3", "shape", "category2"]
    assert shown(page) == served(service, seed=0, categorical=[0, 0], continuous=[0, 0, 0], checkpoint="wide")


# ---- moving the controls changes the picture ----


def test_keyboard_a_number_field_and_a_category_change_the_image(page: Page, service: str) -> None:
    open_page(page, "?seed=3")
    first = shown(page)
    tab_to(page, "#continuous-0")  # reachable with Tab; the arrow keys move it
    change(page, lambda: page.keyboard.press("ArrowRight"))
    assert sliders(page) == [0.05, 0]
    moved = shown(page)
    assert moved != first and moved == served(service, seed=3, categorical=[0], continuous=[0.05, 0])

    change(page, lambda: page.fill("#continuous-1-value", "-1.5"))
    assert sliders(page) == [0.05, -1.5]
    expect(page.locator(".code.continuous").nth(1).locator(".badge")).to_be_visible()  # beyond -1..1
    assert shown(page) == served(service, seed=3, categorical=[0], continuous=[0.05, -1.5])

    change(page, lambda: page.click("fieldset.categorical button:text-is('3')"))
    assert pressed(page) == [DIGITS["3"]]
    assert shown(page) == served(service, seed=3, categorical=[DIGITS["3"]], continuous=[0.05, -1.5])
    change(page, lambda: page.keyboard.press("ArrowRight"))  # the arrow keys walk the row
    assert pressed(page) == [DIGITS["4"]]

    change(page, lambda: page.dblclick("#continuous-1"))  # double-click resets
    assert sliders(page) == [0.05, 0]


def test_one_request_in_flight_the_newest_state_wins_and_the_old_image_stays(page: Page) -> None:
    open_page(page)
    old_src = page.get_attribute("#image", "src")
    requests, held = [], []
    release = False

    def hold(route) -> None:
        requests.append(route.request.url)
        if release:
            route.continue_()
        else:
            held.append(route)

    page.route(lambda url: "/generate?" in url, hold)
    page.focus("#continuous-0")
    page.keyboard.press("ArrowRight")
    for _ in range(100):  # Playwright calls the route handler while the test waits
        if held:
            break
        page.wait_for_timeout(50)
    assert len(held) == 1
    assert page.get_attribute("#image", "data-state") == "loading"
    for _ in range(3):
        page.keyboard.press("ArrowRight")  # 0.1, 0.15, 0.2 while 0.05 is still on its way
    page.wait_for_timeout(300)
    assert len(requests) == 1  # never two at once
    assert page.get_attribute("#image", "src") == old_src  # nothing blank while waiting

    release = True
    held[0].continue_()
    settled(page, 0)
    assert len(requests) == 2  # 0.05, then straight to the newest, 0.2
    assert "continuous=0.2&" in requests[1] and "continuous=0.2&" in page.get_attribute("#image", "data-query")
    assert page.get_attribute("#image", "src") != old_src
    assert re.fullmatch(r"rendered in \d+ ms", page.text_content("#latency"))


# ---- the URL holds the state ----


def test_a_copied_link_shows_the_same_image(page: Page) -> None:
    open_page(page)
    change(page, lambda: page.fill("#seed", "42"))
    page.check("#lock")
    change(page, lambda: page.click("#surprise"))  # new codes; the locked noise stays
    digit = "8" if pressed(page) != [DIGITS["8"]] else "3"  # a click on the chosen one changes nothing
    change(page, lambda: page.click(f"fieldset.categorical button:text-is('{digit}')"))
    change(page, lambda: page.fill("#continuous-0-value", "1.75"))  # beyond what the surprise draws
    link, picture, values = page.url, shown(page), sliders(page)
    assert "seed=42" in link and "lock=1" in link and "continuous=1.75," in link

    other = page.context.new_page()
    other.goto(link)
    settled(other, 0)
    assert shown(other) == picture
    assert sliders(other) == values and pressed(other) == [DIGITS[digit]]
    assert other.input_value("#seed") == "42" and other.is_checked("#lock")
    assert other.get_attribute("#seed", "readonly") is not None and other.is_disabled("#random-seed")


def test_back_and_forward_restore_the_state(page: Page, service: str) -> None:
    open_page(page)
    change(page, lambda: page.click("fieldset.categorical button:text-is('5')"))
    track = page.locator("#continuous-0").bounding_box()
    middle = (track["x"] + track["width"] / 2, track["y"] + track["height"] / 2)
    page.mouse.move(*middle)  # a drag by mouse: many input events, one history entry
    page.mouse.down()
    page.mouse.move(middle[0] + track["width"] / 4, middle[1], steps=12)
    page.mouse.up()
    settled(page, 0)
    dragged = sliders(page)[0]
    assert 0.8 <= dragged <= 1.2
    change(page, lambda: page.keyboard.press("ArrowRight"))
    assert sliders(page) == [snap(dragged + 0.05), 0]

    change(page, page.go_back)
    assert sliders(page) == [dragged, 0] and pressed(page) == [DIGITS["5"]]
    assert shown(page) == served(service, seed=0, categorical=[DIGITS["5"]], continuous=[dragged, 0])
    change(page, page.go_back)
    assert sliders(page) == [0, 0] and pressed(page) == [DIGITS["5"]]
    change(page, page.go_back)
    assert sliders(page) == [0, 0] and pressed(page) == [0]
    change(page, page.go_forward)
    assert pressed(page) == [DIGITS["5"]] and sliders(page) == [0, 0]


# ---- comparing checkpoints, interpolating noise ----


def test_a_second_checkpoint_draws_the_same_inputs_beside_the_first(page: Page, service: str) -> None:
    open_page(page, "?seed=3&label=2")
    options = page.eval_on_selector_all("#compare option", "nodes => nodes.map(n => n.value)")
    assert options == ["", "shipped"]  # "wide" takes other codes
    page.select_option("#compare", "shipped")
    expect(page.locator("#pair")).to_be_visible()
    assert "compare=shipped" in page.url
    both = {"seed": 3, "categorical": [DIGITS["2"]], "continuous": [0, 0], "scale": 4}
    for image, checkpoint in (("#compare-this", "mnist"), ("#compare-other", "shipped")):
        page.wait_for_function(f"document.querySelector('{image}').complete")
        drawn = page.locator(image).evaluate(
            "img => fetch(img.src).then(r => r.arrayBuffer()).then(b => Array.from(new Uint8Array(b)))"
        )
        assert bytes(drawn) == httpx.get(f"{service}/generate", params={**both, "checkpoint": checkpoint}).content
    expect(page.locator("#compare-other-name")).to_have_text("shipped")

    strip = page.locator("#interpolation")
    expect(strip).to_be_visible()
    expect(page.locator("#interpolation-caption")).to_contain_text("from seed 3 to seed 4")
    assert page.input_value("#to-seed") == "4"  # the next seed unless another is chosen
    page.fill("#to-seed", "8")
    expect(page.locator("#interpolation-caption")).to_contain_text("from seed 3 to seed 8")
    assert "to=8" in page.url
    body = {"checkpoint": "mnist", "seeds": [3, 8], "steps": 9, "categorical": [DIGITS["2"]], "continuous": [0, 0]}
    expected = httpx.post(f"{service}/generate/interpolation", json={**body, "scale": 2}).content
    page.wait_for_function("document.getElementById('interpolation').naturalWidth === (9 * 30 + 2) * 2")
    drawn = strip.evaluate("img => fetch(img.src).then(r => r.arrayBuffer()).then(b => Array.from(new Uint8Array(b)))")
    assert bytes(drawn) == expected

    other = page.context.new_page()
    other.goto("/?compare=wide")
    expect(other.locator("#messages [data-source=link]")).to_contain_text("compare must name another loaded checkpoint")


# ---- reading a drawing ----


def test_drawing_a_digit_sets_the_codes_and_shows_g_redrawing_it(page: Page, service: str) -> None:
    open_page(page, "?checkpoint=shipped&seed=5")
    box = page.locator("#pad").bounding_box()
    at = lambda x, y: (box["x"] + x * box["width"], box["y"] + y * box["height"])  # noqa: E731
    encodes = read_encodes(page)
    page.mouse.move(*at(0.25, 0.2))  # a 7: the bar, then the stem
    page.mouse.down()
    page.mouse.move(*at(0.75, 0.2), steps=8)
    page.mouse.move(*at(0.45, 0.85), steps=10)
    page.mouse.up()
    expect(page.locator("#estimate figcaption")).to_have_text("Q's digit: 7")
    expect(page.locator("#fit-error")).to_contain_text("Pixel error")
    (content_type, estimate), (_, fitted) = encodes  # one stroke: Q's reading at once, then the fit
    assert content_type == "image/png" and estimate["fit"] is None
    fit = fitted["fit"]
    assert fit["pixel_error_after"] < 0.5 * fit["pixel_error_before"]  # G redraws the drawing, not seed 5's 7

    # Every category's probability as a bar, in digit order, the most likely one marked.
    bars = page.eval_on_selector_all(
        ".prob-row",
        "rows => rows.map(r => [...r.querySelectorAll('.prob-label, .prob-value')].map(s => s.textContent))",
    )
    probabilities = fitted["categorical"][0]["probabilities"]
    expected = [[str(d), f"{round(probabilities[DIGITS_SHIPPED[d]] * 100)}%"] for d in range(10)]
    assert bars == expected
    expect(page.locator(".prob-row.top .prob-label")).to_have_text("7")

    categories = [code["argmax"] for code in estimate["categorical"]]
    values = [snap(code["mean"]) for code in estimate["continuous"]]
    page.wait_for_function(
        "expected => document.getElementById('image').dataset.query.startsWith(expected)",
        arg=f"checkpoint=shipped&seed=5&categorical={categories[0]}&continuous={values[0]:g}&continuous={values[1]:g}&",
    )
    settled(page, 0)
    assert pressed(page) == categories and sliders(page) == pytest.approx(values)
    assert shown(page) == served(service, seed=5, categorical=categories, continuous=values, checkpoint="shipped")
    fitted_picture = page.locator("#encoded-image").evaluate(
        "img => fetch(img.src).then(r => r.arrayBuffer()).then(b => Array.from(new Uint8Array(b)))"
    )
    body = {"checkpoint": "shipped", **{key: fit[key] for key in ("noise", "categorical", "continuous")}}
    assert bytes(fitted_picture) == httpx.post(f"{service}/generate", json=body).content
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(".card.draw").screenshot(path=ARTIFACTS / "page-draw.png")


def test_a_chosen_or_dropped_image_is_read_too(page: Page, service: str, tmp_path: Path) -> None:
    open_page(page)
    encodes = read_encodes(page)
    digit = tmp_path / "digit.png"
    digit.write_bytes(served(service, seed=9, categorical=[DIGITS["2"]], continuous=[0.5, -0.5]))
    page.set_input_files("#upload", digit)
    expect(page.locator("#estimate figcaption")).to_contain_text("Q's digit")
    page.locator("#estimate").evaluate("node => node.replaceChildren()")

    dropped = base64.b64encode(served(service, seed=4, categorical=[DIGITS["6"]], continuous=[-1, 1])).decode()
    files = page.evaluate_handle(
        """data => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "six.png", { type: "image/png" }));
            return transfer;
        }""",
        dropped,
    )
    page.dispatch_event("#pad", "drop", {"dataTransfer": files})
    expect(page.locator("#estimate figcaption")).to_contain_text("Q's digit")
    page.wait_for_function(f"{FIRST_CODE} === {encodes[-1][1]['categorical'][0]['argmax']}")
    assert {content_type for content_type, _ in encodes} == {"image/png"}
    expect(page.locator("#encoded-image")).to_be_visible()


# ---- traversal ----


def test_traversal_grid_animation_and_downloads(page: Page) -> None:
    open_page(page, "?seed=3")
    grid = page.locator("#grid[data-state=ready]")
    expect(grid).to_be_visible()
    size = grid.evaluate("image => [image.naturalWidth, image.naturalHeight]")
    assert size == [(9 * 30 + 2) * 2, (5 * 30 + 2) * 2]  # 5 seeds x 9 values of c1, 28px cells + 2px gaps, scale 2
    columns = page.eval_on_selector_all("#grid-columns span", "nodes => nodes.map(n => n.textContent)")
    assert columns == ["-2", "-1.5", "-1", "-0.5", "0", "0.5", "1", "1.5", "2"]
    rows = page.eval_on_selector_all("#grid-rows span", "nodes => nodes.map(n => n.textContent)")
    assert rows == ["seed 3", "seed 4", "seed 5", "seed 6", "seed 7"]
    expect(page.locator("#grid-columns .current")).to_have_text("0")  # c1 is 0 in the main picture

    page.select_option("#vary", "categorical-0")
    page.wait_for_function("() => document.querySelectorAll('#grid-columns span').length === 10")
    expect(grid).to_be_visible()
    assert grid.evaluate("image => image.naturalWidth") == (10 * 30 + 2) * 2
    columns = page.eval_on_selector_all("#grid-columns span", "nodes => nodes.map(n => n.textContent)")
    assert columns == [str(digit) for digit in range(10)]  # the categories in the order of their digits
    with page.expect_download() as png:
        page.click("#grid-png")
    assert png.value.suggested_filename == "infogan-mnist-digit-seeds3-7.png"
    assert Path(png.value.path()).read_bytes().startswith(b"\x89PNG")
    with page.expect_download() as gif:
        page.click("#gif")
    assert gif.value.suggested_filename == "infogan-mnist-digit-seeds3-7.gif"
    with Image.open(gif.value.path()) as animation:
        assert animation.format == "GIF" and animation.n_frames == 10  # every category, the five seeds in each
        assert animation.size == ((5 * 30 + 2) * 8, (30 + 2) * 8)  # the seeds side by side, at the GIF's scale 8
    with page.expect_download() as image:
        page.click("#save-image")
    assert image.value.suggested_filename == "infogan-mnist-seed3-digit7-c1_0-c2_0.png"

    page.click("#play")  # animates the chosen code: the digit buttons move on their own
    page.wait_for_function(f"{FIRST_CODE} !== 0")
    page.wait_for_function(  # the marked column is the one the main picture shows, as Play moves on
        """() => document.querySelector("#grid-columns .current")?.textContent ===
                 document.querySelector("fieldset.categorical [aria-pressed=true]").textContent"""
    )
    expect(page.locator("#grid-cursor")).to_be_visible()
    page.click("#play")
    expect(page.locator("#play")).to_have_attribute("aria-pressed", "false")
    settled(page, 0)


def test_the_page_keeps_to_the_services_grid_limit(browser: Browser, console: list[str], tmp_path: Path) -> None:
    write_checkpoint(tmp_path / "mnist.safetensors")
    with explorer(tmp_path, INFOGAN_MAX_GRID="8") as url, page_of(browser, url, console) as page:
        open_page(page, "?rows=12")
        expect(page.locator("#messages [data-source=link]")).to_contain_text('rows must be in 1..8, got "12"')
        assert page.get_attribute("#rows", "max") == "8"
        grid = page.locator("#grid[data-state=ready]")
        expect(grid).to_be_visible()
        columns = page.eval_on_selector_all("#grid-columns span", "nodes => nodes.map(n => n.textContent)")
        assert len(columns) == 8 and (columns[0], columns[-1]) == ("-2", "2")  # the page's 9, cut to 8

        page.fill("#rows", "8")
        page.locator("#rows").blur()
        page.wait_for_function("() => document.getElementById('grid').naturalHeight === (8 * 30 + 2) * 2")
        assert "rows=8" in page.url
        page.fill("#rows", "9")
        page.locator("#rows").blur()
        expect(page.locator("#rows-note")).to_have_text("rows: a whole number from 1 to 8")  # refused, and why
        assert page.get_attribute("#rows", "aria-invalid") == "true" and "rows=8" in page.url


# ---- errors ----


def test_service_errors_are_shown_in_the_page(page: Page, console: list[str]) -> None:
    open_page(page)
    old_src = page.get_attribute("#image", "src")
    busy = {"detail": "busy: 256 requests queued; retry shortly"}
    page.route(lambda url: "/generate?" in url, lambda route: route.fulfill(status=503, json=busy))
    page.focus("#continuous-0")
    page.keyboard.press("ArrowRight")
    message = page.locator("#messages [data-source=image]")
    expect(message).to_contain_text("503: busy: 256 requests queued")
    assert page.get_attribute("#messages", "aria-live") == "assertive"
    assert page.get_attribute("#image", "data-state") == "error"
    assert page.get_attribute("#image", "src") == old_src  # the last good picture stays

    page.unroute_all()
    change(page, lambda: page.keyboard.press("ArrowRight"))
    expect(message).to_have_count(0)  # gone with the next good answer
    console[:] = [text for text in console if "status of 503" not in text]  # the browser's own log line


def test_the_page_waits_for_a_stopped_service_and_carries_on_when_it_is_back(
    browser: Browser, console: list[str], tmp_path: Path
) -> None:
    write_checkpoint(tmp_path / "mnist.safetensors")
    port = free_port()
    with page_of(browser, f"http://127.0.0.1:{port}", console) as page:
        with explorer(tmp_path, port):
            open_page(page, "?seed=3")
        # The service has stopped: a change fails, says so, and the stale picture dims.
        page.fill("#seed", "4")
        expect(page.locator("#messages [data-source=image]")).to_contain_text("cannot be reached")
        expect(page.locator("#image")).to_have_attribute("data-state", "error")
        assert float(page.eval_on_selector("#image", "img => getComputedStyle(img).opacity")) < 0.5
        with explorer(tmp_path, port):  # back on the same address: the page asks again by itself
            expect(page.locator("#image")).to_have_attribute("data-state", "ready", timeout=20_000)
            expect(page.locator("#messages p")).to_have_count(0)
            assert "seed=4" in page.get_attribute("#image", "data-query")
            page.goto("about:blank")  # leave before the service stops again: no poll can fail after this
        console[:] = [text for text in console if "ERR_CONNECTION_REFUSED" not in text]


def test_the_checkpoint_picker_follows_the_files(browser: Browser, console: list[str], tmp_path: Path) -> None:
    write_checkpoint(tmp_path / "mnist.safetensors")
    with explorer(tmp_path, INFOGAN_POLL_S="0.2") as url, page_of(browser, url, console) as page:
        open_page(page, "?seed=3")
        write_checkpoint(tmp_path / "later.safetensors", seed=1)  # a checkpoint appears
        expect(page.locator("#checkpoint option[value=later]")).to_have_count(1, timeout=15_000)
        change(page, lambda: page.select_option("#checkpoint", "later"))
        first = shown(page)
        replaced = write_checkpoint(tmp_path / "later.tmp", seed=2)
        replaced.replace(tmp_path / "later.safetensors")  # replaced, as training does
        page.wait_for_function(f"document.getElementById('image').dataset.requestId > {image_id(page)}", timeout=15_000)
        settled(page, 0)
        assert shown(page) != first  # the new weights draw, not the browser's cached picture
        (tmp_path / "later.safetensors").unlink()  # and gone
        expect(page.locator("#messages [data-source=checkpoints]")).to_contain_text('"later" is gone', timeout=15_000)
        assert page.input_value("#checkpoint") == "mnist" and "checkpoint=mnist" in page.url
        # A request for the removed checkpoint may have been on its way: the service refused it.
        console[:] = [text for text in console if "status of 422" not in text]


# Records every sample grid the Training view shows, so a test need not race the run for them.
SAMPLES_SHOWN = """() => {
    window.samplesShown = [];
    const grid = document.getElementById('run-sample');
    new MutationObserver(() => window.samplesShown.push(grid.getAttribute('src')))
        .observe(grid, {attributes: true, attributeFilter: ['src']});
}"""


def test_the_training_view_follows_a_run_as_it_trains(browser: Browser, console: list[str], tmp_path: Path) -> None:
    write_checkpoint(tmp_path / "mnist.safetensors")
    flags = ["--dataset", "synthetic", "--steps", "400", "--batch-size", "16", "--noise-dim", "8", "--g-fc", "32"]
    flags += ["--g-conv", "16", "--d-conv", "8", "--d-fc", "32", "--q-fc", "16", "--log-every", "10"]
    flags += ["--sample-every", "100", "--eval-every", "100", "--checkpoint-every", "100", "--population", "1"]
    command = [sys.executable, "-m", "training.train", *flags, "--out", str(tmp_path / "runs" / "live")]
    settings = {"INFOGAN_POLL_S": "0.2", "INFOGAN_RUNS_DIR": str(tmp_path / "runs")}
    with explorer(tmp_path, **settings) as url, page_of(browser, url, console) as page:
        open_page(page)
        page.evaluate(SAMPLES_SHOWN)
        train = subprocess.Popen(
            command, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, stderr=subprocess.DEVNULL
        )
        try:
            expect(page.locator("#training")).to_be_visible(timeout=30_000)
            points = "n => n.getAttribute('points').split(' ').length"
            curve = page.locator("#loss-chart polyline[data-series=D]")
            first = curve.evaluate(points)
            page.wait_for_function(  # the curve grows while the run trains
                f"document.querySelector('#loss-chart polyline[data-series=D]').getAttribute('points')"
                f".split(' ').length > {first}",
                timeout=60_000,
            )
            expect(page.locator("#run-status")).to_contain_text("finished", timeout=120_000)
        finally:
            assert train.wait(timeout=120) == 0
        # The sample grid followed the run to its newest grid, showing more than one on the way.
        newest = sorted((tmp_path / "runs" / "live" / "samples").glob("step_*.png"))[-1].name
        expect(page.locator("#run-sample")).to_have_attribute("src", re.compile(f"file={newest}$"))
        shown = {re.search(r"file=(step_\d+\.png)", src)[1] for src in page.evaluate("window.samplesShown")}
        assert len(shown) >= 2
        expect(page.locator("#run-progress")).to_have_js_property("value", 1)
        page.click("#explore-run")  # the run's checkpoint, in the explorer
        expect(page.locator("#checkpoint")).to_have_value("run:live", timeout=15_000)
        settled(page, 0)
        assert "checkpoint=run%3Alive" in page.url or "checkpoint=run:live" in page.url
        page.locator("#training").screenshot(path=ARTIFACTS / "page-training.png")


def test_the_training_view_marks_members_that_halving_stopped(browser: Browser, console: list[str], tmp_path) -> None:
    write_checkpoint(tmp_path / "mnist.safetensors")
    log = tmp_path / "runs" / "halved" / "log.jsonl"
    log.parent.mkdir(parents=True)
    records = [
        {"step": 10, "train_s": 1.0, "member": 0, "loss_d": 1.5, "categorical_accuracy": 0.6, "information": 2.0},
        {"step": 10, "train_s": 1.0, "member": 1, "loss_d": 1.4, "categorical_accuracy": 0.8, "information": 2.1},
        {"step": 10, "dropped_members": [0]},
        {"step": 20, "train_s": 2.0, "member": 1, "loss_d": 1.3},
        {
            "step": 20,
            "train_s": 2.0,
            "member": 1,
            "categorical_accuracy": 0.9,
            "information": 2.2,
            "jitter_flips": 0.02,
        },
        {"step": 20, "train_s": 2.0, "chosen_member": 1, "criterion": "flips"},
    ]
    log.write_text("".join(json.dumps(record) + "\n" for record in records))
    with explorer(tmp_path) as url, page_of(browser, url, console) as page:
        open_page(page)
        rows = page.locator("#members tbody tr")
        expect(rows.nth(0)).to_contain_text("0 (stopped at step 10)")
        expect(rows.nth(1)).to_contain_text("1 (chosen)")
        expect(rows.nth(1).locator("td").nth(3)).to_have_text("2.0%")  # the jitter flips the pick read
        expect(rows.nth(0).locator("td").nth(3)).to_have_text("–")  # none logged
        expect(page.locator("#run-status")).to_contain_text("accuracy 90.0%")  # member 1's, still training


def test_messages_can_be_dismissed(page: Page) -> None:
    open_page(page, "?seed=x")
    warning = page.locator("#messages [data-source=link]")
    expect(warning).to_contain_text("seed must be a whole number")
    warning.get_by_role("button", name="Dismiss").click()
    expect(warning).to_have_count(0)


# ---- input hygiene ----


@pytest.mark.parametrize("typed", ["1e40", "2.5", "2147483648", "-1"])
def test_an_invalid_seed_is_refused_in_the_field_and_never_sent(page: Page, typed: str) -> None:
    open_page(page, "?seed=3")
    expect(page.locator("#grid[data-state=ready]")).to_be_visible()  # the page's own requests are done
    asked = []
    page.on("request", lambda request: asked.append(request.url) if "/generate" in request.url else None)
    page.fill("#seed", typed)
    page.locator("#seed").blur()
    expect(page.locator("#seed-note")).to_have_text("a seed is a whole number from 0 to 2147483647")
    assert page.input_value("#seed") == typed and page.get_attribute("#seed", "aria-invalid") == "true"
    page.wait_for_timeout(300)  # the grid waits 250 ms for changes to pause
    assert asked == [] and "seed=3&" in page.url
    change(page, lambda: page.fill("#seed", "12"))
    expect(page.locator("#seed-note")).to_be_hidden()
    assert "seed=12&" in page.url


def test_a_typed_code_value_says_how_it_was_taken(page: Page) -> None:
    open_page(page)
    change(page, lambda: page.fill("#continuous-0-value", "9"))
    page.locator("#continuous-0-value").blur()
    expect(page.locator("#continuous-0-value")).to_have_value("2")
    expect(page.locator("#continuous-0-value-note")).to_have_text("c1: 9 uses 2 (steps of 0.05 from -2 to 2)")
    assert sliders(page) == [2, 0]
    change(page, lambda: page.fill("#continuous-0-value", "0.33"))
    expect(page.locator("#continuous-0-value-note")).to_have_text("c1: 0.33 uses 0.35 (steps of 0.05 from -2 to 2)")
    change(page, lambda: page.fill("#continuous-0-value", "0.5"))
    expect(page.locator("#continuous-0-value-note")).to_be_hidden()
    assert sliders(page) == [0.5, 0]


def test_key_presses_in_a_row_are_one_history_step(page: Page) -> None:
    open_page(page, "?seed=3&label=0")
    steps = page.evaluate("history.length")
    page.focus("#continuous-0")
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    page.focus("fieldset.categorical [aria-pressed=true]")
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    settled(page, 0)
    page.wait_for_function(f"{FIRST_CODE} === {DIGITS['3']}")
    assert sliders(page) == [0.25, 0]
    assert page.evaluate("history.length") == steps + 2  # the slider's five presses, the buttons' three
    change(page, page.go_back)
    assert sliders(page) == [0.25, 0] and pressed(page) == [DIGITS["0"]]
    change(page, page.go_back)
    assert sliders(page) == [0, 0]


def test_every_control_shows_a_focus_ring(page: Page) -> None:
    open_page(page)
    rings = {}
    for _ in range(60):
        page.keyboard.press("Tab")
        key, ring = page.evaluate(
            """() => {
                const e = document.activeElement, style = getComputedStyle(e);
                if (e === document.body) return ["", true];  // Tab left the page: it comes round again
                return [e.id || e.textContent.trim() || e.outerHTML.slice(0, 60),
                        style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2];
            }"""
        )
        rings[key] = ring
    assert len(rings) > 25  # every slider, field, button and link of the page
    assert [key for key, ring in rings.items() if not ring] == []


def test_touch_targets_are_44_px_at_phone_width(page: Page) -> None:
    page.set_viewport_size({"width": 375, "height": 800})
    open_page(page)
    small = page.eval_on_selector_all(
        "button, a.button, label.button, select, input[type=number], input[type=range], .field.check",
        """nodes => nodes.filter(n => n.offsetParent !== null).map(n => [n.id || n.textContent.trim(),
            n.getBoundingClientRect()]).filter(([, r]) => r.height < 44 || r.width < 44).map(([name]) => name)""",
    )
    assert small == []


def test_a_link_with_bad_values_says_what_it_fixed(page: Page) -> None:
    open_page(page, "?checkpoint=mnist&seed=-4&categorical=12&continuous=9,0.5")
    warning = page.locator("#messages [data-source=link]")
    expect(warning).to_contain_text("categorical[0] must be in 0..9")
    expect(warning).to_contain_text("continuous[0] must be in -2..2")
    assert sliders(page) == [0, 0.5] and pressed(page) == [0]


# ---- how it looks ----


def test_screenshots_at_desktop_and_phone_width(page: Page) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    open_page(page, "?seed=11&categorical=4&continuous=1.5,-0.4")
    expect(page.locator("#grid[data-state=ready]")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "page-desktop.png")

    page.set_viewport_size({"width": 375, "height": 800})
    page.wait_for_timeout(100)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # nothing wider than the phone
    page.screenshot(path=ARTIFACTS / "page-phone.png", full_page=True)
    page.locator("#traversal-title").scroll_into_view_if_needed()
    image = page.locator("#image").bounding_box()
    assert image["y"] >= 0 and image["y"] + image["height"] <= 800  # the picture stays in view (sticky)
    page.screenshot(path=ARTIFACTS / "page-phone-scrolled.png")


@pytest.mark.parametrize(
    ("path", "rendered"), [("/docs", ".swagger-ui .opblock-summary"), ("/redoc", ".api-content h2")]
)
def test_the_api_docs_render_with_no_request_off_this_machine(
    page: Page, console: list[str], path: str, rendered: str
) -> None:
    """Any request to another host fails the test. ReDoc's bundle asks a CDN for its logo: the
    pages' Content-Security-Policy stops that in the browser (which says so in the console)."""
    elsewhere: list[str] = []

    def loopback_only(route) -> None:
        if route.request.url.startswith(("data:", "blob:")) or urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", loopback_only)
    page.goto(path)
    expect(page.locator(rendered).first).to_be_visible()
    assert page.get_by_text("InfoGAN Explorer").first.is_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"api{path.replace('/', '-')}.png")
    assert elsewhere == []
    console[:] = [message for message in console if "Content Security Policy" not in message]


def test_swagger_ui_sends_each_example_body_and_the_service_accepts_it(page: Page) -> None:
    page.goto("/docs")
    operations = ("generate_generate_post", "generate_grid_generate_grid_post", "generate_gif_generate_gif_post")
    for operation in (*operations, "generate_interpolation_generate_interpolation_post"):
        block = page.locator(f"#operations-default-{operation}")
        block.locator(".opblock-summary").click()
        block.get_by_role("button", name="Try it out").click()
        assert '"label"' in block.locator("textarea.body-param__text").input_value()  # the schema's example
        block.get_by_role("button", name="Execute").click()
        expect(block.locator(".live-responses-table tbody .response-col_status").first).to_have_text("200")

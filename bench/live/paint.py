"""Figure 4: time to the first thumbnail painted in headless Chromium."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from run import Line

PAINT_TIMEOUT_MS = 15_000
PAINT_BOUND_MS = 1000.0
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

PAINT_PROBE = """
(() => {
  const probe = {};
  window.__gsProbe = probe;
  const painted = (img) => img.complete && img.naturalWidth > 0 && img.closest('#grid');
  const found = (img, how) => {
    if (probe.loaded !== undefined) return;
    probe.loaded = performance.now();
    probe.how = how;
    probe.src = img.currentSrc || img.src;
    probe.naturalWidth = img.naturalWidth;
    requestAnimationFrame(() => {
      probe.frame = performance.now();
      requestAnimationFrame(() => {
        probe.nextFrame = performance.now();
        window.__gsFirstPaint = probe;
      });
    });
  };
  document.addEventListener('load', (event) => {
    const el = event.target;
    if (el instanceof HTMLImageElement && painted(el)) found(el, 'load');
  }, true);
  const poll = () => {
    if (probe.loaded !== undefined) return;
    for (const img of document.querySelectorAll('#grid img')) {
      if (painted(img)) { found(img, 'frame'); return; }
    }
    requestAnimationFrame(poll);
  };
  requestAnimationFrame(poll);
  try {
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        const el = entry.element;
        if (probe.lcp === undefined && el && el.tagName === 'IMG' && el.closest('#grid')) {
          probe.lcp = entry.renderTime || entry.loadTime;
        }
      }
    }).observe({type: 'largest-contentful-paint', buffered: true});
  } catch (e) {}
})();
"""

PAGE_STATE = """() => ({
  grid: !!document.querySelector('#grid'),
  tiles: document.querySelectorAll('#grid [data-asset-id]').length,
  imgs: document.querySelectorAll('#grid img').length,
  complete: [...document.querySelectorAll('#grid img')].filter(
    (i) => i.complete && i.naturalWidth > 0).length,
  title: document.title,
  text: (document.body ? document.body.innerText : '').slice(0, 120),
})"""

BARE_PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>bare</title></head>'
    '<body><div id="grid"><div data-asset-id="bare"><img src="/files/thumb.webp" alt="">'
    "</div></div></body></html>"
)


@dataclass
class Paint:
    url: str
    frame_ms: float | None
    detail: dict[str, Any]


async def first_paint(browser: Any, url: str) -> Paint:
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.add_init_script(PAINT_PROBE)
        await page.goto(url, wait_until="commit")
        try:
            await page.wait_for_function(
                "window.__gsFirstPaint !== undefined", timeout=PAINT_TIMEOUT_MS
            )
        except PlaywrightTimeout:  # report what the page had instead
            state = await page.evaluate(PAGE_STATE)
            return Paint(url, None, {"state": state, "page_errors": errors[:5]})
        probe = await page.evaluate("window.__gsFirstPaint")
        state = await page.evaluate(PAGE_STATE)
        return Paint(url, float(probe["frame"]), {**probe, "state": state, "page_errors": errors})
    finally:
        await context.close()


def not_measured(paint: Paint) -> str:
    state = paint.detail.get("state", {})
    if not state.get("grid"):
        why = "the page has no #grid"
    elif not state.get("imgs"):
        why = f"#grid has {state.get('tiles')} tiles but no <img>"
    else:
        why = f"no #grid image completed ({state.get('imgs')} <img>)"
    return f"not measured: {why} within {PAINT_TIMEOUT_MS / 1000:.0f} s (page: {state})"


def paint_text(paint: Paint) -> str:
    if paint.frame_ms is None:
        return not_measured(paint)
    return f"{paint.frame_ms:.0f} ms ({paint.detail.get('how')}, {paint.detail.get('src')})"


def paint_line(name: str, paints: list[Paint], bare: list[Paint]) -> Line:
    measured = [p.frame_ms for p in paints if p.frame_ms is not None]
    bare_ms = [p.frame_ms for p in bare if p.frame_ms is not None]
    if not measured:
        figure, note = None, not_measured(paints[-1])
    else:
        best = min(paints, key=min_paint_key)
        lcp = best.detail.get("lcp")
        figure = best.frame_ms
        note = (
            f"runs {', '.join(f'{m:.0f}' for m in measured)} ms; image loaded at "
            f"{best.detail['loaded']:.0f} ms, next frame {best.detail['nextFrame']:.0f} ms, "
            f"LCP render {'-' if lcp is None else f'{lcp:.0f}'} ms; "
            f"{best.detail['state']['tiles']} tiles, {best.detail['state']['imgs']} <img>"
        )
    return Line(
        name,
        figure,
        "ms",
        min(bare_ms) if bare_ms else None,
        "bare page, one <img> of a same-size WebP",
        "info",
        note,
        bound=f"< {PAINT_BOUND_MS:.0f}",
    )


def min_paint_key(paint: Paint) -> float:
    return paint.frame_ms if paint.frame_ms is not None else math.inf

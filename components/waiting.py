"""A wait that says how long it has lasted: a spinner with a text, and from the first second on the
time elapsed, in the page's language (Streamlit's own `show_time` counts in English). The clock
runs in the browser, so it moves while the script waits for the call."""
from __future__ import annotations

import html
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from components.session import t

TIMER = """
<div id="%(id)s" data-testid="algostageWaiting" style="display:flex;align-items:center;gap:10px;margin:6px 0">
  <span style="width:16px;height:16px;border:2px solid #ccc;border-top-color:#ff4b4b;border-radius:50%%;
               display:inline-block;animation:algostage-spin 0.8s linear infinite"></span>
  <span>%(text)s</span><span class="elapsed" style="opacity:0.7;font-variant-numeric:tabular-nums"></span>
</div>
<style>@keyframes algostage-spin { to { transform: rotate(360deg); } }</style>
<script>
(() => {
  const started = Date.now(), FORMAT = %(format)s;
  let seen = false;
  const tick = setInterval(() => {   // the box is looked up each time: the script may run before it is attached
    const box = document.getElementById(%(id_json)s);
    if (!box) { if (seen || Date.now() - started > 10000) clearInterval(tick); return; }
    seen = true;
    const s = (Date.now() - started) / 1000;
    if (s >= 1) box.querySelector(".elapsed").textContent = FORMAT.replace("{s}", s.toFixed(1));
  }, 100);
})();
</script>
"""


@contextmanager
def waiting(text: str, *, key: str) -> Iterator[None]:
    """Show `text` with a spinner (and the seconds elapsed, once there is one) while the block runs."""
    slot, box = st.empty(), f"wait-{key}-{uuid.uuid4().hex[:8]}"   # one id per wait: no clock meets an old one
    slot.html(TIMER % {"id": box, "id_json": json.dumps(box), "text": html.escape(text),
                       "format": json.dumps(t("results.elapsed"), ensure_ascii=False)},
              unsafe_allow_javascript=True)
    try:
        yield
    finally:
        slot.empty()

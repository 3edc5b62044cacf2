"""One play/pause/seek for all the videos of a comparison: a control bar under them, and each
video's own controls driving the others too. Every video shows a frame before it is played:
browsers leave a video black until they decode one, and many videos open on a black frame (a
fade-in; Megamind.avi's first frame is black), so a paused, unplayed video is shown at a tenth of
its length (at most 1 s), and its first play starts from the beginning. A paused video still without
a frame (loading, or seeking) after 4 s with no progress — Chromium sometimes lets a media request
stall, leaving the video black — is loaded anew, at most three times, and put back at the time it
was seeking to.

The videos are those inside the container keyed `container_key` (`st.container(key=…)` gives
it the class `st-key-<key>`); the bar is plain HTML with a script (`st.html` with JavaScript)."""
from __future__ import annotations

import json

import streamlit as st

from components.session import t

SCRIPT = """
<div id="sync-%(key)s" class="algostage-sync" style="display:flex;align-items:center;gap:12px;margin:4px 0 12px">
  <button type="button" style="min-width:6em;padding:4px 12px;border-radius:8px;border:1px solid #ccc;
          background:#fff;cursor:pointer"></button>
  <input type="range" min="0" max="1000" step="1" value="0" style="flex:1" aria-label="%(seek)s">
  <span style="font-variant-numeric:tabular-nums;min-width:7em;text-align:right">0.0 / 0.0 s</span>
</div>
<script>
(() => {
  const KEY = %(key_json)s, TEXT = %(text)s, DRIFT = 0.15, STALL_MS = 4000;
  const all = window.__algostageSync = window.__algostageSync || {};
  if (all[KEY]) clearInterval(all[KEY]);
  const bar = () => document.getElementById("sync-" + KEY);
  const videos = () => Array.from(document.querySelectorAll(".st-key-" + KEY + " video"));
  const length = () => Math.max(0, ...videos().map(v => isFinite(v.duration) ? v.duration : 0));
  const others = (v, fn) => videos().forEach(o => { if (o !== v) fn(o); });
  function show() {
    const b = bar(), vs = videos();
    if (!b || !vs.length) return;
    b.style.display = vs.length > 1 ? "flex" : "none";
    const lead = vs[0], total = length();
    b.querySelector("button").textContent = vs.some(v => !v.paused) ? TEXT.pause : TEXT.play;
    b.querySelector("input").value = total ? Math.round(lead.currentTime / total * 1000) : 0;
    b.querySelector("span").textContent = lead.currentTime.toFixed(1) + " / " + total.toFixed(1) + " s";
  }
  function poster(v) {   // again whenever a redraw put an unplayed video back at 0 (st.video sets its start time)
    if (v.dataset.poster === "played" || !v.paused || v.currentTime !== 0 || v.readyState < 1 || !isFinite(v.duration))
      return;
    v.dataset.poster = "1";
    v.currentTime = Math.min(1, v.duration / 10);
  }
  function fromStart(v) {   // the first play of a video shown at its poster time starts at 0
    if (v.dataset.poster === "1") { v.dataset.poster = "played"; v.currentTime = 0; }
  }
  function adopt(v) {
    if (v.dataset.synced) return;
    v.dataset.synced = "1";
    v.dataset.active = Date.now();
    ["progress", "loadedmetadata", "loadeddata", "seeking", "seeked", "playing"].forEach(e =>
      v.addEventListener(e, () => { v.dataset.active = Date.now(); }));
    v.preload = "auto";
    v.addEventListener("loadedmetadata", () => poster(v));
    poster(v);
    v.addEventListener("play", () => {
      fromStart(v);
      others(v, o => { if (o.paused) { fromStart(o); o.currentTime = v.currentTime; o.play(); } });
    });
    v.addEventListener("pause", () => others(v, o => { if (!o.paused) o.pause(); }));
    v.addEventListener("seeked", () => others(v, o => {
      if (Math.abs(o.currentTime - v.currentTime) > DRIFT) o.currentTime = Math.min(v.currentTime, o.duration || 0);
    }));
    v.addEventListener("timeupdate", show);
    v.addEventListener("ended", show);
  }
  function unstick(v) {   // a paused video left without a frame by a media request that stalled: load it anew
    const waiting = v.paused && !v.error && (v.seeking || v.readyState < 2) && v.currentSrc;
    if (!waiting || Date.now() - Number(v.dataset.active || 0) < STALL_MS || Number(v.dataset.reloads || 0) >= 3) return;
    const at = v.currentTime;
    v.dataset.reloads = Number(v.dataset.reloads || 0) + 1;
    v.dataset.active = Date.now();
    v.addEventListener("loadedmetadata", () => { if (at > 0) v.currentTime = Math.min(at, v.duration || at); },
                       {once: true});
    v.load();
  }
  function wire() {
    const b = bar();
    if (!b) { clearInterval(all[KEY]); return; }
    videos().forEach(v => { adopt(v); poster(v); unstick(v); });
    if (b.dataset.wired) return;
    b.dataset.wired = "1";
    b.querySelector("button").addEventListener("click", () => {
      const vs = videos();
      if (vs.some(v => !v.paused)) { vs.forEach(v => v.pause()); return; }
      vs.forEach(fromStart);
      const at = vs[0].ended ? 0 : vs[0].currentTime;
      vs.forEach(v => { v.currentTime = Math.min(at, v.duration || at); v.play(); });
    });
    b.querySelector("input").addEventListener("input", e => {
      videos().forEach(v => { v.dataset.poster = "played"; });   // a chosen position is kept
      const at = e.target.value / 1000 * length();
      videos().forEach(v => { v.currentTime = Math.min(at, v.duration || at); });
    });
  }
  all[KEY] = setInterval(() => { wire(); show(); }, 250);
  wire(); show();
})();
</script>
"""


def sync_videos(container_key: str) -> None:
    """The control bar for the videos in the container keyed `container_key` (hidden while it
    holds fewer than two videos; a single video still shows its first frame)."""
    text = json.dumps({"play": "▶ " + t("video.play"), "pause": "⏸ " + t("video.pause")}, ensure_ascii=False)
    st.html(SCRIPT % {"key": container_key, "key_json": json.dumps(container_key), "text": text,
                      "seek": t("video.seek")}, unsafe_allow_javascript=True)

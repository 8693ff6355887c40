// Live HLS for the viewer page (large audiences, docs/hls.md): the browser's own HLS where it
// has one (Chromium ≥ 141, Safari: <video src=…m3u8>), else hls.js (vendored under
// web/vendor/hls.js, pinned: see its VERSION) on Media Source Extensions — school PCs on
// Windows 7 stop at Chrome 109, which has no native HLS.

let loading = null;

function loadHlsJs() {
  if (window.Hls) return Promise.resolve(window.Hls);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = new URL("../vendor/hls.js/hls.min.js", import.meta.url).href;
      script.onload = () => (window.Hls ? resolve(window.Hls) : reject(new Error("hls.js did not load")));
      script.onerror = () => reject(new Error("hls.js did not load"));
      document.head.append(script);
    });
  }
  return loading;
}

export function nativeHls(video) { return video.canPlayType("application/vnd.apple.mpegurl") !== ""; }

/**
 * Play a master playlist in `video`. `forceHlsJs`: hls.js even where the browser plays HLS
 * itself (tests; a native player that misbehaves). Returns {kind, stop(), latency()}.
 * onFatal(err) when playback cannot go on (the page fetches a fresh signed URL).
 */
export async function playHls(video, url, { forceHlsJs = false, onFatal = () => {} } = {}) {
  video.srcObject = null;
  if (!forceHlsJs && nativeHls(video)) {
    video.src = url;
    const failed = () => onFatal(video.error || new Error("playback failed"));
    video.addEventListener("error", failed);
    video.play().catch(() => {});
    return {
      kind: "native",
      stop() { video.removeEventListener("error", failed); video.removeAttribute("src"); video.load(); },
      latency() { return liveEdgeDistance(video); },
    };
  }
  const Hls = await loadHlsJs();
  if (!Hls.isSupported()) throw new Error("this browser plays no HLS");
  // no worker: the page's CSP allows no blob: worker; the main thread copes with two layers
  const hls = new Hls({ enableWorker: false, lowLatencyMode: false, liveSyncDurationCount: 2, backBufferLength: 30 });
  hls.on(Hls.Events.ERROR, (_event, data) => { if (data.fatal) onFatal(data); });
  hls.loadSource(url);
  hls.attachMedia(video);
  video.play().catch(() => {});
  return {
    kind: "hlsjs",
    hls,
    stop() { hls.destroy(); },
    // wall clock minus the EXT-X-PROGRAM-DATE-TIME of what is on screen: the SFU's arrival
    // time of that frame, so this is arrival → display
    latency() { return hls.playingDate ? (Date.now() - hls.playingDate.getTime()) / 1000 : liveEdgeDistance(video); },
  };
}

function liveEdgeDistance(video) {
  const ranges = video.seekable;
  return ranges && ranges.length ? ranges.end(ranges.length - 1) - video.currentTime : null;
}

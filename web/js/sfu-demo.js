// The bare SFU demo page (sfu-demo.html): ?token=… (and &publish=1 to send camera and mic).
import { SfuClient } from "./sfu-client.js";
import { takeSecret } from "./dom.js";
const params = new URLSearchParams(location.search);
const log = (line) => { document.getElementById("log").textContent += line + "\n"; };
const wsUrl = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
const client = new SfuClient({
  wsUrl,
  token: takeSecret("token") || "",
  publish: params.get("publish") === "1",
  log,
  onTrack: (event, owner) => {
    if (event.track.kind !== "video") { const a = new Audio(); a.srcObject = new MediaStream([event.track]); a.play().catch(() => {}); return; }
    const v = document.createElement("video");
    v.autoplay = true; v.muted = true; v.playsInline = true; v.title = owner || "";
    v.srcObject = new MediaStream([event.track]);
    document.getElementById("videos").appendChild(v);
  },
});
window.sfu = client;
window.sfuReady = client.start().then(() => client.mediaReady, (e) => "failed: " + (e.message || e.code || e));
